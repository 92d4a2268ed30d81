"""Operator tasks on the database: prune expired records, back up, restore, statistics."""

import datetime as dt
import json
import os
import sqlite3
import statistics
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import audit
from .db import database, write_transaction
from .migrations import LATEST_VERSION
from .times import now_micros

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


class MaintenanceError(Exception):
    """A maintenance task refused to run or failed; the message says why."""


@dataclass
class PruneReport:
    """What a prune did."""

    deleted: int = 0
    holds: list = field(default_factory=list)  # seconds each transaction held the write lock
    seconds: float = 0.0
    space: str = ""

    @property
    def max_hold_ms(self):
        return 1000 * max(self.holds, default=0.0)

    @property
    def median_hold_ms(self):
        return 1000 * statistics.median(self.holds) if self.holds else 0.0


def count_expired(retention, now):
    """How many records are expired at ``now`` (µs)."""
    condition, params = retention.expired_sql(now)
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
    condition, params = retention.expired_sql(now)
    select = _EXPIRED_IDS_SQL.format(condition=condition)
    position, size = (-(2**63), 0), FIRST_BATCH
    # SQLite's automatic checkpoint runs inside COMMIT, after the lock is
    # released: it would be timed as lock hold and upset the batch sizing.
    # A checkpoint after each batch keeps the WAL as small.
    with _pragma_set("wal_autocheckpoint", 0):
        while True:
            with database.atomic():  # one snapshot: a concurrent prune cannot cut a run short
                rows = database.execute_sql(
                    select, [*position, retention.expired_before(now), *params, size]
                ).fetchall()
                ids = [record_id for _, record_id in rows]
                altered = audit.check_before_pruning(database.connection(), ids)
            if not rows:
                break
            if altered:
                raise MaintenanceError(
                    f"refusing to prune record {altered.broken_at}: {altered.reason};"
                    " the audit chain is broken there (make verify)"
                )
            deleted, hold = _delete_ids(ids)
            database.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
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
    # covering them, in the deleting transaction (see collector.audit).
    with write_transaction() as connection:
        locked = time.perf_counter()
        change = audit.record_pruned(connection, ids)
        deleted = connection.execute(_DELETE_IDS_SQL, (json.dumps(ids),)).rowcount
        audit.append_checkpoint(connection, deleted, now_micros(), change)
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
    # TRUNCATE then blocks writers while it waits for readers to leave the
    # WAL, so it waits only briefly, a few times.
    database.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    with _pragma_set("busy_timeout", TRUNCATE_WAIT_MS):
        for _attempt in range(TRUNCATE_ATTEMPTS):
            started = time.perf_counter()
            busy, _, _ = database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return f"WAL truncated in {1000 * (time.perf_counter() - started):.1f} ms"
            time.sleep(0.1)
    return "WAL checkpointed but not truncated: readers kept it in use"


def backup(database_path, directory, on_progress=lambda copied, total: None):
    """Copy the live database to ``directory``/collector-<UTC time>.db and check it; its path.

    The copy is one read transaction's snapshot, taken with SQLite's online
    backup API a step of pages at a time: in WAL mode a reader does not block
    writers, so ingest goes on meanwhile.
    """
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = Path(directory) / f"collector-{stamp}.db"
    if target.exists():
        raise MaintenanceError(f"{target} already exists; try again in a second")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
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
    """Replace the database at ``database_path`` with a checked copy of ``source``.

    Refuses (MaintenanceError) when ``source`` is not a sound collector
    database or when a process has the live database open.
    """
    live = Path(database_path)
    staging = live.with_name(live.name + ".restoring")
    live.parent.mkdir(parents=True, exist_ok=True)
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
        for side_file in (f"{live}-wal", f"{live}-shm"):
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


@dataclass
class Stats:
    """The database's size and contents."""

    records: int
    oldest: int | None  # µs since the epoch
    newest: int | None
    database_bytes: int
    wal_bytes: int
    free_bytes: int
    per_service: list  # (service, records), most records first
    per_severity: list  # (severity, records), lowest level first


def stats(database_path):
    """The Stats of the live database."""

    def scalar(sql):
        return database.execute_sql(sql).fetchone()[0]

    return Stats(
        records=scalar("SELECT COUNT(*) FROM log_record"),
        # Separate queries: each of MIN and MAX alone is one index lookup.
        oldest=scalar("SELECT MIN(timestamp) FROM log_record"),
        newest=scalar("SELECT MAX(timestamp) FROM log_record"),
        database_bytes=_file_size(database_path),
        wal_bytes=_file_size(f"{database_path}-wal"),
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


def _file_size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def _pragma(name):
    return database.execute_sql(f"PRAGMA {name}").fetchone()[0]


def megabytes(size):
    """``size`` bytes in words, e.g. ``12.3 MB``."""
    return f"{size / 1e6:,.1f} MB"
