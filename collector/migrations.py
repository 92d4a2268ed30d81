"""Schema migrations: ordered, each applied once, recorded in ``schema_version``.

Each migration is plain DDL frozen at the time it was written, so a database
created by any release can be brought up to date by a later one.
"""

import time

import peewee as pw

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
]

LATEST_VERSION = MIGRATIONS[-1][0]


def current_version():
    """The newest migration applied to the database, 0 for an empty one."""
    try:
        row = database.execute_sql("SELECT MAX(version) FROM schema_version").fetchone()
    except pw.OperationalError:  # no schema_version table yet
        return 0
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
        with write_transaction():
            if current_version() >= version:
                continue
            for statement in statements:
                database.execute_sql(statement)
            database.execute_sql(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, time.time_ns() // 1000),
            )
        applied.append(version)
    return applied
