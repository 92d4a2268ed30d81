"""Command-line tasks: ``flask --app wsgi <command>``."""

import io
import sys
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from tqdm import tqdm
from werkzeug.datastructures import MultiDict

from config import ConfigError

from . import audit, auth, maintenance
from .db import database
from .errors import APIError, StorageUnavailable
from .export import ndjson_stream
from .maintenance import megabytes
from .migrations import LATEST_VERSION, migrate
from .models import ApiKey
from .query import EXPORT_SCHEMA, load_params
from .retention import Retention
from .search import count_matching, export_documents
from .times import format_micros, now_micros


@click.command("migrate")
@with_appcontext
def migrate_command():
    """Create or upgrade the database schema (idempotent).

    When API keys are required and none was ever created, also creates the
    first admin key and writes it to a file beside the database.
    """
    with database.connection_context():
        applied = migrate()
        first_key = None
        if current_app.config["AUTH_REQUIRED"]:
            first_key = auth.create_first_key(Path(database.database).with_name("admin.key"))
    if applied:
        click.echo(f"migrated {database.database} to schema version {LATEST_VERSION}")
    else:
        click.echo(f"{database.database} is up to date (schema version {LATEST_VERSION})")
    if first_key:
        click.echo(f"API keys are required and there were none: the admin key"
                   f" {auth.FIRST_KEY_NAME!r} is in {first_key}, readable by you only."
                   " Create the other keys with `make key`, then delete that file.")


@click.group("keys")
def keys_command():
    """Create, list and revoke API keys."""


@keys_command.command("create")
@click.argument("name")
@click.option("--scopes", required=True, help="comma-separated: ingest, read, admin")
@click.option("--services", help="comma-separated services the key may write (default: any)")
@click.option("--rate-limit", type=float,
              help="records a second the key may write (default: no limit)")
def create_key_command(name, scopes, services, rate_limit):
    """Create the key NAME and print it, once: only its hash is stored."""
    with database.connection_context():
        try:
            api_key, key = auth.create_key(name, scopes, services, rate_limit)
        except auth.ApiKeyError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(key)  # alone on stdout, for KEY=$(make key ...)
    click.echo(f"created key {api_key.name!r} ({_key_rights(api_key)});"
               " it is shown only this once", err=True)


@keys_command.command("list")
def list_keys_command():
    """List the keys: name, scopes, services, rate limit, created, last used (never the key)."""
    with database.connection_context():
        keys = list(ApiKey.select().order_by(ApiKey.id))
    rows = [(str(k.id), k.name, k.scopes, k.services or "any",
             f"{k.rate_limit:g}/s" if k.rate_limit else "-", _minute(k.created_at),
             _minute(k.last_used_at), f"revoked {_minute(k.revoked_at)}" if k.revoked_at
             else "active") for k in keys]
    header = ("id", "name", "scopes", "services", "rate", "created", "last used", "state")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


@keys_command.command("revoke")
@click.argument("name")
def revoke_key_command(name):
    """Revoke the active key NAME: it stops working at once."""
    with database.connection_context():
        try:
            auth.revoke_key(name)
        except auth.ApiKeyError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"revoked key {name!r}")


def _key_rights(api_key):
    rights = f"scopes {api_key.scopes}; services {api_key.services or 'any'}"
    return rights + (f"; at most {api_key.rate_limit:g} records/s" if api_key.rate_limit else "")


def _minute(micros):
    return "-" if micros is None else format_micros(micros)[:16].replace("T", " ")


@click.command("verify")
def verify_command():
    """Walk the audit chain: 'intact, N records', or the first record where it breaks."""
    with database.connection_context(), database.atomic():  # one snapshot throughout
        total = database.execute_sql("SELECT COUNT(*) FROM log_record").fetchone()[0]
        with _progress(total, "record") as bar:
            found = audit.verify(database.connection(), bar.update)
    click.echo(found.summary())
    if not found.intact:
        sys.exit(1)


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
    started, size = time.monotonic(), 0
    out = sys.stdout.buffer
    with database.connection_context():
        # stdout is the data: the bar and the summary go to stderr, the bar only
        # to a terminal (elsewhere it still counts, into the void).
        screen = sys.stderr if sys.stderr.isatty() else io.StringIO()
        with tqdm(export_documents(params), total=count_matching(params), unit="record",
                  unit_scale=True, file=screen) as bar:
            for chunk in ndjson_stream(bar, compress):
                out.write(chunk)
                size += len(chunk)
    out.flush()
    click.echo(f"exported {bar.n:,} records, {size / 1e6:,.1f} MB"
               f"{' gzipped' if compress else ''}, in {time.monotonic() - started:.1f} s", err=True)


@click.command("prune")
@with_appcontext
def prune_command():
    """Delete records older than their retention (RETENTION_DAYS, RETENTION_RULES).

    Deletes in short transactions, each holding the write lock about 40 ms, so
    ingest goes on meanwhile; then truncates the WAL and reports the space freed.
    """
    try:
        retention = Retention.from_config(current_app.config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    now = now_micros()
    click.echo(f"retention: {retention.describe()}")
    with database.connection_context():
        with _progress(maintenance.count_expired(retention, now), "record") as bar:
            try:
                report = maintenance.prune(retention, now, bar.update)
            except StorageUnavailable as exc:
                raise click.ClickException(f"stopped: {exc.message}") from None
            except maintenance.MaintenanceError as exc:
                raise click.ClickException(f"stopped: {exc}") from None
    click.echo(report.space)
    click.echo(
        f"pruned {report.deleted:,} records in {len(report.holds):,} transactions;"
        f" write lock held max {report.max_hold_ms:.1f} ms, median {report.median_hold_ms:.1f} ms;"
        f" {report.seconds:.1f} s"
    )


@click.command("backup")
@with_appcontext
def backup_command():
    """Copy the live database to BACKUP_DIR/collector-<UTC time>.db while ingest goes on."""
    started = time.perf_counter()
    with _progress(None, "page") as bar:
        path = maintenance.backup(database.database, current_app.config["BACKUP_DIR"],
                                  _bar_updater(bar))
    click.echo(path)
    click.echo(
        f"backup of {megabytes(path.stat().st_size)} written and passed integrity_check"
        f" in {time.perf_counter() - started:.1f} s"
    )


@click.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
def restore_command(file):
    """Replace the database with the backup FILE. Stop the collector first.

    FILE must pass PRAGMA integrity_check and be a collector database. The
    restore refuses to run while a process, such as a running collector, has
    the database open; its -wal and -shm files are removed with it.
    """
    try:
        maintenance.restore(file, database.database)
    except maintenance.MaintenanceError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored {database.database} from {file}; start the collector with `make run`")


@click.command("stats")
def stats_command():
    """Print the number of records, size on disk, time span and counts per service and severity."""
    with database.connection_context():
        found = maintenance.stats(database.database)
    size = (f"{megabytes(found.database_bytes + found.wal_bytes)}"
            f" (database {megabytes(found.database_bytes)}, WAL {megabytes(found.wal_bytes)};"
            f" free pages {megabytes(found.free_bytes)})")
    rows = [
        ("database", database.database),
        ("size on disk", size),
        ("records", f"{found.records:,}"),
        ("oldest", format_micros(found.oldest) if found.oldest is not None else "-"),
        ("newest", format_micros(found.newest) if found.newest is not None else "-"),
    ]
    _echo_table(None, rows)
    _echo_table(("service", "records"), [(name, f"{n:,}") for name, n in found.per_service])
    _echo_table(("severity", "records"), [(name, f"{n:,}") for name, n in found.per_severity])


def _progress(total, unit):
    # The summary lines are the output; a bar only helps someone watching.
    watched = sys.stdout.isatty() and sys.stderr.isatty()
    return tqdm(total=total, unit=unit, unit_scale=True, disable=not watched, file=sys.stderr)


def _bar_updater(bar):
    def update(done, total):
        bar.total = total
        bar.update(done - bar.n)

    return update


def _echo_table(header, rows):
    lines = ([header] if header else []) + rows
    width = max((len(str(first)) for first, _ in lines), default=0)
    if header:
        click.echo()
    for first, second in lines:
        click.echo(f"{first:<{width}}  {second}")
