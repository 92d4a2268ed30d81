"""Command-line tasks: ``flask --app wsgi <command>``, registered by ``init_app``.

Each command works on the app's store (``DATABASE_URL``), through Flask's CLI,
which builds the app and pushes its context.
"""

import functools
import io
import sys
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from tqdm import tqdm
from werkzeug.datastructures import MultiDict

from config import ServerConfig

from .. import keys, storage
from ..errors import CollectorError, MaintenanceError, StorageUnavailable
from ..read.export import ndjson_stream
from ..read.params import EXPORT_SCHEMA, PATTERNS_SCHEMA, load_params, reasons_text
from ..read.search import count_matching, export_documents, find_patterns
from ..storage.base import megabytes
from ..times import format_micros, now_micros
from . import miner


def init_app(app):
    """Register the commands on ``app``'s CLI."""
    for command in (migrate_command, export_command, prune_command, backup_command,
                    restore_command, stats_command, keys_command, verify_command,
                    mine_command, patterns_command, migrate_to_postgres_command,
                    drain_command, undrain_command):
        app.cli.add_command(command)


def with_store(command=None, creates=False):
    """Run ``command`` in the app's context with a connection of its store, passed as ``store``.

    A database that does not exist is created only by a command that ``creates`` it; for
    the others it is an error naming the database. So are the storage's failures.
    """
    if command is None:
        return functools.partial(with_store, creates=creates)

    @with_appcontext
    @functools.wraps(command)
    def run(*args, **kwargs):
        store = current_app.extensions["store"]
        if creates:
            store.create()
        elif not store.exists():
            raise click.ClickException(
                f"{store.describe()}: no such database; `make migrate` creates it"
                " (check DATABASE_URL)")
        try:
            with store.session():
                return command(*args, store=store, **kwargs)
        except (CollectorError, MaintenanceError) as exc:
            raise click.ClickException(f"{store.describe()}: {exc}") from None

    return run


def bad_argument(name, value, allowed):
    """A click.BadParameter about argument ``name``, carrying the ``value`` refused."""
    error = click.BadParameter(allowed, param_hint=name)
    error.value = value
    return error


@click.command("migrate")
@click.option("--server", "for_server", is_flag=True,
              help="check gunicorn's settings (PORT, WORKERS, ...) first, as `make run` does")
@click.pass_context
def migrate_command(context, for_server):
    """Create or upgrade the database schema (idempotent).

    When API keys are required and none was ever created, also creates the
    first admin key and writes it to a file beside the database.
    """
    if for_server:
        ServerConfig()  # a bad PORT stops `make run` before a database is created
    context.invoke(_migrate)


@with_store(creates=True)
def _migrate(store):
    applied = store.migrate()
    first_key = None
    if current_app.config["AUTH_REQUIRED"]:
        first_key = keys.create_first_key(store, store.key_file())
    if applied:
        click.echo(f"migrated {store.describe()} to schema version {store.latest_version}")
    else:
        click.echo(f"{store.describe()} is up to date (schema version {store.latest_version})")
    for warning in store.exposure():
        click.echo(f"collector: warning: {warning}", err=True)
    if first_key:
        click.echo(f"API keys are required and there were none: the admin key"
                   f" {keys.FIRST_KEY_NAME!r} is in {first_key}, readable by you only."
                   " Create the other keys with `make key`, then delete that file.")


@click.group("keys")
def keys_command():
    """Create, list and revoke API keys."""


@keys_command.command("create")
@click.argument("name")
@click.option("--scopes", required=True, help="comma-separated: ingest, read, admin")
@click.option("--services", help="comma-separated services the key may write (default: any)")
@click.option("--rate-limit", help="records a second the key may write (default: no limit)")
@with_store
def create_key_command(name, scopes, services, rate_limit, store):
    """Create the key NAME and print it, once: only its hash is stored."""
    try:
        api_key, key = keys.create_key(store, name, scopes, services, rate_limit)
    except keys.ApiKeyError as exc:
        if exc.field is None:
            raise click.ClickException(f"{store.describe()}: {exc}") from None
        raise bad_argument(exc.field, exc.value, str(exc)) from None
    click.echo(key)  # alone on stdout, for KEY=$(make key ...)
    click.echo(f"created key {api_key.name!r} in {store.describe()} ({_key_rights(api_key)});"
               " it is shown only this once", err=True)


@keys_command.command("list")
@with_store
def list_keys_command(store):
    """List the keys: name, scopes, services, rate limit, created, last used (never the key)."""
    click.echo(f"API keys of {store.describe()}:", err=True)  # stdout stays the table
    rows = [(str(k.id), k.name, k.scopes, k.services or "any",
             f"{k.rate_limit:g}/s" if k.rate_limit else "-", _minute(k.created_at),
             _minute(k.last_used_at), f"revoked {_minute(k.revoked_at)}" if k.revoked_at
             else "active") for k in store.keys()]
    header = ("id", "name", "scopes", "services", "rate", "created", "last used", "state")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


@keys_command.command("revoke")
@click.argument("name")
@with_store
def revoke_key_command(name, store):
    """Revoke the active key NAME: it stops working at once."""
    try:
        store.revoke_key(name, now_micros())
    except keys.ApiKeyError as exc:
        raise click.ClickException(f"{store.describe()}: {exc}") from None
    click.echo(f"revoked key {name!r} in {store.describe()}")


def _key_rights(api_key):
    rights = f"scopes {api_key.scopes}; services {api_key.services or 'any'}"
    return rights + (f"; at most {api_key.rate_limit:g} records/s" if api_key.rate_limit else "")


def _minute(micros):
    return "-" if micros is None else format_micros(micros)[:16].replace("T", " ")


@click.command("verify")
@with_store
def verify_command(store):
    """Walk the audit chain: 'intact, N records', or the first record where it breaks."""
    with _progress(count_matching(store, {}), "record") as bar:
        found = store.verify(bar.update)
    click.echo(found.summary())
    if not found.intact:
        sys.exit(1)


@click.command("drain")
@with_appcontext
def drain_command():
    """Create DRAIN_FILE: /readyz answers 503 and load balancers take this instance out."""
    path = Path(current_app.config["DRAIN_FILE"])
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch()
    except OSError as exc:
        raise click.ClickException(f"DRAIN_FILE={str(path)!r}: {exc.strerror}") from None
    click.echo(f"draining: {path} exists, /readyz answers 503 until `make undrain`")


@click.command("undrain")
@with_appcontext
def undrain_command():
    """Remove DRAIN_FILE: /readyz answers 200 again when its other checks pass."""
    path = Path(current_app.config["DRAIN_FILE"])
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise click.ClickException(f"DRAIN_FILE={str(path)!r}: {exc.strerror}") from None
    click.echo(f"serving: {path} removed, /readyz answers as its checks say")


@click.command("mine")
@click.option("--once", is_flag=True, help="mine the records stored so far, then exit")
@with_store
def mine_command(once, store):
    """Run the pattern miner here (gunicorn runs one unless PATTERN_MINER=off).

    It mines only while no other miner does: otherwise it waits as a standby. Ctrl-C stops it.
    """
    similarity = current_app.config["PATTERN_SIMILARITY"]
    if not once:
        miner.lower_priority()
        thread = miner.MinerThread(store, similarity)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(1.0)
        except KeyboardInterrupt:
            thread.stop()
        return
    with store.pattern_miner() as ledger:
        if ledger is None:
            raise click.ClickException("another pattern miner is running")
        mined = miner.Miner(ledger, similarity).catch_up()
    click.echo(f"mined {mined:,} records")


def _filter_options(command):
    """The read API's main filters as options of ``command``."""
    for option in reversed((
        click.option("--since", help="RFC 3339 time or relative (15m, 2h, 7d)"),
        click.option("--until", help="RFC 3339 time or relative; exclusive"),
        click.option("--service", multiple=True, help="only these services (repeatable)"),
        click.option("--min-severity", "min_severity", help="this level and above"),
        click.option("--q", help="full-text query over messages"),
    )):
        command = option(command)
    return command


def _filter_args(filters):
    return MultiDict(
        [(name, value) for name, values in filters.items() if values
         for value in (values if isinstance(values, tuple) else [values])]
    )


def _load(schema, filters):
    try:
        return load_params(schema, _filter_args(filters))
    except CollectorError as exc:
        name = exc.details.get("parameter")
        if name is None:
            raise click.UsageError(exc.message) from None
        reasons = reasons_text(exc.details["errors"][name])
        raise bad_argument(name, _shown(filters.get(name)), reasons) from None


def _shown(value):
    return " ".join(value) if isinstance(value, tuple) else value


@click.command("patterns")
@_filter_options
@click.option("--new-since", "new_since", help="only patterns first seen since then")
@click.option("--limit", default="50", help="at most this many patterns (default 50)")
@with_store
def patterns_command(store, **filters):
    """Print the patterns of the matching records, most records first."""
    found = find_patterns(store, _load(PATTERNS_SCHEMA, filters))
    rows = [(f"{p['count']:,}", str(p["id"]), p["service"], p["last_seen"][:19],
             _sparkline(p["counts"]), p["template"]) for p in found["patterns"]]
    header = ("records", "id", "service", "last seen", "over time", "template")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [cell.rjust(w) if i == 0 else cell.ljust(w)
                 for i, (cell, w) in enumerate(zip(row, widths, strict=False))]
        click.echo("  ".join([*cells, row[-1]]))
    mining = found["mining"]
    if mining["pending_records"]:
        click.echo(f"({mining['pending_records']:,} records not mined yet, the oldest received"
                   f" {mining['lag_seconds']:,.0f} s ago)", err=True)


def _sparkline(counts):
    bars = " ▁▂▃▄▅▆▇█"
    top = max(counts, default=0)
    return "".join(bars[-(-8 * n // top)] if top else " " for n in counts)


@click.command("export")
@_filter_options
@click.option("--gzip", "compress", is_flag=True, help="gzip the output")
@with_store
def export_command(compress, store, **filters):
    """Write every matching record to stdout as NDJSON, oldest first."""
    params = _load(EXPORT_SCHEMA, filters)
    started, size = time.monotonic(), 0
    out = sys.stdout.buffer
    # stdout is the data: the bar and the summary go to stderr, the bar only
    # to a terminal (elsewhere it still counts, into the void).
    screen = sys.stderr if sys.stderr.isatty() else io.StringIO()
    with tqdm(export_documents(store, params), total=count_matching(store, params),
              unit="record", unit_scale=True, file=screen) as bar:
        for chunk in ndjson_stream(bar, compress):
            out.write(chunk)
            size += len(chunk)
    out.flush()
    click.echo(f"exported {bar.n:,} records, {size / 1e6:,.1f} MB"
               f"{' gzipped' if compress else ''}, in {time.monotonic() - started:.1f} s", err=True)


@click.command("prune")
@with_store
def prune_command(store):
    """Delete records older than their retention (RETENTION_DAYS, RETENTION_RULES).

    Deletes in short transactions, each holding the write lock about 40 ms, so
    ingest goes on meanwhile; then truncates the WAL and reports the space freed.
    """
    retention = current_app.extensions["retention"]
    now = now_micros()
    click.echo(f"retention: {retention.describe()}")
    with _progress(store.count_expired(retention, now), "record") as bar:
        try:
            report = store.prune(retention, now, bar.update)
        except StorageUnavailable as exc:
            raise click.ClickException(f"stopped: {exc.message}") from None
        except MaintenanceError as exc:
            raise click.ClickException(f"stopped: {exc}") from None
    click.echo(report.space)
    click.echo(report.summary())


@click.command("backup")
@with_store
def backup_command(store):
    """Copy the live database to BACKUP_DIR/<its name>-<UTC time>.db while ingest goes on."""
    started = time.perf_counter()
    with _progress(None, "page") as bar:
        path = store.backup(current_app.config["BACKUP_DIR"], _bar_updater(bar))
    click.echo(path)
    click.echo(
        f"backup of {store.describe()}, {megabytes(path.stat().st_size)}, written and checked"
        f" in {time.perf_counter() - started:.1f} s"
    )


@click.command("restore")
@click.argument("file")
@with_appcontext
def restore_command(file):
    """Replace the database with the backup FILE (``latest``: its newest in BACKUP_DIR).

    Stop the collector first. FILE must pass PRAGMA integrity_check and be a collector
    database. The restore refuses to run while a process, such as a running collector, has
    the database open; its -wal and -shm files are removed with it.
    """
    store = current_app.extensions["store"]
    directory = current_app.config["BACKUP_DIR"]
    source = store.latest_backup(directory) if file == "latest" else Path(file)
    if source is None:
        raise bad_argument("file", file, f"there is no backup of {store.describe()} in"
                           f" BACKUP_DIR={directory!r}")
    if not source.is_file():
        raise bad_argument("file", file, "no such file")
    try:
        store.restore(source)
    except MaintenanceError as exc:
        raise click.ClickException(f"{store.describe()}: {exc}") from None
    click.echo(f"restored {store.describe()} from {source}; start the collector with `make run`")


@click.command("migrate-to-postgres")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@with_store
def migrate_to_postgres_command(source, store):
    """Copy the SQLite database SOURCE, its keys and its audit chain intact, into the empty
    PostgreSQL database DATABASE_URL names, then verify the chain there."""
    if not hasattr(store, "load"):
        raise click.ClickException("DATABASE_URL must name the PostgreSQL database to copy into")
    started = time.perf_counter()
    store.migrate()
    origin = storage.open_store({**current_app.config, "DATABASE_URL": f"sqlite:///{source}"})
    try:
        with origin.dump() as dump, _progress(dump["count"], "record") as bar:
            store.load(dump, bar.update)
    except MaintenanceError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        origin.close()
    found = store.verify()
    click.echo(f"copied {dump['count']:,} records, {len(dump['api_key'])} API keys from {source}"
               f" to {store.describe()} in {time.perf_counter() - started:.1f} s")
    click.echo(f"audit chain {found.summary()}")
    if not found.intact:
        raise click.ClickException("the copy's audit chain does not verify")


@click.command("stats")
@with_store
def stats_command(store):
    """Print the number of records, size on disk, time span and counts per service and severity."""
    found = store.stats()
    size = (f"{megabytes(found.database_bytes + found.wal_bytes)}"
            f" (database {megabytes(found.database_bytes)}, WAL {megabytes(found.wal_bytes)};"
            f" free pages {megabytes(found.free_bytes)})")
    rows = [
        ("database", found.name),
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
