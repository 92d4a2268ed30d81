"""Schema migrations: ordered, each applied once, recorded in ``schema_version``.

Each migration is plain DDL frozen at the time it was written (or a function
of the connection, where data must be computed), so a database created by any
release can be brought up to date by a later one.
"""

import time

import peewee as pw

from . import chain
from .db import database, write_transaction

MIGRATIONS = [
    (
        1,
        "log records with indexes for time, service and severity",
        [
            """CREATE TABLE IF NOT EXISTS log_record (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                received_at INTEGER NOT NULL,
                timestamp INTEGER NOT NULL,
                service TEXT NOT NULL,
                severity TEXT NOT NULL,
                severity_rank INTEGER NOT NULL,
                message TEXT NOT NULL,
                host TEXT,
                trace_id TEXT,
                span_id TEXT,
                attributes TEXT
            )""",
            "CREATE INDEX IF NOT EXISTS log_record_timestamp ON log_record (timestamp)",
            "CREATE INDEX IF NOT EXISTS log_record_service_timestamp"
            " ON log_record (service, timestamp)",
            "CREATE INDEX IF NOT EXISTS log_record_severity_rank_timestamp"
            " ON log_record (severity_rank, timestamp)",
        ],
    ),
    (
        2,
        "full-text index of messages, kept in step by triggers; index of trace ids",
        [
            # External content: the index stores terms only, the text stays in log_record.
            """CREATE VIRTUAL TABLE IF NOT EXISTS log_record_fts USING fts5(
                message, content='log_record', content_rowid='id',
                tokenize='unicode61 remove_diacritics 2'
            )""",
            # New records are indexed by LogRecord.insert_rows in the inserting
            # transaction, one statement a batch: an AFTER INSERT trigger does the
            # same work row by row at ten times the cost. Deletions (retention)
            # go through this trigger.
            """CREATE TRIGGER IF NOT EXISTS log_record_fts_delete AFTER DELETE ON log_record BEGIN
                INSERT INTO log_record_fts (log_record_fts, rowid, message)
                VALUES ('delete', old.id, old.message);
            END""",
            "INSERT INTO log_record_fts (log_record_fts) VALUES ('rebuild')",
            "CREATE INDEX IF NOT EXISTS log_record_trace_id ON log_record (trace_id)"
            " WHERE trace_id IS NOT NULL",
        ],
    ),
    (
        3,
        "client event ids, unique per service; idempotency keys of acknowledged batches",
        [
            "ALTER TABLE log_record ADD COLUMN event_id TEXT",
            "CREATE UNIQUE INDEX IF NOT EXISTS log_record_service_event_id"
            " ON log_record (service, event_id) WHERE event_id IS NOT NULL",
            """CREATE TABLE IF NOT EXISTS idempotency_key (
                key TEXT PRIMARY KEY,
                request_hash TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                outcome TEXT NOT NULL
            ) WITHOUT ROWID""",
            "CREATE INDEX IF NOT EXISTS idempotency_key_created_at"
            " ON idempotency_key (created_at)",
        ],
    ),
    (
        4,
        "API keys and their rate buckets; the key and audit chain link of each record",
        [
            """CREATE TABLE api_key (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL,
                key_hash TEXT NOT NULL UNIQUE,
                scopes TEXT NOT NULL,
                services TEXT,
                rate_limit REAL,
                created_at INTEGER NOT NULL,
                last_used_at INTEGER,
                revoked_at INTEGER
            )""",
            "CREATE UNIQUE INDEX api_key_active_name ON api_key (name) WHERE revoked_at IS NULL",
            """CREATE TABLE rate_bucket (
                api_key_id INTEGER PRIMARY KEY,
                tokens REAL NOT NULL,
                updated_at INTEGER NOT NULL
            )""",
            "ALTER TABLE log_record ADD COLUMN api_key_id INTEGER",
            "ALTER TABLE log_record ADD COLUMN chain BLOB",
            # Runs of pruned ids, with the link of each run's last record.
            """CREATE TABLE audit_gap (
                first_id INTEGER PRIMARY KEY,
                last_id INTEGER NOT NULL,
                link BLOB NOT NULL
            )""",
            # One per prune transaction, linked into the chain after record after_id.
            """CREATE TABLE audit_checkpoint (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                created_at INTEGER NOT NULL,
                after_id INTEGER NOT NULL,
                pruned INTEGER NOT NULL,
                gaps_digest BLOB NOT NULL,
                link BLOB NOT NULL
            )""",
            chain.link_existing_records,
            # Records are append-only: the only change is deletion by retention.
            """CREATE TRIGGER log_record_append_only BEFORE UPDATE ON log_record BEGIN
                SELECT RAISE(ABORT, 'log records are append-only');
            END""",
        ],
    ),
    (
        5,
        "prune checkpoints by their place in the chain",
        [
            "CREATE INDEX IF NOT EXISTS audit_checkpoint_after_id"
            " ON audit_checkpoint (after_id, id)",
        ],
    ),
    (
        6,
        "trace ids indexed in a full-text table instead of a b-tree",
        [
            # A b-tree on random trace ids dirtied about one page per record (990 of a
            # 1,000-record transaction's 2,100 pages at 1 M rows, measured): FTS5 writes
            # a new segment per transaction instead, and merges segments in bulk.
            """CREATE VIRTUAL TABLE IF NOT EXISTS log_record_trace USING fts5(
                trace_id, content='log_record', content_rowid='id',
                detail=none, columnsize=0, tokenize='ascii'
            )""",
            "INSERT INTO log_record_trace (log_record_trace) VALUES ('rebuild')",
            """CREATE TRIGGER IF NOT EXISTS log_record_trace_delete AFTER DELETE ON log_record
            WHEN old.trace_id IS NOT NULL BEGIN
                INSERT INTO log_record_trace (log_record_trace, rowid, trace_id)
                VALUES ('delete', old.id, old.trace_id);
            END""",
            "DROP INDEX IF EXISTS log_record_trace_id",
        ],
    ),
    (
        7,
        "counts of records by hour, service and severity, kept with the records",
        [
            # Counting 10 M records by severity over a day visits every index entry
            # of the day; the hourly counts answer it from a few thousand rows.
            """CREATE TABLE IF NOT EXISTS record_count (
                hour INTEGER NOT NULL,
                service TEXT NOT NULL,
                severity_rank INTEGER NOT NULL,
                count INTEGER NOT NULL,
                PRIMARY KEY (hour, service, severity_rank)
            ) WITHOUT ROWID""",
            "INSERT INTO record_count (hour, service, severity_rank, count)"
            " SELECT timestamp / 3600000000, service, severity_rank, COUNT(*) FROM log_record"
            " GROUP BY 1, 2, 3",
            # New records are counted by insert_rows, a statement a group; a deletion
            # (retention) is taken off here.
            """CREATE TRIGGER IF NOT EXISTS log_record_count_delete AFTER DELETE ON log_record
            BEGIN
                UPDATE record_count SET count = count - 1 WHERE hour = old.timestamp / 3600000000
                    AND service = old.service AND severity_rank = old.severity_rank;
            END""",
        ],
    ),
]

LATEST_VERSION = MIGRATIONS[-1][0]


def current_version():
    """The newest migration applied to the database, 0 for an empty one."""
    try:
        row = database.execute_sql("SELECT MAX(version) FROM schema_version").fetchone()
    except pw.OperationalError as exc:
        if "no such table" in str(exc):  # an empty database
            return 0
        raise
    return row[0] or 0


def migrate():
    """Apply every pending migration; return the versions applied (none when up to date)."""
    database.execute_sql(
        "CREATE TABLE IF NOT EXISTS schema_version"
        " (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)"
    )
    applied = []
    for version, _description, statements in MIGRATIONS:
        # One transaction each, re-checked under the write lock so two
        # concurrent runs cannot apply the same migration twice.
        with write_transaction() as connection:
            if current_version() >= version:
                continue
            for statement in statements:
                if callable(statement):
                    statement(connection)
                else:
                    database.execute_sql(statement)
            database.execute_sql(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, time.time_ns() // 1000),
            )
        applied.append(version)
    return applied
