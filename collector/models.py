"""Tables of the collector, as peewee models."""

import math

import orjson
import peewee as pw

from . import audit
from .db import database
from .errors import APIError
from .times import format_micros


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class LogRecord(BaseModel):
    """One stored log record. Times are integer microseconds since the epoch, UTC."""

    id = pw.AutoField()
    received_at = pw.BigIntegerField()
    timestamp = pw.BigIntegerField()
    service = pw.TextField()
    severity = pw.TextField()
    severity_rank = pw.SmallIntegerField()
    message = pw.TextField()
    host = pw.TextField(null=True)
    trace_id = pw.TextField(null=True)
    span_id = pw.TextField(null=True)
    attributes = pw.TextField(null=True)  # a JSON object, serialized
    event_id = pw.TextField(null=True)  # the client's id, unique per service
    api_key_id = pw.IntegerField(null=True)  # the key that sent it; None: no key was needed
    chain = pw.BlobField()  # its link in the audit chain (see collector.audit)

    # The order of the columns that ``insert_rows`` expects in each row.
    INSERT_COLUMNS = audit.RECORD_COLUMNS

    class Meta:
        table_name = "log_record"  # created by collector.migrations, with its indexes

    @staticmethod
    def insert_rows(connection, rows):
        """Insert row tuples in ``INSERT_COLUMNS`` order, link and index them.

        Returns the id of the first row. The caller holds the write lock in a
        transaction (see ``db.write_transaction``), so the rows take the next
        ids, their links continue the audit chain and the full-text index
        commits with them.
        """
        linked = audit.link_rows(connection, rows)
        connection.executemany(INSERT_SQL, linked)
        first_id, last_id = linked[0][0], linked[-1][0]
        connection.execute(_INDEX_MESSAGES_SQL, (first_id, last_id))
        return first_id

    @staticmethod
    def rows_between(connection, first_id, count):
        """The ``count`` rows from id ``first_id`` on, in ``INSERT_COLUMNS`` order."""
        if not count:
            return []
        return connection.execute(_SELECT_ROWS_SQL, (first_id, first_id + count - 1)).fetchall()

    @staticmethod
    def stored_event_ids(connection, service, event_ids):
        """Which of ``event_ids`` of ``service`` are stored (by the unique index)."""
        event_ids = list(event_ids)
        found = []
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start:start + 500]
            found += connection.execute(
                "SELECT event_id FROM log_record WHERE service = ? AND event_id IS NOT NULL"
                f" AND event_id IN ({', '.join('?' * len(chunk))})",
                (service, *chunk),
            ).fetchall()
        return [event_id for (event_id,) in found]

    @classmethod
    def newest_received_at(cls):
        """When the newest stored record was received (microseconds), or None when none is."""
        return cls.select(cls.received_at).order_by(cls.id.desc()).limit(1).scalar()

    @classmethod
    def get_document(cls, record_id):
        """The record with ``record_id`` as its JSON document, or None when absent."""
        columns = [getattr(cls, name) for name in cls.INSERT_COLUMNS]
        row = cls.select(*columns).where(cls.id == record_id).tuples().get_or_none()
        return None if row is None else record_document(record_id, row)


class IdempotencyKey(BaseModel):
    """The outcome of an acknowledged batch, by the Idempotency-Key it came with."""

    key = pw.TextField(primary_key=True)
    request_hash = pw.TextField()  # what the key stood for: the body and the mode
    created_at = pw.BigIntegerField()
    outcome = pw.TextField()  # JSON: [first_id, accepted, duplicates, rejected]

    class Meta:
        table_name = "idempotency_key"

    @staticmethod
    def outcome_of(connection, key, request_hash, not_before):
        """The outcome recorded for ``key`` since ``not_before``, or None.

        Raises APIError when the key was recorded for another request.
        """
        row = connection.execute(
            "SELECT request_hash, outcome FROM idempotency_key WHERE key = ? AND created_at >= ?",
            (key, not_before),
        ).fetchone()
        if row is None:
            return None
        if row[0] != request_hash:
            raise APIError(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request body; use a new key",
            )
        first_id, accepted, duplicates, rejected = orjson.loads(row[1])
        return first_id, accepted, duplicates, {int(i): reasons for i, reasons in rejected.items()}

    @staticmethod
    def remember(connection, key, request_hash, outcome, now):
        """Record ``outcome`` for ``key``, in the transaction that stored the batch."""
        connection.execute(
            "INSERT OR REPLACE INTO idempotency_key (key, request_hash, created_at, outcome)"
            " VALUES (?, ?, ?, ?)",
            (key, request_hash, now, orjson.dumps(outcome, option=orjson.OPT_NON_STR_KEYS)),
        )

    @staticmethod
    def forget_before(connection, not_before):
        """Delete the keys recorded before ``not_before``."""
        connection.execute("DELETE FROM idempotency_key WHERE created_at < ?", (not_before,))


class ApiKey(BaseModel):
    """A client's API key. Only a hash of the key is stored; it is shown once, at creation."""

    id = pw.AutoField()
    name = pw.TextField()  # unique among active keys
    key_hash = pw.TextField(unique=True)  # SHA-256 of the key, hex
    scopes = pw.TextField()  # comma-separated: ingest, read, admin
    services = pw.TextField(null=True)  # comma-separated services it may write; None: any
    rate_limit = pw.FloatField(null=True)  # records a second it may write; None: no limit
    created_at = pw.BigIntegerField()
    last_used_at = pw.BigIntegerField(null=True)  # to the minute
    revoked_at = pw.BigIntegerField(null=True)

    class Meta:
        table_name = "api_key"

    @classmethod
    def active(cls):
        return cls.select().where(cls.revoked_at.is_null())


class RateBucket(BaseModel):
    """A rate-limited key's token bucket, shared by every worker through the database."""

    api_key_id = pw.IntegerField(primary_key=True)
    tokens = pw.FloatField()  # records it may send now; negative after a batch larger than that
    updated_at = pw.BigIntegerField()

    class Meta:
        table_name = "rate_bucket"

    @staticmethod
    def take(connection, api_key_id, rate, count, now):
        """Take ``count`` records from the key's bucket, or raise a 429 APIError.

        The bucket refills at ``rate`` records a second up to one second's worth.
        A batch is let through whenever the bucket is not empty, even one larger
        than it: the debt is paid back before the next batch, so the rate holds
        on average and a large batch is never refused forever.
        """
        row = connection.execute(
            "SELECT tokens, updated_at FROM rate_bucket WHERE api_key_id = ?", (api_key_id,)
        ).fetchone()
        # A clock stepped back refills nothing rather than locking the key out.
        elapsed = 0 if row is None else max(0, now - row[1]) / 1e6
        tokens = rate if row is None else min(rate, row[0] + rate * elapsed)
        if tokens <= 0:
            wait = max(1, math.ceil(-tokens / rate))
            raise APIError(
                429, "rate_limited",
                f"this API key may send {rate:g} records a second; retry after {wait} s",
                headers={"Retry-After": str(wait)},
            )
        connection.execute(
            "INSERT OR REPLACE INTO rate_bucket (api_key_id, tokens, updated_at) VALUES (?, ?, ?)",
            (api_key_id, tokens - count, now),
        )


def record_document(record_id, row):
    """The JSON document of a record, from its id and its row in ``INSERT_COLUMNS`` order."""
    (received_at, timestamp, service, severity, _rank, message, host, trace_id, span_id,
     attributes, event_id, api_key_id) = row
    return {
        "id": record_id,
        "received_at": format_micros(received_at),
        "timestamp": format_micros(timestamp),
        "service": service,
        "severity": severity,
        "message": message,
        "host": host,
        "trace_id": trace_id,
        "span_id": span_id,
        # Stored serialized: embed the text as it is instead of parsing it again.
        "attributes": orjson.Fragment(attributes or "{}"),
        "event_id": event_id,
        "api_key_id": api_key_id,
    }


# peewee's insert_many builds its query at ~35 us a row; executemany on the
# prepared statement is several times faster and this is the ingest hot path.
# (Public for the benchmark, which measures the rows without the full-text step.)
INSERT_SQL = "INSERT INTO log_record (id, {}, chain) VALUES ({})".format(
    ", ".join(LogRecord.INSERT_COLUMNS), ", ".join("?" * (len(LogRecord.INSERT_COLUMNS) + 2))
)
_SELECT_ROWS_SQL = "SELECT {} FROM log_record WHERE id BETWEEN ? AND ? ORDER BY id".format(
    ", ".join(LogRecord.INSERT_COLUMNS)
)
_INDEX_MESSAGES_SQL = (
    "INSERT INTO log_record_fts (rowid, message)"
    " SELECT id, message FROM log_record WHERE id BETWEEN ? AND ?"
)
