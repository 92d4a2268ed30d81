"""The write path every ingest protocol feeds: decode -> validate -> normalize -> store.

Batches that reach one worker at the same time are stored together. Decoding,
validating and storing are CPU-bound under the GIL, so a worker's threads gain
nothing by doing them at once; worse, a thread holding the write lock must win
the GIL back after every row it steps, so its transaction would stretch behind
the others. Instead the first waiting thread leads: it prepares the waiting
batches one after another and commits them in one transaction, while their own
threads sleep until their batch is done. Small batches then share one commit
(and one new full-text segment), and a worker holds the decoded records of one
group at a time, however many requests wait.

The Writer needs no web framework: a protocol hands it a Batch whose decoder
has its inputs bound, and gets an IngestResult or a domain error back.
"""

import collections
import threading
import time
from dataclasses import dataclass, field

from marshmallow import ValidationError

from .. import records
from ..errors import (
    CollectorError,
    Forbidden,
    InvalidInput,
    StorageBusy,
    TooLarge,
    ValidationFailed,
)
from ..keys import ANONYMOUS, Caller
from ..records import Row
from ..severity import RANKS
from ..throttle import Throttle
from ..times import now_micros

# A group stops growing at this many rows: by then a commit's cost is spread
# thin, and a bigger group only delays the answer to its first batch.
GROUP_ROWS = 1000
# Expired idempotency keys are deleted at most this often per worker (µs).
FORGET_KEYS_EVERY = 60_000_000


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
        return [records.document(self.first_id + i, row) for i, row in enumerate(self.rows)]


@dataclass(eq=False)
class Batch:
    """One request's batch on its way through a worker's write queue."""

    read_records: object  # () -> list of records; runs in whichever thread leads
    partial: bool = False
    idempotency_key: str | None = None
    request_hash: str | None = None  # the body and mode an idempotency key stands for
    caller: Caller = ANONYMOUS  # the API key that sent it
    allow_empty: bool = False  # no records is a success (OTLP, Loki), not empty_batch
    context: object = None  # what the protocol's decoder noted for its answer
    count: int = 0  # records decoded from the body
    rows: list = field(default_factory=list)
    rejected: dict = field(default_factory=dict)
    result: IngestResult | None = None
    error: BaseException | None = None
    done: bool = False
    wake: threading.Event = field(default_factory=threading.Event)  # done, or lead next


def _done(batch):
    """Mark ``batch`` answered and wake its thread."""
    batch.done = True
    batch.wake.set()


def validate(records, schema):
    """Load ``records`` with ``schema``: the valid ones and the errors by index."""
    try:
        return schema.load(records), {}
    except ValidationError as exc:
        errors = exc.messages
        valid = [r for i, r in enumerate(exc.valid_data) if i not in errors]
        return valid, errors


# A Row built as a tuple: calling Row(...) costs about three times as much, and
# this runs once per record on the ingest hot path.
_new_row = tuple.__new__


def normalize(record, received_at, api_key_id=None):
    """A validated record as its stored Row."""
    severity = record["severity"]
    get = record.get
    timestamp = get("timestamp")
    return _new_row(Row, (
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
    ))


class Writer:
    """A worker's write queue over ``store``: group commit, dedup, idempotency, rate limits."""

    def __init__(self, store, schema, config):
        self.store = store
        self.schema = schema  # the record schema, under the configured limits
        self.lock_timeout = config["WRITE_LOCK_TIMEOUT"]
        self.max_records = config["MAX_BATCH_RECORDS"]
        self.idempotency_ttl = config["IDEMPOTENCY_TTL"] * 1_000_000
        self.group_rows = GROUP_ROWS
        self._waiting = collections.deque()  # batches no leader has taken yet, oldest first
        self._mutex = threading.Lock()  # guards _waiting and _leader
        self._leader = None  # the batch whose thread is leading, if any
        self._forget_keys = Throttle(FORGET_KEYS_EVERY)

    def ingest(self, batch):
        """Read, validate, normalize and store a Batch; all or nothing unless ``batch.partial``.

        ``batch.read_records`` decodes the request body into a list of records
        (one decoder per protocol); it may run in another thread of the worker.
        Returns an IngestResult; raises ValidationFailed when a record is
        invalid and the batch is atomic, StorageBusy when the batch waited
        WRITE_LOCK_TIMEOUT.
        """
        deadline = time.monotonic() + self.lock_timeout
        with self._mutex:
            self._waiting.append(batch)
            if self._leader is None:
                self._leader = batch
        # Each thread sleeps on its own batch's event, set when the batch is answered or
        # when its thread is to lead next: one wake-up a batch, where a shared condition
        # woke every waiting thread at every change.
        while self._leader is not batch and not batch.done:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                batch.wake.wait(remaining)
                continue
            with self._mutex:
                if batch in self._waiting and self._leader is not batch:
                    self._waiting.remove(batch)  # no leader took it: nothing was stored
                    raise StorageBusy()
            if self._leader is not batch:
                batch.wake.wait()  # in a group being stored: its answer comes
        if self._leader is batch:
            try:
                while not batch.done:  # a full group may have left this thread's batch out
                    self._lead()
            finally:
                self._hand_over(batch)
        if batch.error is not None:
            raise batch.error
        return batch.result

    def _hand_over(self, batch):
        """Make the oldest waiting batch's thread the leader, or leave none; ``batch``, when
        its leading failed before it was taken, is no one's to store."""
        with self._mutex:
            if batch in self._waiting:
                self._waiting.remove(batch)
            self._leader = self._waiting[0] if self._waiting else None
            successor = self._leader
        if successor is not None:
            successor.wake.set()

    def _lead(self):
        """Prepare waiting batches, oldest first, and store them together."""
        group = []
        self._gather(group)
        if not group:  # every batch was refused before storage: no write lock to take
            return
        try:
            # Batches that arrive while the write lock is awaited join the group: a commit
            # of their own would cost more than preparing them under the lock.
            self.store_group(group, committed=lambda: self._answer(group), gather=self._gather)
        except Exception as exc:
            for batch in group:
                if not batch.done:  # the group was not committed: none of it was stored
                    batch.error = exc
        self._answer(group)

    def _gather(self, group):
        """Prepare waiting batches, oldest first, into ``group`` until it holds GROUP_ROWS rows.

        A batch refused before storage is answered at once and left out.
        """
        rows = sum(len(batch.rows) for batch in group)
        while rows < self.group_rows:
            with self._mutex:
                if not self._waiting:
                    return
                batch = self._waiting.popleft()
            try:
                self._prepare(batch)
            except Exception as exc:  # answered to that batch's own request
                batch.error = exc
                _done(batch)
                continue
            if not batch.rows and not batch.idempotency_key:  # nothing to store: no write lock
                batch.result = IngestResult(None, [], batch.rejected)
                _done(batch)
                continue
            group.append(batch)
            rows += len(batch.rows)

    def _answer(self, group):
        """Let the group's threads answer (its commit is durable, or it failed)."""
        for batch in group:
            _done(batch)

    def _prepare(self, batch):
        records = batch.read_records()
        batch.read_records = None  # let the request body go as soon as it is decoded
        batch.count = len(records)
        if not records and not batch.allow_empty:
            raise InvalidInput("empty_batch", "the batch holds no records")
        if len(records) > self.max_records:
            raise TooLarge(
                "too_many_records",
                f"the batch holds {len(records)} records; the limit is {self.max_records}",
            )
        valid, errors = validate(records, self.schema)
        if errors and not batch.partial:
            raise ValidationFailed(errors, len(records))
        allowed = batch.caller.services
        if allowed is not None:
            claimed = {record["service"] for record in valid} - allowed
            if claimed:
                raise Forbidden(
                    "service_not_allowed",
                    f"this API key may write the services {', '.join(sorted(allowed))} only;"
                    f" the batch claims {', '.join(sorted(claimed))}; nothing was stored",
                )
        received_at = now_micros()
        batch.rows = [normalize(record, received_at, batch.caller.key_id) for record in valid]
        batch.rejected = errors

    def store_group(self, batches, committed=None, gather=None):
        """Store prepared batches in one transaction, committed on return; set each one's result.

        Records whose (service, event_id) is already stored, or comes earlier in
        the group, are skipped and counted. A batch whose idempotency key was
        recorded stores nothing and gets the recorded outcome back (or an error
        when the key came with another body). Every batch's rows get
        consecutive ids. A batch's own failure (its rate limit, its key) leaves
        the rest of the group to commit. ``committed()`` is called once it has;
        ``gather(batches)``, once the write lock is held, may add batches to the group.
        """
        now = now_micros()
        keys_since = now - self.idempotency_ttl
        with self.store.write(committed) as transaction:
            if gather is not None:
                gather(batches)
            seen = set()  # events stored by earlier batches of the group
            for batch in batches:
                try:
                    with transaction.savepoint():
                        batch.result = _store_batch(transaction, batch, seen, now, keys_since)
                except CollectorError as exc:
                    batch.error = exc
            if self._forget_keys.due(now):
                transaction.forget_idempotency_keys(keys_since)


def _store_batch(transaction, batch, seen, now, keys_since):
    if batch.idempotency_key:
        earlier = transaction.idempotent_outcome(batch.idempotency_key, batch.request_hash,
                                                 keys_since)
        if earlier is not None:
            first_id, accepted, duplicates, rejected = earlier
            rows = transaction.rows_between(first_id, accepted)
            return IngestResult(first_id, rows, rejected, duplicates, replayed=True)
    events = {(row.service, row.event_id) for row in batch.rows if row.event_id is not None}
    stored = transaction.stored_events(events - seen) if events else set()
    rows, taken = [], set()
    for row in batch.rows:
        if row.event_id is None:
            rows.append(row)
            continue
        event = (row.service, row.event_id)
        if event not in stored and event not in seen and event not in taken:
            rows.append(row)
            taken.add(event)
    caller = batch.caller
    if caller.rate_limit and rows:  # the records it stores: duplicates cost nothing
        transaction.take_tokens(caller.key_id, caller.rate_limit, len(rows), now)
    first_id = transaction.insert(rows) if rows else None
    seen |= taken
    result = IngestResult(first_id, rows, batch.rejected, len(batch.rows) - len(rows))
    if batch.idempotency_key:
        transaction.remember_outcome(batch.idempotency_key, batch.request_hash,
                                     (first_id, len(rows), result.duplicates, batch.rejected), now)
    return result
