"""The reference build: the log collector as a user of the same stack would first write it.

Flask, a marshmallow schema, a peewee model with three indexes on SQLite in WAL mode, one
``insert_many`` in ``atomic()`` per request and an ``{"accepted": n}`` answer: no full-text
index, no audit chain, no deduplication, no group commit. `make bench` serves it with the
collector's gunicorn.conf.py (`gunicorn -c gunicorn.conf.py bench.reference_app:app`) on
the database DATABASE_URL names, and sets the collector's 1,000-record figure beside it.
"""

import datetime as dt
import os

import orjson
import peewee as pw
from flask import Flask, request
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

db = pw.SqliteDatabase(
    os.environ["DATABASE_URL"].removeprefix("sqlite:///"),
    pragmas={"journal_mode": "wal", "synchronous": "normal", "busy_timeout": 5000},
    check_same_thread=False,
)


class Record(pw.Model):
    timestamp = pw.DateTimeField(index=True)
    service = pw.CharField()
    severity = pw.CharField()
    message = pw.TextField()
    host = pw.CharField(null=True)
    trace_id = pw.CharField(null=True)
    span_id = pw.CharField(null=True)
    attributes = pw.TextField(null=True)

    class Meta:
        database = db
        indexes = ((("service", "timestamp"), False), (("severity", "timestamp"), False))


class RecordSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    timestamp = fields.AwareDateTime(load_default=None, default_timezone=dt.UTC)
    service = fields.String(required=True, validate=validate.Length(1, 128))
    severity = fields.String(required=True, validate=validate.OneOf(
        ["TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "ERROR", "CRITICAL", "FATAL"]))
    message = fields.String(required=True, validate=validate.Length(min=1))
    host = fields.String(load_default=None)
    trace_id = fields.String(load_default=None)
    span_id = fields.String(load_default=None)
    attributes = fields.Dict(load_default=None)


records_schema = RecordSchema(many=True)
app = Flask(__name__)

with db.connection_context():
    db.create_tables([Record])


@app.before_request
def connect():
    db.connect(reuse_if_open=True)


@app.teardown_request
def close(exc):
    if not db.is_closed():
        db.close()


@app.get("/healthz")
def healthz():
    return {"status": "ok"}


@app.post("/ingest")
def ingest():
    try:
        records = records_schema.load(request.get_json())
    except ValidationError as exc:
        return {"errors": exc.messages}, 422
    now = dt.datetime.now(dt.UTC)
    for record in records:
        record["timestamp"] = record["timestamp"] or now
        if record["attributes"] is not None:
            record["attributes"] = orjson.dumps(record["attributes"]).decode()
    with db.atomic():
        Record.insert_many(records).execute()
    return {"accepted": len(records)}, 201
