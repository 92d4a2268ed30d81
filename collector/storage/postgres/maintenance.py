"""Operator tasks on PostgreSQL: prune (whole days by dropping partitions, the rest in bounded
batches), the prune lock and schedule, backup and restore with pg_dump and pg_restore,
statistics, readiness."""

import contextlib
import datetime as dt
import glob
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

from ...errors import CollectorError, MaintenanceError
from ...retention import MICROS_PER_DAY, PruneReport
from ...times import now_micros
from ..base import PruneSchedule, Stats
from . import chain, partitions
from .db import connect_raw, conninfo, database, storage_errors, transaction, write_transaction
from .migrations import LATEST_VERSION, PRUNE_LOCK, current_version
from .text import decode, encode_row

# A prune transaction is sized to hold the chain's head about this long: how long ingest
# may wait behind it.
TARGET_HOLD_SECONDS = 0.04
FIRST_BATCH, MIN_BATCH, MAX_BATCH = 1_000, 50, 20_000
PAUSE_SECONDS = 0.02
# The one prune that runs at a time, whoever started it (make prune or an autoprune).
PRUNE_RUN_LOCK = PRUNE_LOCK + 0x100


def expired_sql(retention, now):
    """An SQL condition on log_record, and its params: the record is expired at ``now`` (µs)."""
    cases = " ".join("WHEN %s THEN %s" for _ in retention.service_days)
    base = f"CASE service {cases} ELSE %s END" if cases else "%s"
    params = [
        *(value for service, days in retention.service_days.items()
          for value in (service, now - days * MICROS_PER_DAY)),
        now - retention.default_days * MICROS_PER_DAY,
    ]
    condition = f"timestamp < {base}"
    for rank, days in retention.severity_days.items():
        condition += " AND (severity_rank < %s OR timestamp < %s)"
        params += [rank, now - days * MICROS_PER_DAY]
    return condition, params


def partitions_ahead(config, now):
    """Create the partitions of the days from ``now`` to POSTGRES_PARTITIONS_AHEAD after it."""
    with write_transaction(config["WRITE_LOCK_TIMEOUT"]) as connection:
        chain.lock_head(connection)  # partitions are created under the head (see partitions)
        partitions.ahead(connection, now, config["POSTGRES_PARTITIONS_AHEAD"])


def all_expired_before(retention, now):
    """A time (µs) before which every record is expired, whatever its service and severity."""
    longest = max([retention.default_days, *retention.service_days.values(),
                   *retention.severity_days.values()])
    return now - longest * MICROS_PER_DAY


def count_expired(retention, now):
    """How many records are expired at ``now`` (µs)."""
    condition, params = expired_sql(retention, now)
    with storage_errors():
        return database.execute_sql(
            f"SELECT COUNT(*) FROM log_record WHERE timestamp < %s AND {condition}",
            [retention.expired_before(now), *params]).fetchone()[0]


def prune(retention, now, config, on_deleted=lambda count: None):
    """Delete the records expired at ``now`` (µs) while ingest goes on; a PruneReport.

    Whole days that every rule expires go by dropping their partition; the rest in
    batches sized to hold the chain's head about TARGET_HOLD_SECONDS. Either way, in the
    transaction that deletes them, the records are checked against their links (an
    altered one is not deleted: MaintenanceError) and their pruned runs and a checkpoint
    go into the audit chain. One prune runs at a time across every instance.
    """
    report = PruneReport()
    started = time.perf_counter()
    with _run_lock(config):
        partitions_ahead(config, now)
        whole_days_before = all_expired_before(retention, now) // partitions.DAY
        for day in _attached_days():
            if day < whole_days_before:
                deleted, hold = _drop_day(day, config)
                report.deleted += deleted
                report.holds.append(hold)
                on_deleted(deleted)
        condition, params = expired_sql(retention, now)
        select = (
            "SELECT timestamp, id, chain FROM log_record WHERE (timestamp, id) > (%s, %s)"
            f" AND timestamp < %s AND {condition} ORDER BY timestamp, id LIMIT %s")
        position, size = (-(2**63), 0), FIRST_BATCH
        while True:
            with write_transaction(config["WRITE_LOCK_TIMEOUT"]) as connection:
                locked = time.perf_counter()
                chain.lock_head(connection)  # what is found now is what gets deleted
                rows = connection.execute(
                    select, [*position, retention.expired_before(now), *params, size]).fetchall()
                if rows:
                    deleted = _delete(connection, {record_id: bytes(link)
                                                   for _, record_id, link in rows})
            if not rows:
                break
            hold = time.perf_counter() - locked
            report.deleted += deleted
            report.holds.append(hold)
            on_deleted(deleted)
            position = rows[-1][:2]
            size = max(MIN_BATCH, min(round(size * TARGET_HOLD_SECONDS / max(hold, 1e-4)),
                                      size * 3 // 2, MAX_BATCH))
            time.sleep(PAUSE_SECONDS)
    report.space = "space of dropped partitions returned at once; deleted rows go to autovacuum"
    report.seconds = time.perf_counter() - started
    return report


@contextlib.contextmanager
def _run_lock(config):
    with storage_errors():
        connection = connect_raw(config)
    try:
        if not connection.execute("SELECT pg_try_advisory_lock(%s)",
                                  (PRUNE_RUN_LOCK,)).fetchone()[0]:
            raise MaintenanceError("another prune is running (on this or another instance)")
        yield
    finally:
        connection.close()


def _attached_days():
    with transaction() as connection:
        return partitions.attached(connection)


def _check(connection, links):
    altered = chain.check_before_pruning(connection, list(links))
    if altered:
        raise MaintenanceError(f"refusing to prune record {altered.broken_at}: {altered.reason};"
                               " the audit chain is broken there (make verify)")


_DELETE_SQL = """WITH gone AS (
    DELETE FROM log_record WHERE id = ANY(%s)
    RETURNING timestamp / 3600000000 AS hour, service, severity_rank, event_id
), counted AS (
    UPDATE record_count c SET count = c.count - g.n
    FROM (SELECT hour, service, severity_rank, COUNT(*) AS n FROM gone GROUP BY 1, 2, 3) g
    WHERE c.hour = g.hour AND c.service = g.service AND c.severity_rank = g.severity_rank
), events AS (
    DELETE FROM event_key k USING gone g
    WHERE g.event_id IS NOT NULL AND k.service = g.service AND k.event_id = g.event_id
)
SELECT COUNT(*) FROM gone"""


def _delete(connection, links):
    """Delete the records {id: link} with the head locked; their runs and a checkpoint go in
    the chain, their counts and event ids with them."""
    _check(connection, links)
    change = chain.record_pruned(connection, links)
    deleted = connection.execute(_DELETE_SQL, (list(links),)).fetchone()[0]
    chain.append_checkpoint(connection, deleted, now_micros(), change)
    return deleted


def _drop_day(day, config):
    """Drop the partition of ``day`` whole, in one transaction with the head locked."""
    table = partitions.name(day)
    start = day * partitions.DAY
    with write_transaction(config["WRITE_LOCK_TIMEOUT"]) as connection:
        locked = time.perf_counter()
        chain.lock_head(connection)
        if partitions.missing(connection, [day]):  # another prune dropped it meanwhile
            return 0, 0.0
        links = {record_id: bytes(link) for record_id, link in connection.execute(
            f"SELECT id, chain FROM {table} ORDER BY id")}
        deleted = len(links)
        if links:
            _check(connection, links)
            change = chain.record_pruned(connection, links)
            connection.execute(
                f"DELETE FROM event_key k USING {table} r WHERE r.event_id IS NOT NULL"
                " AND k.service = r.service AND k.event_id = r.event_id")
            chain.append_checkpoint(connection, deleted, now_micros(), change)
        connection.execute("DELETE FROM record_count WHERE hour >= %s AND hour < %s",
                           (start // 3_600_000_000, (start + partitions.DAY) // 3_600_000_000))
        connection.execute(f"DROP TABLE {table}")
    return deleted, time.perf_counter() - locked


# The prune schedule: a session advisory lock, and the state in a row

@contextlib.contextmanager
def prune_schedule(config):
    """Hold the prune lock of every instance (a session advisory lock on a connection of its
    own) for the block, yielding the schedule; None when another holds it."""
    with storage_errors():
        connection = connect_raw(config)
    try:
        with storage_errors():
            held = connection.execute("SELECT pg_try_advisory_lock(%s)",
                                      (PRUNE_LOCK,)).fetchone()[0]
        yield _RowSchedule(connection) if held else None
    finally:
        connection.close()  # the lock goes with the session, as with a dead process


def peek_schedule():
    """The schedule's state read without the lock."""
    with storage_errors():
        row = database.execute_sql("SELECT state FROM prune_schedule WHERE id = 1").fetchone()
    return _parse(row[0]) if row else {}


class _RowSchedule(PruneSchedule):
    def __init__(self, connection):
        self.connection = connection

    def read(self):
        row = self.connection.execute("SELECT state FROM prune_schedule WHERE id = 1").fetchone()
        return _parse(row[0]) if row else {}

    def write(self, state):
        with storage_errors():
            self.connection.execute(
                "INSERT INTO prune_schedule (id, state) VALUES (1, %s)"
                " ON CONFLICT (id) DO UPDATE SET state = excluded.state", (json.dumps(state),))


def _parse(text):
    try:
        state = json.loads(text)
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


# Backup and restore: PostgreSQL's own tools

def backup(url, directory):
    """A pg_dump (custom format) of the database in ``directory``, named after it and
    readable by its owner only, checked by pg_restore --list; its path. The dump is one
    snapshot; ingest goes on meanwhile."""
    tool = _tool("pg_dump")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = Path(directory) / f"{_database_name(url)}-{stamp}.dump"
    if target.exists():
        raise MaintenanceError(f"{target} already exists; try again in a second")
    partial = target.with_name(target.name + ".partial")
    try:
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    except OSError as exc:
        raise MaintenanceError(f"BACKUP_DIR={str(directory)!r}: cannot write there"
                               f" ({exc.strerror}); set it to a directory you can write") from None
    try:
        _run([tool, "--format=custom", "--no-owner", f"--file={partial}", conninfo(url)])
        _run([_tool("pg_restore"), "--list", str(partial)])
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def latest_backup(url, directory):
    """The newest dump of the database ``url`` names in ``directory``, or None."""
    # The UTC stamps in the names sort as the times do.
    found = sorted(Path(directory).glob(f"{glob.escape(_database_name(url))}-*.dump"))
    return found[-1] if found else None


def _database_name(url):
    return urlsplit(url).path.lstrip("/") or "postgres"


def restore(url, source):
    """Replace the database's contents with the pg_dump ``source``, in one transaction;
    refuses while another session (a running collector) is connected."""
    _run([_tool("pg_restore"), "--list", str(source)],
         f"refusing to restore {source}: it is not a pg_dump archive")
    database.close_all()  # this process's own pooled connections are not a collector running
    with transaction() as connection:
        others = connection.execute(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'").fetchone()[0]
    database.close_all()
    if others:
        raise MaintenanceError(f"refusing to restore: {others} other sessions are connected to"
                               " the database; stop the collector first")
    _run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
          "--exit-on-error", f"--dbname={conninfo(url)}", str(source)])


def _tool(name):
    found = shutil.which(name)
    if found is None:
        raise MaintenanceError(f"{name} is not installed (Debian: apt-get install"
                               " postgresql-client)")
    return found


def _run(command, refusal=None):
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        reason = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise MaintenanceError(refusal or f"{Path(command[0]).name}: {reason}")


# Statistics and readiness

def stats(name):
    """The Stats of the database."""
    with storage_errors():
        def scalar(sql):
            return database.execute_sql(sql).fetchone()[0]

        return Stats(
            name=name,
            records=scalar("SELECT COUNT(*) FROM log_record"),
            oldest=scalar("SELECT MIN(timestamp) FROM log_record"),
            newest=scalar("SELECT MAX(timestamp) FROM log_record"),
            database_bytes=scalar("SELECT pg_database_size(current_database())"),
            wal_bytes=0,  # the server's WAL is PostgreSQL's to manage
            free_bytes=0,
            per_service=[(decode(service), count) for service, count in database.execute_sql(
                "SELECT service, COUNT(*) AS n FROM log_record"
                " GROUP BY service ORDER BY n DESC, service")],
            per_severity=database.execute_sql(
                "SELECT severity, COUNT(*) FROM log_record GROUP BY severity_rank, severity"
                " ORDER BY severity_rank").fetchall(),
        )


def gauges():
    """The database's size, as a /metrics gauge."""
    with storage_errors():
        size = database.execute_sql("SELECT pg_database_size(current_database())").fetchone()[0]
    return [("collector_database_size_bytes", "Size of the database on disk.", size)]


def readiness():
    """Check name -> None when it passes, else what is wrong."""
    try:
        with storage_errors():
            version = current_version()
            read_only = database.execute_sql("SHOW transaction_read_only").fetchone()[0] == "on"
    except CollectorError as exc:
        return {"database": exc.message, "writable": None}
    except Exception as exc:  # whatever the driver raises, the probe reports it
        return {"database": f"the database does not answer: {exc}", "writable": None}
    if version < LATEST_VERSION:
        return {"database": f"schema version {version}, expected {LATEST_VERSION}:"
                            " run `make migrate`", "writable": None}
    return {"database": None,
            "writable": "the server is read-only (a standby?)" if read_only else None}


# A move from SQLite (make migrate-to-postgres)

def load(dump, on_progress=lambda copied: None):
    """Copy a SQLite store's dump (see the sqlite backend's maintenance.dump) into this empty,
    migrated database in one transaction: records with their links, the chain's pruned runs,
    checkpoints and head, keys, rate buckets and idempotency keys. Patterns are mined again."""
    from .writes import COPY_SQL, COPY_TYPES

    with transaction() as connection:
        last_id, _ = chain.lock_head(connection)
        if last_id or connection.execute("SELECT EXISTS (SELECT 1 FROM api_key)").fetchone()[0]:
            raise MaintenanceError("refusing to copy: the PostgreSQL database is not empty")
        for rows in dump["records"]:
            partitions.create(connection, partitions.days_of(row[2] for row in rows))
            with connection.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
                copy.set_types(COPY_TYPES)
                for row in rows:
                    copy.write_row(encode_row(row, 1))
            on_progress(len(rows))
        connection.execute("INSERT INTO event_key (service, event_id) SELECT service, event_id"
                           " FROM log_record WHERE event_id IS NOT NULL")
        connection.execute(
            "INSERT INTO record_count (hour, service, severity_rank, count)"
            " SELECT timestamp / 3600000000, service, severity_rank, COUNT(*) FROM log_record"
            " GROUP BY 1, 2, 3")
        with connection.cursor() as cursor:
            for table, columns in (
                ("audit_gap", "first_id, last_id, link"),
                ("audit_checkpoint", "id, created_at, after_id, pruned, gaps_digest, link"),
                ("api_key", "id, name, key_hash, scopes, services, rate_limit, created_at,"
                            " last_used_at, revoked_at"),
                ("rate_bucket", "api_key_id, tokens, updated_at"),
                ("idempotency_key", "key, request_hash, created_at, outcome"),
            ):
                if dump[table]:
                    places = ", ".join(["%s"] * len(dump[table][0]))
                    cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({places})",
                                       dump[table])
        for table in ("api_key", "audit_checkpoint"):  # new rows go on after the copied ids
            connection.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                               f" COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)")
        chain.move_head(connection, dump["last_id"], bytes(dump["link"]))
