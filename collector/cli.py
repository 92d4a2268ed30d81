"""Command-line tasks: ``flask --app wsgi <command>``."""

import click

from .db import database
from .migrations import LATEST_VERSION, migrate


@click.command("migrate")
def migrate_command():
    """Create or upgrade the database schema (idempotent)."""
    with database.connection_context():
        applied = migrate()
    if applied:
        click.echo(f"migrated {database.database} to schema version {LATEST_VERSION}")
    else:
        click.echo(f"{database.database} is up to date (schema version {LATEST_VERSION})")
