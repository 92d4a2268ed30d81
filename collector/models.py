"""Tables of the collector, as peewee models."""

import orjson
import peewee as pw

from .db import database
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

    # The order of the columns that ``insert_rows`` expects in each row.
    INSERT_COLUMNS = (
        "received_at", "timestamp", "service", "severity", "severity_rank",
        "message", "host", "trace_id", "span_id", "attributes",
    )

    class Meta:
        table_name = "log_record"
        indexes = (
            (("timestamp",), False),
            (("service", "timestamp"), False),
            (("severity_rank", "timestamp"), False),
        )

    @staticmethod
    def insert_rows(connection, rows):
        """Insert row tuples in ``INSERT_COLUMNS`` order and index their messages.

        Returns the id of the first row. The caller holds the write lock in a
        transaction (see ``db.write_transaction``), so the ids SQLite assigns
        are consecutive and the full-text index commits with the rows.
        """
        connection.executemany(INSERT_SQL, rows)
        last_id = connection.execute("SELECT last_insert_rowid()").fetchone()[0]
        first_id = last_id - len(rows) + 1
        connection.execute(_INDEX_MESSAGES_SQL, (first_id, last_id))
        return first_id

    @classmethod
    def get_document(cls, record_id):
        """The record with ``record_id`` as its JSON document, or None when absent."""
        columns = [getattr(cls, name) for name in cls.INSERT_COLUMNS]
        row = cls.select(*columns).where(cls.id == record_id).tuples().get_or_none()
        return None if row is None else record_document(record_id, row)


class SchemaVersion(BaseModel):
    """The migrations applied to this database, one row each."""

    version = pw.IntegerField(primary_key=True)
    applied_at = pw.BigIntegerField()

    class Meta:
        table_name = "schema_version"


def record_document(record_id, row):
    """The JSON document of a record, from its id and its row in ``INSERT_COLUMNS`` order."""
    received_at, timestamp, service, severity, _rank, message, host, trace_id, span_id, attributes = row
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
    }


# peewee's insert_many builds its query at ~35 us a row; executemany on the
# prepared statement is several times faster and this is the ingest hot path.
# (Public for the benchmark, which measures the rows without the full-text step.)
INSERT_SQL = "INSERT INTO log_record ({}) VALUES ({})".format(
    ", ".join(LogRecord.INSERT_COLUMNS), ", ".join("?" * len(LogRecord.INSERT_COLUMNS))
)
_INDEX_MESSAGES_SQL = (
    "INSERT INTO log_record_fts (rowid, message)"
    " SELECT id, message FROM log_record WHERE id BETWEEN ? AND ?"
)
