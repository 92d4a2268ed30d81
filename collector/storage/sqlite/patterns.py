"""Patterns in SQLite: a second database file beside the records' (``<name>-patterns.db``).

The miner writes there only, so it never takes the records' write lock: ingest's one
writer and WRITE_LOCK_TIMEOUT are untouched. A read that needs patterns attaches the file
to its connection for that query alone (about 0.2 ms): a connection that ingest then uses
must not have it attached, for BEGIN IMMEDIATE locks every attached database and would
make the miner and ingest wait for each other.

Tables (``MIGRATIONS``): ``record_pattern`` (the pattern id each record was given),
``pattern`` (its creation key, canonical id, text and counts), ``pattern_cluster`` (the Drain
clusters, with the values of their few-valued places: the miner's state, rebuilt from rows
on start), ``miner_state`` (the generation and the last record mined).
"""

import contextlib
import os
import sqlite3
import time
from pathlib import Path

import orjson
import peewee as pw

from ...patterns.index import ClusterRow, Pattern
from ..base import MinerLedger, MiningProgress
from . import prune_lock
from .db import database, storage_errors
from .files import private_file
from .models import LogRecord as R

SCHEMA = "patterns"  # the name the file is attached under

MIGRATIONS = [
    (
        1,
        "patterns, their clusters, the pattern of each record, the miner's progress",
        [
            """CREATE TABLE miner_state (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                generation TEXT NOT NULL,
                mined_id INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            )""",
            """CREATE TABLE pattern_cluster (
                service TEXT NOT NULL,
                cluster_id INTEGER NOT NULL,
                created TEXT NOT NULL,
                template TEXT NOT NULL,
                places TEXT NOT NULL,
                PRIMARY KEY (service, cluster_id)
            ) WITHOUT ROWID""",
            """CREATE TABLE pattern (
                id INTEGER PRIMARY KEY,
                service TEXT NOT NULL,
                cluster_id INTEGER NOT NULL,
                key TEXT NOT NULL,
                canonical_id INTEGER NOT NULL,
                text TEXT NOT NULL,
                first_seen INTEGER,
                last_seen INTEGER,
                records INTEGER NOT NULL
            )""",
            "CREATE INDEX pattern_canonical_id ON pattern (canonical_id)",
            """CREATE TABLE record_pattern (
                record_id INTEGER PRIMARY KEY,
                pattern_id INTEGER NOT NULL
            )""",
            "CREATE INDEX record_pattern_pattern_id ON record_pattern (pattern_id, record_id)",
        ],
    ),
]
LATEST_VERSION = MIGRATIONS[-1][0]
_TABLES = ("miner_state", "pattern_cluster", "pattern", "record_pattern")

# Past this many records a pattern counts as common (see pattern_clause).
COMMON_PATTERN_RECORDS = 5000


def path_beside(database_path):
    """The patterns file of the records' database file ``database_path``."""
    records = Path(database_path)
    return str(records.with_name(f"{records.stem}-patterns{records.suffix or '.db'}"))


def _connect(path, timeout):
    private_file(path)  # its -wal and -shm files take its mode
    connection = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                                 check_same_thread=False)
    connection.execute("PRAGMA journal_mode = wal")
    connection.execute("PRAGMA synchronous = NORMAL")
    return connection


def migrate(path, timeout):
    """Create or upgrade the patterns file's tables; the versions applied."""
    applied = []
    with contextlib.closing(_connect(path, timeout)) as connection:
        for version, _description, statements in MIGRATIONS:
            connection.execute("BEGIN IMMEDIATE")  # two concurrent runs apply it once
            try:
                if connection.execute("PRAGMA user_version").fetchone()[0] < version:
                    for statement in statements:
                        connection.execute(statement)
                    connection.execute(f"PRAGMA user_version = {version}")
                    applied.append(version)
                connection.execute("COMMIT")
            finally:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
    return applied


def reset(path, timeout):
    """Empty the patterns file (a restored database is mined again from its first record)."""
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(name)
    migrate(path, timeout)


@contextlib.contextmanager
def attached(path):
    """Attach the patterns file to this thread's connection for the block."""
    connection = database.connection()
    with storage_errors():
        connection.execute(f"ATTACH DATABASE ? AS {SCHEMA}", (path,))
    try:
        yield
    finally:
        connection.execute(f"DETACH DATABASE {SCHEMA}")


# The reads, on a connection the file is attached to

class RecordPattern(pw.Model):
    record_id = pw.IntegerField(primary_key=True)
    pattern_id = pw.IntegerField()

    class Meta:
        database = database
        schema = SCHEMA
        table_name = "record_pattern"


class PatternRow(pw.Model):
    id = pw.IntegerField(primary_key=True)
    service = pw.TextField()
    canonical_id = pw.IntegerField()
    text = pw.TextField()
    first_seen = pw.BigIntegerField(null=True)
    records = pw.IntegerField()

    class Meta:
        database = database
        schema = SCHEMA
        table_name = "pattern"


def with_pattern_ids(query):
    """``query`` of log records with each one's canonical pattern id as a last column."""
    return (query.select_extend(PatternRow.canonical_id)
            .join(RecordPattern, pw.JOIN.LEFT_OUTER, on=(RecordPattern.record_id == R.id))
            .join(PatternRow, pw.JOIN.LEFT_OUTER, on=(PatternRow.id == RecordPattern.pattern_id))
            .switch(R))


def pattern_clause(pattern_id):
    """Records of the pattern that stands for ``pattern_id`` now (and of its aliases).

    A rare pattern is fastest looked up record by record; a common one is fastest found by
    walking the time (or service) index and looking up each record's pattern there.
    """
    canonical, records = database.execute_sql(
        f"SELECT canonical_id, (SELECT COALESCE(SUM(records), 0) FROM {SCHEMA}.pattern"
        f" WHERE canonical_id = p.canonical_id) FROM {SCHEMA}.pattern p WHERE id = ?",
        (pattern_id,),
    ).fetchone() or (None, 0)
    if canonical is None:
        return pw.SQL("0")  # no such pattern: no record
    if records < COMMON_PATTERN_RECORDS:
        aliases = PatternRow.select(PatternRow.id).where(PatternRow.canonical_id == canonical)
        return R.id.in_(RecordPattern.select(RecordPattern.record_id)
                        .where(RecordPattern.pattern_id.in_(aliases)))
    of_record = (PatternRow.select(PatternRow.canonical_id)
                 .join(RecordPattern, on=(RecordPattern.pattern_id == PatternRow.id))
                 .where(RecordPattern.record_id == R.id))
    return of_record == canonical


def progress(path):
    """The MiningProgress, read on this thread's connection with the file attached."""
    with attached(path):
        row = database.execute_sql(f"SELECT mined_id FROM {SCHEMA}.miner_state").fetchone()
    mined_id = row[0] if row else 0
    newest = R.select(R.id).order_by(R.id.desc()).limit(1).scalar() or 0
    oldest = (R.select(R.received_at).where(R.id > mined_id).order_by(R.id).limit(1).scalar()
              if newest > mined_id else None)
    return MiningProgress(mined_id, newest, oldest)


# The miner's ledger: its own connection to the records' file, with the patterns attached.
# Its transactions are deferred and write the patterns only, so they lock that file alone.

@contextlib.contextmanager
def miner_ledger(database_path, path, timeout):
    """Hold the one miner lock (a file beside the patterns), yielding the ledger or None."""
    with prune_lock.exclusive(f"{path}.lock") as locked:
        if locked is None:
            yield None
            return
        connection = sqlite3.connect(database_path, timeout=timeout, isolation_level=None,
                                     check_same_thread=False)
        try:
            connection.execute(f"ATTACH DATABASE ? AS {SCHEMA}", (path,))
            yield SqliteMinerLedger(connection)
        finally:
            connection.close()


class SqliteMinerLedger(MinerLedger):
    """The MinerLedger on one connection of the miner's."""

    def __init__(self, connection):
        self.connection = connection

    def load(self, generation):
        with storage_errors(), self._transaction() as connection:
            state = connection.execute(
                f"SELECT generation, mined_id FROM {SCHEMA}.miner_state").fetchone()
            if state is not None and state[0] == generation:
                clusters = [
                    ClusterRow(service, cluster_id, tuple(orjson.loads(created)),
                               tuple(orjson.loads(template)), orjson.loads(places))
                    for service, cluster_id, created, template, places in connection.execute(
                        "SELECT service, cluster_id, created, template, places"
                        f" FROM {SCHEMA}.pattern_cluster ORDER BY service, cluster_id")
                ]
                patterns = [
                    Pattern(pattern_id, service, cluster_id, tuple(orjson.loads(key)),
                            canonical_id, text, first_seen, last_seen, records)
                    for (pattern_id, service, cluster_id, key, canonical_id, text, first_seen,
                         last_seen, records) in connection.execute(
                        "SELECT id, service, cluster_id, key, canonical_id, text, first_seen,"
                        f" last_seen, records FROM {SCHEMA}.pattern ORDER BY id")
                ]
                return state[1], clusters, patterns
            for table in _TABLES:  # another generation, or nothing: start afresh
                connection.execute(f"DELETE FROM {SCHEMA}.{table}")
            connection.execute(
                f"INSERT INTO {SCHEMA}.miner_state (id, generation, mined_id, updated_at)"
                " VALUES (1, ?, 0, ?)", (generation, time.time_ns() // 1000))
            return 0, [], []

    def unmined(self, after_id, limit):
        with storage_errors():
            return self.connection.execute(
                "SELECT id, service, message, timestamp, received_at FROM log_record"
                " WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)).fetchall()

    def save(self, changes, mined_id):
        with storage_errors(), self._transaction() as connection:
            connection.executemany(
                f"INSERT OR REPLACE INTO {SCHEMA}.record_pattern (record_id, pattern_id)"
                " VALUES (?, ?)", changes.assigned)
            connection.executemany(
                f"INSERT OR REPLACE INTO {SCHEMA}.pattern_cluster"
                " (service, cluster_id, created, template, places) VALUES (?, ?, ?, ?, ?)",
                [(row.service, row.cluster_id, orjson.dumps(row.created).decode(),
                  orjson.dumps(row.template).decode(), orjson.dumps(row.places).decode())
                 for row in changes.clusters])
            connection.executemany(
                f"INSERT OR REPLACE INTO {SCHEMA}.pattern (id, service, cluster_id, key,"
                " canonical_id, text, first_seen, last_seen, records)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(p.id, p.service, p.cluster_id, orjson.dumps(p.key).decode(), p.canonical_id,
                  p.text, p.first_seen, p.last_seen, p.records) for p in changes.patterns])
            connection.execute(
                f"UPDATE {SCHEMA}.miner_state SET mined_id = ?, updated_at = ?",
                (mined_id, time.time_ns() // 1000))

    def forget_pruned(self, after_id, limit):
        with storage_errors(), self._transaction() as connection:
            ids = [record_id for (record_id,) in connection.execute(
                f"SELECT record_id FROM {SCHEMA}.record_pattern WHERE record_id > ?"
                " ORDER BY record_id LIMIT ?", (after_id, limit))]
            if not ids:
                return None
            connection.execute(
                f"DELETE FROM {SCHEMA}.record_pattern WHERE record_id BETWEEN ? AND ?"
                " AND record_id NOT IN (SELECT id FROM log_record WHERE id BETWEEN ? AND ?)",
                (ids[0], ids[-1], ids[0], ids[-1]))
            return ids[-1]

    @contextlib.contextmanager
    def _transaction(self):
        # Deferred: it locks only the file it writes, the patterns'.
        self.connection.execute("BEGIN")
        try:
            yield self.connection
            self.connection.execute("COMMIT")
        finally:
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")
