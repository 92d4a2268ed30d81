"""The PostgreSQL tables that the read queries build on, as peewee models (created by
``migrations``)."""

import peewee as pw

from .db import database


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class LogRecord(BaseModel):
    """One stored log record (``records.COLUMNS``, then its audit link); partitioned by day."""

    id = pw.BigIntegerField(primary_key=True)
    received_at = pw.BigIntegerField()
    timestamp = pw.BigIntegerField()
    service = pw.TextField()
    severity = pw.TextField()
    severity_rank = pw.SmallIntegerField()
    message = pw.TextField()
    host = pw.TextField(null=True)
    trace_id = pw.TextField(null=True)
    span_id = pw.TextField(null=True)
    attributes = pw.TextField(null=True)  # json: the text as stored
    event_id = pw.TextField(null=True)
    api_key_id = pw.IntegerField(null=True)
    chain = pw.BlobField()

    class Meta:
        table_name = "log_record"


class ApiKey(BaseModel):
    """A client's API key (only its hash)."""

    id = pw.AutoField()
    name = pw.TextField()
    key_hash = pw.TextField(unique=True)
    scopes = pw.TextField()
    services = pw.TextField(null=True)
    rate_limit = pw.FloatField(null=True)
    created_at = pw.BigIntegerField()
    last_used_at = pw.BigIntegerField(null=True)
    revoked_at = pw.BigIntegerField(null=True)

    class Meta:
        table_name = "api_key"

    @classmethod
    def active(cls):
        return cls.select().where(cls.revoked_at.is_null())


class RecordPattern(BaseModel):
    record_id = pw.BigIntegerField(primary_key=True)
    pattern_id = pw.BigIntegerField()

    class Meta:
        table_name = "record_pattern"


class PatternRow(BaseModel):
    id = pw.BigIntegerField(primary_key=True)
    service = pw.TextField()
    canonical_id = pw.BigIntegerField()
    text = pw.TextField()
    first_seen = pw.BigIntegerField(null=True)
    records = pw.BigIntegerField()

    class Meta:
        table_name = "pattern"
