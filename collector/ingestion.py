"""The write path every ingest format feeds: validate -> normalize -> store."""

import threading
from dataclasses import dataclass, field

from flask import current_app
from marshmallow import ValidationError

from .db import write_transaction
from .errors import APIError, StorageBusy, ValidationFailed
from .models import LogRecord, record_document
from .severity import RANKS
from .times import now_micros


# Decoding, validating and storing a batch is CPU-bound under the GIL, so a
# worker's threads gain nothing by doing it at once; worse, the thread holding
# SQLite's write lock must win the GIL back after every row it steps, so its
# transaction stretches behind the others, and every waiting thread would hold
# a decoded batch in memory. One batch at a time per worker; the others queue
# here (with their bodies read, still undecoded) for at most WRITE_LOCK_TIMEOUT.
_ingest_turn = threading.Lock()


@dataclass
class IngestResult:
    """What a batch became: the stored rows and the records rejected by index."""

    first_id: int | None
    rows: list
    rejected: dict = field(default_factory=dict)

    @property
    def last_id(self):
        return None if self.first_id is None else self.first_id + len(self.rows) - 1

    def documents(self):
        """The stored records as JSON documents, in batch order."""
        return [record_document(self.first_id + i, row) for i, row in enumerate(self.rows)]


def validate(records, schema):
    """Load ``records`` with ``schema``: the valid ones and the errors by index."""
    try:
        return schema.load(records), {}
    except ValidationError as exc:
        errors = exc.messages
        valid = [r for i, r in enumerate(exc.valid_data) if i not in errors]
        return valid, errors


def normalize(record, received_at):
    """A validated record as a row tuple in ``LogRecord.INSERT_COLUMNS`` order."""
    severity = record["severity"]
    get = record.get
    timestamp = get("timestamp")
    return (
        received_at,
        received_at if timestamp is None else timestamp,
        record["service"],
        severity,
        RANKS[severity],
        record["message"],
        get("host"),
        get("trace_id"),
        get("span_id"),
        get("attributes"),
    )


def store(rows):
    """Insert ``rows`` in one transaction; return the id of the first. Committed on return."""
    with write_transaction() as connection:
        return LogRecord.insert_rows(connection, rows)


def ingest(read_records, partial=False):
    """Read, validate, normalize and store a batch; all or nothing unless ``partial``.

    ``read_records`` decodes the body into a list of records (one decoder per
    ingest format). It is called in the worker's turn, so a worker holds one
    decoded batch at a time however many requests wait. Raises ValidationFailed
    when a record is invalid and the batch is atomic.
    """
    config = current_app.config
    if not _ingest_turn.acquire(timeout=config["WRITE_LOCK_TIMEOUT"]):
        raise StorageBusy()
    try:
        records = read_records()
        return _ingest(records, partial, config)
    finally:
        _ingest_turn.release()


def _ingest(records, partial, config):
    if not records:
        raise APIError(400, "empty_batch", "the batch holds no records")
    if len(records) > config["MAX_BATCH_RECORDS"]:
        raise APIError(
            413,
            "too_many_records",
            f"the batch holds {len(records)} records; the limit is {config['MAX_BATCH_RECORDS']}",
        )
    valid, errors = validate(records, current_app.extensions["record_schema"])
    if errors and not partial:
        raise ValidationFailed(errors, len(records))
    received_at = now_micros()
    rows = [normalize(record, received_at) for record in valid]
    first_id = store(rows) if rows else None
    return IngestResult(first_id, rows, errors)
