"""The write transaction of a group of batches, in SQLite: rows, their links, their index entries,
event ids, idempotency keys and rate buckets."""

import contextlib
import math
from collections import Counter

from ...errors import IdempotencyConflict, RateLimited
from ...records import COLUMNS, Row
from ..base import WriteTransaction, dump_outcome, load_outcome
from . import chain

# peewee's insert_many builds its query at ~35 us a row; executemany on the
# prepared statement is several times faster and this is the ingest hot path.
INSERT_SQL = "INSERT INTO log_record (id, {}, chain) VALUES ({})".format(
    ", ".join(COLUMNS), ", ".join("?" * (len(COLUMNS) + 2))
)
# New records are indexed in one statement a batch: an AFTER INSERT trigger
# does the same work row by row at ten times the cost.
INDEX_MESSAGES_SQL = (
    "INSERT INTO log_record_fts (rowid, message)"
    " SELECT id, message FROM log_record WHERE id BETWEEN ? AND ?"
)
INDEX_TRACES_SQL = (
    "INSERT INTO log_record_trace (rowid, trace_id)"
    " SELECT id, trace_id FROM log_record WHERE id BETWEEN ? AND ? AND trace_id IS NOT NULL"
)
_SELECT_ROWS_SQL = "SELECT {} FROM log_record WHERE id BETWEEN ? AND ? ORDER BY id".format(
    ", ".join(COLUMNS)
)
_TRACE_ID = COLUMNS.index("trace_id")  # rows may be plain tuples in COLUMNS order
_TIMESTAMP, _SERVICE, _RANK = (COLUMNS.index(name)
                               for name in ("timestamp", "service", "severity_rank"))
HOUR = 3_600_000_000  # µs: the width of record_count's buckets
_COUNT_SQL = (
    "INSERT INTO record_count (hour, service, severity_rank, count) VALUES (?, ?, ?, ?)"
    " ON CONFLICT DO UPDATE SET count = count + excluded.count"
)
# SQLite binds at most 32,766 parameters a statement; event ids go a chunk at a time.
_EVENTS_CHUNK = 500


def insert_rows(connection, rows):
    """Insert Rows with the next ids, link and index them; the id of the first.

    The caller holds the write lock in a transaction, so the rows take the next
    ids, their links continue the audit chain and the full-text index commits
    with them.
    """
    linked = chain.link_rows(connection, rows)
    connection.executemany(INSERT_SQL, linked)
    first_id, last_id = linked[0][0], linked[-1][0]
    connection.execute(INDEX_MESSAGES_SQL, (first_id, last_id))
    if any(row[_TRACE_ID] for row in rows):
        connection.execute(INDEX_TRACES_SQL, (first_id, last_id))
    counted = Counter((row[_TIMESTAMP] // HOUR, row[_SERVICE], row[_RANK]) for row in rows)
    connection.executemany(_COUNT_SQL, [(*key, count) for key, count in counted.items()])
    return first_id


class SqliteWriteTransaction(WriteTransaction):
    """A WriteTransaction on a connection that holds SQLite's write lock."""

    def __init__(self, connection):
        self.connection = connection

    @contextlib.contextmanager
    def savepoint(self):
        # Nothing to undo here: a batch's own failures (its idempotency key, its
        # rate limit) are raised by reads, before any of its writes, and a failed
        # write fails the whole transaction. Two statements a batch saved: a
        # tenth of a single-record request's SQL.
        yield

    def idempotent_outcome(self, key, request_hash, not_before):
        row = self.connection.execute(
            "SELECT request_hash, outcome FROM idempotency_key WHERE key = ? AND created_at >= ?",
            (key, not_before),
        ).fetchone()
        if row is None:
            return None
        if row[0] != request_hash:
            raise IdempotencyConflict()
        return load_outcome(row[1])

    def remember_outcome(self, key, request_hash, outcome, now):
        self.connection.execute(
            "INSERT OR REPLACE INTO idempotency_key (key, request_hash, created_at, outcome)"
            " VALUES (?, ?, ?, ?)",
            (key, request_hash, now, dump_outcome(outcome)),
        )

    def forget_idempotency_keys(self, not_before):
        self.connection.execute("DELETE FROM idempotency_key WHERE created_at < ?", (not_before,))

    def stored_events(self, events):
        by_service = {}
        for service, event_id in events:
            by_service.setdefault(service, []).append(event_id)
        found = set()
        for service, event_ids in by_service.items():
            for start in range(0, len(event_ids), _EVENTS_CHUNK):
                chunk = event_ids[start:start + _EVENTS_CHUNK]
                found.update((service, event_id) for (event_id,) in self.connection.execute(
                    "SELECT event_id FROM log_record WHERE service = ? AND event_id IS NOT NULL"
                    f" AND event_id IN ({', '.join('?' * len(chunk))})",
                    (service, *chunk),
                ))
        return found

    def take_tokens(self, api_key_id, rate, count, now):
        row = self.connection.execute(
            "SELECT tokens, updated_at FROM rate_bucket WHERE api_key_id = ?", (api_key_id,)
        ).fetchone()
        # A clock stepped back refills nothing rather than locking the key out.
        elapsed = 0 if row is None else max(0, now - row[1]) / 1e6
        tokens = rate if row is None else min(rate, row[0] + rate * elapsed)
        if tokens <= 0:
            raise RateLimited(rate, max(1, math.ceil(-tokens / rate)))
        self.connection.execute(
            "INSERT OR REPLACE INTO rate_bucket (api_key_id, tokens, updated_at) VALUES (?, ?, ?)",
            (api_key_id, tokens - count, now),
        )

    def insert(self, rows):
        return insert_rows(self.connection, rows)

    def rows_between(self, first_id, count):
        if not count:
            return []
        cursor = self.connection.execute(_SELECT_ROWS_SQL, (first_id, first_id + count - 1))
        return [Row._make(row) for row in cursor]
