"""Operator tasks on the SQLite database: prune expired records, back up, restore, statistics,
readiness."""

import datetime as dt
import glob
import json
import os
import shutil
import sqlite3
import time
from contextlib import closing, contextmanager
from pathlib import Path

from ...errors import CollectorError, MaintenanceError
from ...records import COLUMNS
from ...retention import MICROS_PER_DAY, PruneReport
from ...times import now_micros
from ..base import Stats, megabytes
from . import chain
from .db import PAGE_SIZE, database, storage_errors, write_transaction, writers_held
from .files import private_file
from .migrations import LATEST_VERSION, current_version

# A prune transaction is sized to hold the write lock about this long: how
# long ingest may wait behind it.
TARGET_HOLD_SECONDS = 0.04
FIRST_BATCH, MIN_BATCH, MAX_BATCH = 1_000, 50, 20_000
# The pause between two prune transactions. Waiting writers do not queue:
# SQLite's busy handler polls, sleeping up to 25 ms at a time in the first
# 100 ms of waiting, and would miss shorter gaps again and again.
PAUSE_SECONDS = 0.04
# How long, and how often, truncating the WAL may hold up writers.
TRUNCATE_WAIT_MS, TRUNCATE_ATTEMPTS = 20, 5
# Pages freed per incremental-vacuum transaction, a few milliseconds' work.
VACUUM_STEP_PAGES = 2_000
# Pages copied per backup step: the progress bar's resolution.
BACKUP_STEP_PAGES = 1_024

_EXPIRED_IDS_SQL = (
    "SELECT timestamp, id FROM log_record"
    " WHERE (timestamp, id) > (?, ?) AND timestamp < ? AND {condition}"
    " ORDER BY timestamp, id LIMIT ?"
)
_DELETE_IDS_SQL = "DELETE FROM log_record WHERE id IN (SELECT value FROM json_each(?))"


def expired_sql(retention, now):
    """An SQL condition on log_record, and its params: the record is expired at ``now`` (µs)."""
    cases = " ".join("WHEN ? THEN ?" for _ in retention.service_days)
    base = f"CASE service {cases} ELSE ? END" if cases else "?"
    params = [
        *(value for service, days in retention.service_days.items()
          for value in (service, now - days * MICROS_PER_DAY)),
        now - retention.default_days * MICROS_PER_DAY,
    ]
    condition = f"timestamp < {base}"
    for rank, days in retention.severity_days.items():
        condition += " AND (severity_rank < ? OR timestamp < ?)"
        params += [rank, now - days * MICROS_PER_DAY]
    return condition, params


def count_expired(retention, now):
    """How many records are expired at ``now`` (µs)."""
    condition, params = expired_sql(retention, now)
    sql = f"SELECT COUNT(*) FROM log_record WHERE timestamp < ? AND {condition}"
    return database.execute_sql(sql, [retention.expired_before(now), *params]).fetchone()[0]


def prune(retention, now, on_deleted=lambda count: None):
    """Delete the records expired at ``now`` (µs) in short write transactions; a PruneReport.

    Each batch's ids are found by a read, which takes no lock, walking the
    timestamp index from where the last batch stopped, and checked against the
    audit chain: a record that does not match its link is not deleted (raises
    MaintenanceError). The write transaction only deletes those ids. Batches
    are resized to hold the lock about TARGET_HOLD_SECONDS.
    """
    report = PruneReport()
    started = time.perf_counter()
    condition, params = expired_sql(retention, now)
    select = _EXPIRED_IDS_SQL.format(condition=condition)
    position, size = (-(2**63), 0), FIRST_BATCH
    while True:
        with database.atomic():  # one snapshot: a concurrent prune cannot cut a run short
            rows = database.execute_sql(
                select, [*position, retention.expired_before(now), *params, size]
            ).fetchall()
            ids = [record_id for _, record_id in rows]
            altered = chain.check_before_pruning(database.connection(), ids)
        if not rows:
            break
        if altered:
            raise MaintenanceError(
                f"refusing to prune record {altered.broken_at}: {altered.reason};"
                " the audit chain is broken there (make verify)"
            )
        deleted, hold = _delete_ids(ids)
        time.sleep(PAUSE_SECONDS)
        report.deleted += deleted
        report.holds.append(hold)
        on_deleted(deleted)
        position = rows[-1]
        size = _next_batch_size(size, hold)
    report.space = reclaim_space()
    report.seconds = time.perf_counter() - started
    return report


@contextmanager
def _pragma_set(name, value):
    previous = _pragma(name)
    database.execute_sql(f"PRAGMA {name} = {value}")
    try:
        yield
    finally:
        database.execute_sql(f"PRAGMA {name} = {previous}")


def _delete_ids(ids):
    # The audit chain keeps the links of the pruned runs, and a checkpoint
    # covering them, in the deleting transaction (see collector.audit). The hold
    # is timed to the release of the writers' lock: the log's checkpoint, when
    # one follows the commit, keeps the writers out too.
    with write_transaction() as connection:
        locked = time.perf_counter()
        change = chain.record_pruned(connection, ids)
        deleted = connection.execute(_DELETE_IDS_SQL, (json.dumps(ids),)).rowcount
        chain.append_checkpoint(connection, deleted, now_micros(), change)
    return deleted, time.perf_counter() - locked


def _next_batch_size(size, hold):
    wanted = round(size * TARGET_HOLD_SECONDS / max(hold, 1e-4))
    return max(MIN_BATCH, min(wanted, size * 3 // 2, MAX_BATCH))


def reclaim_space():
    """Give free pages back where auto_vacuum allows and truncate the WAL; say what was done."""
    page_size = _pragma("page_size")
    if _pragma("auto_vacuum") == 2:  # INCREMENTAL
        returned = 0
        while _pragma("freelist_count"):
            with write_transaction() as connection:
                before = connection.execute("PRAGMA freelist_count").fetchone()[0]
                connection.execute(f"PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})").fetchall()
                returned += before - connection.execute("PRAGMA freelist_count").fetchone()[0]
        space = f"incremental vacuum returned {megabytes(returned * page_size)} to the file system"
    else:
        free = _pragma("freelist_count") * page_size
        space = (f"{megabytes(free)} of free pages kept for new records"
                 " (auto_vacuum is off: the file does not shrink)")
    return f"{space}; {_checkpoint()}"


def _checkpoint():
    # PASSIVE copies the WAL into the database without blocking anyone.
    # TRUNCATE then keeps the writers out while it waits for readers to leave
    # the WAL, so it waits only briefly, a few times.
    database.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    with _pragma_set("busy_timeout", TRUNCATE_WAIT_MS):
        for _attempt in range(TRUNCATE_ATTEMPTS):
            started = time.perf_counter()
            with writers_held():
                busy, _, _ = database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return f"WAL truncated in {1000 * (time.perf_counter() - started):.1f} ms"
            time.sleep(0.1)
    return "WAL checkpointed but not truncated: readers kept it in use"


def backup(directory, database_path, on_progress=lambda copied, total: None):
    """Copy the live database to ``directory``/<its name>-<UTC time>.db and check it; its path.

    The copy is one read transaction's snapshot, taken with SQLite's online
    backup API a step of pages at a time: in WAL mode a reader does not block
    writers, so ingest goes on meanwhile. Named after the database, the backups of
    two databases never mix in one directory.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = Path(directory) / f"{Path(database_path).stem}-{stamp}.db"
    if target.exists():
        raise MaintenanceError(f"{target} already exists; try again in a second")
    partial = target.with_name(target.name + ".partial")
    try:
        private_file(partial)
    except OSError as exc:
        raise MaintenanceError(f"BACKUP_DIR={str(directory)!r}: cannot write there"
                               f" ({exc.strerror}); set it to a directory you can write") from None
    try:
        with closing(sqlite3.connect(partial)) as copy:
            _copy_snapshot(copy, on_progress)
            # A copy that stands alone, with no -wal file to carry around.
            copy.execute("PRAGMA journal_mode = DELETE")
        problem = database_problem(partial)
        if problem:
            raise MaintenanceError(f"the copy failed its check: {problem}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def latest_backup(directory, database_path):
    """The newest backup of the database ``database_path`` in ``directory``, or None."""
    # The UTC stamps in the names sort as the times do.
    found = sorted(Path(directory).glob(f"{glob.escape(Path(database_path).stem)}-*.db"))
    return found[-1] if found else None


def _copy_snapshot(copy, on_progress):
    with database.connection_context(), database.atomic():
        source = database.connection()
        # A read starts the snapshot that every backup step then copies from.
        source.execute("SELECT MAX(version) FROM schema_version").fetchone()
        source.backup(
            copy,
            pages=BACKUP_STEP_PAGES,
            progress=lambda _status, remaining, total: on_progress(total - remaining, total),
        )


def database_problem(path):
    """Why the file at ``path`` is not a sound collector database, or None when it is."""
    try:
        with closing(sqlite3.connect(_read_only_uri(path), uri=True)) as connection:
            found = [row[0] for row in connection.execute("PRAGMA integrity_check")]
            if found != ["ok"]:
                return "integrity_check found: " + "; ".join(found[:5])
            tables = {row[0] for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "schema_version" not in tables:
                return "it is not a collector database (it has no schema_version table)"
            version = connection.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        return f"it is not a readable SQLite database ({exc})"
    if (version or 0) > LATEST_VERSION:
        return f"its schema version {version} is newer than this collector's {LATEST_VERSION}"
    return None


def restore(source, database_path):
    """Replace the database file at ``database_path`` with a checked copy of ``source``.

    Refuses (MaintenanceError) when ``source`` is not a sound collector
    database or when a process has the live database open.
    """
    live = Path(database_path)
    staging = live.with_name(live.name + ".restoring")
    private_file(staging)
    try:
        _copy_file_database(source, staging)
        problem = database_problem(staging)
        if problem:
            raise MaintenanceError(f"refusing to restore {source}: {problem}")
        if live.exists() and _in_use(live):
            raise MaintenanceError(
                f"refusing to restore: {live} is open in another process; stop the collector first"
            )
        # A stale WAL would be replayed onto the restored file and corrupt it.
        for side_file in (wal_path(live), f"{live}-shm"):
            Path(side_file).unlink(missing_ok=True)
        os.replace(staging, live)
    finally:
        staging.unlink(missing_ok=True)


def _copy_file_database(source, target):
    # Through SQLite rather than a file copy: a source in WAL mode has
    # committed pages in its -wal file too.
    try:
        with closing(sqlite3.connect(_read_only_uri(source), uri=True)) as reader, \
                closing(sqlite3.connect(target)) as copy:
            reader.backup(copy)
    except sqlite3.DatabaseError as exc:
        raise MaintenanceError(
            f"refusing to restore {source}: it is not a readable SQLite database ({exc})"
        ) from None


def _in_use(path):
    # Every connection that has read a WAL database holds a shared lock on it
    # until it closes, so an exclusive lock is only granted when no one has it open.
    with closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as probe:
        try:
            probe.execute("PRAGMA locking_mode = EXCLUSIVE")
            probe.execute("BEGIN EXCLUSIVE")
            probe.execute("COMMIT")
        except sqlite3.OperationalError:
            return True
    return False


def _read_only_uri(path):
    return Path(path).resolve().as_uri() + "?mode=ro"


def stats(database_path):
    """The Stats of the live database."""

    def scalar(sql):
        return database.execute_sql(sql).fetchone()[0]

    return Stats(
        name=database_path,
        records=scalar("SELECT COUNT(*) FROM log_record"),
        # Separate queries: each of MIN and MAX alone is one index lookup.
        oldest=scalar("SELECT MIN(timestamp) FROM log_record"),
        newest=scalar("SELECT MAX(timestamp) FROM log_record"),
        database_bytes=_file_size(database_path),
        wal_bytes=_file_size(wal_path(database_path)),
        free_bytes=_pragma("freelist_count") * _pragma("page_size"),
        per_service=database.execute_sql(
            "SELECT service, COUNT(*) AS n FROM log_record"
            " GROUP BY service ORDER BY n DESC, service"
        ).fetchall(),
        per_severity=database.execute_sql(
            "SELECT severity, COUNT(*) FROM log_record GROUP BY severity_rank, severity"
            " ORDER BY severity_rank"
        ).fetchall(),
    )


def gauges(database_path):
    """The sizes of the database file and of its write-ahead log, as /metrics gauges."""
    wal = _file_size(wal_path(database_path))
    return [
        ("collector_database_size_bytes",
         "Size of the database on disk, its write-ahead log included.",
         _file_size(database_path) + wal),
        ("collector_wal_size_bytes", "Size of SQLite's write-ahead log (WAL_MAX_MB bounds it).",
         wal),
    ]


def wal_path(database_path):
    """The write-ahead log beside the database file."""
    return f"{database_path}-wal"


def _file_size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _pragma(name):
    return database.execute_sql(f"PRAGMA {name}").fetchone()[0]


def readiness(database_path, min_free_mb):
    """Check name -> None when it passes, else what is wrong."""
    directory = os.path.dirname(os.path.abspath(database_path))
    return {
        "database": _database_problem(),
        "writable": _writable_problem(database_path, directory),
        "disk": _disk_problem(directory, min_free_mb),
    }


def _database_problem():
    try:
        with storage_errors():
            version = current_version()
    except CollectorError as exc:
        return exc.message
    except Exception as exc:  # whatever the driver raises, the probe reports it
        return f"the database does not answer: {exc}"
    if version < LATEST_VERSION:
        return f"schema version {version}, expected {LATEST_VERSION}: run `make migrate`"
    return None


def _writable_problem(path, directory):
    # SQLite in WAL mode writes the database file and its -wal/-shm files beside it.
    for target in (path, directory):
        if not os.access(target, os.W_OK):
            return f"{target} is not writable"
    return None


def _disk_problem(directory, min_free_mb):
    free_mb = shutil.disk_usage(directory).free // (1024 * 1024)
    if free_mb < min_free_mb:
        return f"{free_mb} MB free, below the floor of {min_free_mb} MB"
    try:
        pages = {name: database.execute_sql(f"PRAGMA {name}").fetchone()[0]
                 for name in ("page_count", "max_page_count", "freelist_count")}
    except Exception:  # the database check names the fault
        return None
    room = pages["max_page_count"] - pages["page_count"] + pages["freelist_count"]
    if room * PAGE_SIZE < 1024 * 1024:
        return "the database is at its size cap (SQLITE_MAX_SIZE_MB)"
    return None


def dump(connection, chunk=10_000):
    """Everything a move to another backend carries, read in the open read transaction: the
    chain's head, the records with their links (chunks of (id, *COLUMNS, chain)), the chain's
    pruned runs and checkpoints, API keys, rate buckets and idempotency keys."""
    last_id, link = chain.head(connection)

    def records():
        after = 0
        while rows := connection.execute(
            "SELECT id, {}, chain FROM log_record WHERE id > ? ORDER BY id LIMIT ?".format(
                ", ".join(COLUMNS)), (after, chunk)).fetchall():
            yield rows
            after = rows[-1][0]

    def table(sql):
        return connection.execute(sql).fetchall()

    return {
        "last_id": last_id, "link": link,
        "count": connection.execute("SELECT COUNT(*) FROM log_record").fetchone()[0],
        "records": records(),
        "audit_gap": table("SELECT first_id, last_id, link FROM audit_gap ORDER BY first_id"),
        "audit_checkpoint": table("SELECT id, created_at, after_id, pruned, gaps_digest, link"
                                  " FROM audit_checkpoint ORDER BY id"),
        "api_key": table("SELECT id, name, key_hash, scopes, services, rate_limit, created_at,"
                         " last_used_at, revoked_at FROM api_key ORDER BY id"),
        "rate_bucket": table("SELECT api_key_id, tokens, updated_at FROM rate_bucket"),
        "idempotency_key": table(
            "SELECT key, request_hash, created_at, outcome FROM idempotency_key"),
    }
