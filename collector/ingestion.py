"""The write path every ingest format feeds: decode -> validate -> normalize -> store.

Batches that reach one worker at the same time are stored together. Decoding,
validating and storing are CPU-bound under the GIL, so a worker's threads gain
nothing by doing them at once; worse, a thread holding SQLite's write lock must
win the GIL back after every row it steps, so its transaction would stretch
behind the others. Instead the first waiting thread leads: it prepares the
waiting batches one after another and commits them in one transaction, while
their own threads sleep until their batch is done. Small batches then share one
commit (and one new full-text segment), and a worker holds the decoded records
of one group at a time, however many requests wait.
"""

import collections
import threading
import time
from dataclasses import dataclass, field

from flask import current_app
from marshmallow import ValidationError

from .auth import ANONYMOUS, Caller
from .db import write_transaction
from .errors import APIError, StorageBusy, ValidationFailed
from .models import IdempotencyKey, LogRecord, RateBucket, record_document
from .severity import RANKS
from .times import now_micros

_SERVICE = LogRecord.INSERT_COLUMNS.index("service")
_EVENT_ID = LogRecord.INSERT_COLUMNS.index("event_id")


@dataclass
class IngestResult:
    """What a batch became: the stored rows and the records rejected by index."""

    first_id: int | None
    rows: list
    rejected: dict = field(default_factory=dict)
    duplicates: int = 0  # records skipped: their event_id was already stored
    replayed: bool = False  # the outcome recorded for the batch's idempotency key

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


def normalize(record, received_at, api_key_id=None):
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
        get("event_id"),
        api_key_id,
    )


@dataclass(eq=False)
class Batch:
    """One request's batch on its way through a worker's write queue."""

    read_records: object  # () -> list of records; must not touch the request context
    partial: bool = False
    idempotency_key: str | None = None
    request_hash: str | None = None  # the body and mode an idempotency key stands for
    caller: Caller = ANONYMOUS  # the API key that sent it
    count: int = 0  # records decoded from the body
    rows: list = field(default_factory=list)
    rejected: dict = field(default_factory=dict)
    result: IngestResult | None = None
    error: BaseException | None = None
    done: bool = False


def store(batches):
    """Store prepared batches in one transaction, committed on return; set each one's result.

    Records whose (service, event_id) is already stored, or comes earlier in the
    group, are skipped and counted. A batch whose idempotency key was recorded
    stores nothing and gets the recorded outcome back (or an error when the key
    came with another body). Every batch's rows get consecutive ids.
    """
    now = now_micros()
    keys_since = now - current_app.config["IDEMPOTENCY_TTL"] * 1_000_000
    with write_transaction() as connection:
        seen = stored_event_ids(connection, [row for batch in batches for row in batch.rows])
        for batch in batches:
            try:
                batch.result = _store_batch(connection, batch, seen, now, keys_since)
            except APIError as exc:  # this batch's own problem; the group goes on
                batch.error = exc
        _forget_expired_keys(connection, now, keys_since)


def _store_batch(connection, batch, seen, now, keys_since):
    if batch.idempotency_key:
        earlier = IdempotencyKey.outcome_of(
            connection, batch.idempotency_key, batch.request_hash, keys_since
        )
        if earlier is not None:
            first_id, accepted, duplicates, rejected = earlier
            rows = LogRecord.rows_between(connection, first_id, accepted)
            return IngestResult(first_id, rows, rejected, duplicates, replayed=True)
    rows, events = [], set()
    for row in batch.rows:
        event = (row[_SERVICE], row[_EVENT_ID])
        if event[1] is None:
            rows.append(row)
        elif event not in seen and event not in events:
            rows.append(row)
            events.add(event)
    caller = batch.caller
    if caller.rate_limit and rows:  # the records it stores: duplicates cost nothing
        RateBucket.take(connection, caller.key_id, caller.rate_limit, len(rows), now)
    seen |= events
    first_id = LogRecord.insert_rows(connection, rows) if rows else None
    result = IngestResult(first_id, rows, batch.rejected, len(batch.rows) - len(rows))
    if batch.idempotency_key:
        IdempotencyKey.remember(connection, batch.idempotency_key, batch.request_hash,
                                (first_id, len(rows), result.duplicates, batch.rejected), now)
    return result


_keys_forgotten_at = 0


def _forget_expired_keys(connection, now, keys_since):
    """Delete expired idempotency keys, at most once a minute per worker."""
    global _keys_forgotten_at
    if now - _keys_forgotten_at > 60_000_000:
        IdempotencyKey.forget_before(connection, keys_since)
        _keys_forgotten_at = now


def stored_event_ids(connection, rows):
    """The (service, event_id) pairs of ``rows`` that are already stored."""
    wanted = {}
    for row in rows:
        if row[_EVENT_ID] is not None:
            wanted.setdefault(row[_SERVICE], set()).add(row[_EVENT_ID])
    return {
        (service, event_id)
        for service, event_ids in wanted.items()
        for event_id in LogRecord.stored_event_ids(connection, service, event_ids)
    }


# A group stops growing at this many rows: by then a commit's cost is spread
# thin, and a bigger group only delays the answer to its first batch.
GROUP_ROWS = 1000

_waiting = collections.deque()  # batches no leader has taken yet, oldest first
_changed = threading.Condition()
_leader = None  # the batch whose thread is leading, if any


def ingest(batch):
    """Read, validate, normalize and store a Batch; all or nothing unless ``batch.partial``.

    ``batch.read_records`` decodes the request body into a list of records (one
    decoder per ingest format); it may run in another thread of the worker, so
    it gets its inputs bound, not from the request context. Returns an
    IngestResult; raises ValidationFailed when a record is invalid and the
    batch is atomic, StorageBusy when the batch waited WRITE_LOCK_TIMEOUT.
    """
    global _leader
    config = current_app.config
    deadline = time.monotonic() + config["WRITE_LOCK_TIMEOUT"]
    with _changed:
        _waiting.append(batch)
    while True:
        with _changed:
            while _leader is not None and not batch.done:
                remaining = deadline - time.monotonic()
                if remaining <= 0 and batch in _waiting:
                    _waiting.remove(batch)  # no leader took it: nothing was stored
                    raise StorageBusy()
                _changed.wait(remaining if remaining > 0 else 0.05)
            if batch.done:
                break
            _leader = batch
        try:
            _lead(config)
        finally:
            with _changed:
                _leader = None
                _changed.notify_all()
    if batch.error is not None:
        raise batch.error
    return batch.result


def _lead(config):
    """Prepare waiting batches, oldest first, and store them together."""
    group, rows = [], 0
    while rows < GROUP_ROWS:
        with _changed:
            if not _waiting:
                break
            batch = _waiting.popleft()
        try:
            _prepare(batch, config)
        except Exception as exc:  # answered to that batch's own request
            batch.error = exc
            batch.done = True
            continue
        group.append(batch)
        rows += len(batch.rows)
    if not group:  # every batch was refused before storage: no write lock to take
        return
    try:
        store(group)
    except Exception as exc:  # each batch is atomic: none of the group was stored
        for batch in group:
            batch.error = exc
    for batch in group:
        batch.done = True


def _prepare(batch, config):
    records = batch.read_records()
    batch.read_records = None  # let the request body go as soon as it is decoded
    batch.count = len(records)
    if not records:
        raise APIError(400, "empty_batch", "the batch holds no records")
    if len(records) > config["MAX_BATCH_RECORDS"]:
        raise APIError(
            413,
            "too_many_records",
            f"the batch holds {len(records)} records; the limit is {config['MAX_BATCH_RECORDS']}",
        )
    valid, errors = validate(records, current_app.extensions["record_schema"])
    if errors and not batch.partial:
        raise ValidationFailed(errors, len(records))
    allowed = batch.caller.services
    if allowed is not None:
        claimed = {record["service"] for record in valid} - allowed
        if claimed:
            raise APIError(
                403, "service_not_allowed",
                f"this API key may write the services {', '.join(sorted(allowed))} only;"
                f" the batch claims {', '.join(sorted(claimed))}; nothing was stored",
            )
    received_at = now_micros()
    batch.rows = [normalize(record, received_at, batch.caller.key_id) for record in valid]
    batch.rejected = errors


