"""The write transaction of a group of batches, in PostgreSQL: the chain's head, binary COPY of
the rows, event ids, idempotency keys, rate buckets and hourly counts.

Every statement that another instance could race on runs with the chain's head locked
(``_head``): the first such statement of the transaction locks it, and it is held to the
commit. Only one lock is ever waited on, so instances never deadlock; a second instance
retrying an idempotency key waits for the first one's commit and replays its answer, and
an event id stored by another instance is always seen.
"""

import contextlib
import math
from collections import Counter

from ...errors import IdempotencyConflict, RateLimited
from ...records import COLUMNS, Row
from ..base import WriteTransaction, dump_outcome, load_outcome
from . import chain, partitions
from .db import database
from .text import decode, decode_row, encode, encode_row

# Binary COPY: 50-68k rows/s into the indexed table against 13-21k for a multi-row INSERT
# (measured on the 2-core machine, shared/notes/postgres.md): the ingest hot path.
COPY_SQL = "COPY log_record (id, {}, chain) FROM STDIN (FORMAT BINARY)".format(", ".join(COLUMNS))
# attributes go as their text (json's binary form is its text): psycopg's json dumper
# would encode the str as a JSON string.
COPY_TYPES = ["int8", "int8", "int8", "text", "text", "int2", "text", "text", "text", "text",
              "text", "text", "int4", "bytea"]
_SELECT_ROWS_SQL = "SELECT {} FROM log_record WHERE id BETWEEN %s AND %s ORDER BY id".format(
    ", ".join(COLUMNS))
_TIMESTAMP, _SERVICE, _RANK, _EVENT = (COLUMNS.index(name) for name in
                                       ("timestamp", "service", "severity_rank", "event_id"))
HOUR = 3_600_000_000  # µs: the width of record_count's buckets
_COUNT_SQL = (
    "INSERT INTO record_count (hour, service, severity_rank, count)"
    " SELECT * FROM unnest(%s::bigint[], %s::text[], %s::smallint[], %s::bigint[])"
    " ON CONFLICT (hour, service, severity_rank)"
    " DO UPDATE SET count = record_count.count + excluded.count"
)


def insert_rows(connection, rows):
    """Insert Rows with the next ids, linked into the chain, counted; the id of the first.

    The caller holds the chain's head (``chain.lock_head``) in this transaction.
    """
    last_id, link = chain.lock_head(connection)
    partitions.create(connection, partitions.days_of(row[_TIMESTAMP] for row in rows))
    linked = chain.audit.link_rows(last_id, link, rows)
    with connection.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
        copy.set_types(COPY_TYPES)
        for row in linked:
            copy.write_row(encode_row(row, 1))  # linked as sent, stored as PostgreSQL can
    chain.move_head(connection, linked[-1][0], linked[-1][-1])
    events = [(row[_SERVICE], row[_EVENT]) for row in rows if row[_EVENT] is not None]
    if events:
        connection.execute(
            "INSERT INTO event_key (service, event_id)"
            " SELECT * FROM unnest(%s::text[], %s::text[])",
            ([encode(service) for service, _ in events],
             [encode(event_id) for _, event_id in events]))
    counted = Counter((row[_TIMESTAMP] // HOUR, encode(row[_SERVICE]), row[_RANK]) for row in rows)
    connection.execute(_COUNT_SQL, [list(column) for column in zip(
        *((*key, count) for key, count in counted.items()), strict=True)])
    return last_id + 1


class PostgresWriteTransaction(WriteTransaction):
    """A WriteTransaction on this thread's connection, in its transaction."""

    def __init__(self, connection):
        self.connection = connection
        self.head_locked = False

    def _head(self):
        if not self.head_locked:
            chain.lock_head(self.connection)
            self.head_locked = True

    @contextlib.contextmanager
    def savepoint(self):
        # A batch that fails (its rate limit, its key) undoes its own writes only; the head's
        # lock, when this savepoint took it, goes with them.
        locked = self.head_locked
        try:
            with database.atomic():
                yield
        except Exception:
            self.head_locked = locked
            raise

    def idempotent_outcome(self, key, request_hash, not_before):
        self._head()  # a batch of this key committing elsewhere is seen once it has
        row = self.connection.execute(
            "SELECT request_hash, outcome FROM idempotency_key"
            " WHERE key = %s AND created_at >= %s", (key, not_before)).fetchone()
        if row is None:
            return None
        if row[0] != request_hash:
            raise IdempotencyConflict()
        return load_outcome(row[1])

    def remember_outcome(self, key, request_hash, outcome, now):
        self.connection.execute(
            "INSERT INTO idempotency_key (key, request_hash, created_at, outcome)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (key) DO UPDATE SET"
            " request_hash = excluded.request_hash, created_at = excluded.created_at,"
            " outcome = excluded.outcome",
            (key, request_hash, now,
             dump_outcome(outcome).decode()))

    def forget_idempotency_keys(self, not_before):
        self.connection.execute("DELETE FROM idempotency_key WHERE created_at < %s",
                                (not_before,))

    def stored_events(self, events):
        self._head()  # an event id stored by another instance is committed by now
        events = list(events)
        found = self.connection.execute(
            "SELECT k.service, k.event_id FROM event_key k"
            " JOIN unnest(%s::text[], %s::text[]) AS e (service, event_id)"
            " ON k.service = e.service AND k.event_id = e.event_id",
            ([encode(service) for service, _ in events],
             [encode(event_id) for _, event_id in events]))
        return {(decode(service), decode(event_id)) for service, event_id in found}

    def take_tokens(self, api_key_id, rate, count, now):
        self._head()
        row = self.connection.execute(
            "SELECT tokens, updated_at FROM rate_bucket WHERE api_key_id = %s",
            (api_key_id,)).fetchone()
        # A clock stepped back refills nothing rather than locking the key out.
        elapsed = 0 if row is None else max(0, now - row[1]) / 1e6
        tokens = rate if row is None else min(rate, row[0] + rate * elapsed)
        if tokens <= 0:
            raise RateLimited(rate, max(1, math.ceil(-tokens / rate)))
        self.connection.execute(
            "INSERT INTO rate_bucket (api_key_id, tokens, updated_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (api_key_id) DO UPDATE SET tokens = excluded.tokens,"
            " updated_at = excluded.updated_at", (api_key_id, tokens - count, now))

    def insert(self, rows):
        self.head_locked = True
        return insert_rows(self.connection, rows)

    def rows_between(self, first_id, count):
        if not count:
            return []
        cursor = self.connection.execute(_SELECT_ROWS_SQL, (first_id, first_id + count - 1))
        return [Row._make(decode_row(row)) for row in cursor]
