"""Command-line tasks: ``flask --app wsgi <command>``."""

import sys

import click
from werkzeug.datastructures import MultiDict

from .db import database
from .errors import APIError
from .export import export_stream
from .migrations import LATEST_VERSION, migrate
from .query import EXPORT_SCHEMA, load_params


@click.command("migrate")
def migrate_command():
    """Create or upgrade the database schema (idempotent)."""
    with database.connection_context():
        applied = migrate()
    if applied:
        click.echo(f"migrated {database.database} to schema version {LATEST_VERSION}")
    else:
        click.echo(f"{database.database} is up to date (schema version {LATEST_VERSION})")


@click.command("export")
@click.option("--since", help="RFC 3339 time or relative (15m, 2h, 7d)")
@click.option("--until", help="RFC 3339 time or relative; exclusive")
@click.option("--service", multiple=True, help="only these services (repeatable)")
@click.option("--min-severity", "min_severity", help="this level and above")
@click.option("--q", help="full-text query over messages")
@click.option("--gzip", "compress", is_flag=True, help="gzip the output")
def export_command(compress, **filters):
    """Write every matching record to stdout as NDJSON, oldest first."""
    args = MultiDict(
        [(name, value) for name, values in filters.items() if values
         for value in (values if isinstance(values, tuple) else [values])]
    )
    try:
        params = load_params(EXPORT_SCHEMA, args)
    except APIError as exc:
        raise click.UsageError(exc.message) from None
    out = sys.stdout.buffer
    with database.connection_context():
        for chunk in export_stream(params, compress):
            out.write(chunk)
    out.flush()
