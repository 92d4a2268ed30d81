"""The SQLite tables, as peewee models (created by ``migrations``, with their indexes)."""

import peewee as pw

from .db import database


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class LogRecord(BaseModel):
    """One stored log record (``records.COLUMNS``, then its audit link)."""

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
    api_key_id = pw.IntegerField(null=True)
    chain = pw.BlobField()  # its link in the audit chain (see collector.audit)

    class Meta:
        table_name = "log_record"


class IdempotencyKey(BaseModel):
    """The outcome of an acknowledged batch, by the Idempotency-Key it came with."""

    key = pw.TextField(primary_key=True)
    request_hash = pw.TextField()  # what the key stood for: the body and the mode
    created_at = pw.BigIntegerField()
    outcome = pw.TextField()  # JSON: [first_id, accepted, duplicates, rejected]

    class Meta:
        table_name = "idempotency_key"


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
