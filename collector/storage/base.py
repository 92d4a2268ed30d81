"""The storage interface: what the rest of the collector asks of a backend, and in what words.

A backend (``sqlite/``, one folder each) implements ``Store`` and its
``WriteTransaction``, holds all of its SQL, and raises only domain errors
(``collector.errors``) for what a client or an operator must hear about.
Everything here is plain data: no web framework, no SQL.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import orjson

# Operators of a full-text query, between its terms.
OPERATORS = ("OR", "NOT")


def dump_outcome(outcome):
    """An idempotency key's outcome (first_id, accepted, duplicates, rejected) as JSON bytes."""
    return orjson.dumps(outcome, option=orjson.OPT_NON_STR_KEYS)


def load_outcome(stored):
    """The outcome that ``dump_outcome`` stored, the rejected records' indexes as ints again."""
    first_id, accepted, duplicates, rejected = orjson.loads(stored)
    return first_id, accepted, duplicates, {int(i): reasons for i, reasons in rejected.items()}


class Term(NamedTuple):
    """A word or phrase of a full-text query, matched as text; ``prefix``: word* ."""

    text: str
    prefix: bool = False


class Position(NamedTuple):
    """Where a keyset page ended: the (timestamp, id) of its last record."""

    timestamp: int
    id: int

    @classmethod
    def after(cls, stored):
        """The position just past the Stored record ``stored``."""
        return cls(stored.timestamp, stored.id)


@dataclass(frozen=True)
class RecordFilter:
    """Which records a read matches; every part given combines with AND. Times in µs."""

    services: tuple | None = None
    ranks: tuple | None = None  # exactly these severity ranks
    min_rank: int | None = None
    since: int | None = None  # inclusive
    until: int | None = None  # exclusive
    host: str | None = None
    trace_id: str | None = None
    api_key_id: int | None = None
    text: tuple | None = None  # Terms and OPERATORS, in query order
    attributes: dict = field(default_factory=dict)  # dotted key path -> the value as text
    pattern: int | None = None  # a pattern id: the records of the pattern that stands for it now


@dataclass
class Stats:
    """The database's size and contents."""

    name: str  # what the database is, e.g. its file
    records: int
    oldest: int | None  # µs since the epoch
    newest: int | None
    database_bytes: int
    wal_bytes: int
    free_bytes: int
    per_service: list  # (service, records), most records first
    per_severity: list  # (severity, records), lowest level first


@dataclass(frozen=True)
class Span:
    """The time buckets of a sparkline: ``buckets`` of ``width`` µs from ``start`` µs on."""

    start: int
    width: int
    buckets: int


@dataclass
class PatternSummary:
    """A pattern (by its canonical id) among the records a read matches."""

    id: int
    service: str
    text: str  # its template now, masks by name
    records: int  # matching records
    first_seen: int  # µs: the earliest timestamp among them
    last_seen: int
    sample_id: int  # the newest of them
    first_ever: int | None  # µs: when any record of it was first seen, matching or not
    counts: list  # matching records in each bucket of the Span (empty without one)


@dataclass
class MiningProgress:
    """How far the miner has come: ``mined_id`` is the last record id that has its pattern."""

    mined_id: int
    newest_id: int
    oldest_unmined_received_at: int | None  # µs; None when every record is mined


def megabytes(size):
    """``size`` bytes in words, e.g. ``12.3 MB``."""
    return f"{size / 1e6:,.1f} MB"


class WriteTransaction(ABC):
    """One write transaction of a group of batches; it commits when its block ends cleanly.

    The transaction holds the write lock (or the chain's head), so ids and the
    audit chain cannot move under it.
    """

    @abstractmethod
    def savepoint(self):
        """A context in which a failure undoes only what was written inside it."""

    @abstractmethod
    def idempotent_outcome(self, key, request_hash, not_before):
        """The outcome (first_id, accepted, duplicates, rejected) recorded for ``key`` since
        ``not_before``, or None; IdempotencyConflict when it was recorded for another hash."""

    @abstractmethod
    def remember_outcome(self, key, request_hash, outcome, now):
        """Record a batch's outcome under its idempotency key."""

    @abstractmethod
    def forget_idempotency_keys(self, not_before):
        """Delete the idempotency keys recorded before ``not_before``."""

    @abstractmethod
    def stored_events(self, events):
        """Which (service, event_id) pairs of ``events`` are stored already."""

    @abstractmethod
    def take_tokens(self, api_key_id, rate, count, now):
        """Take ``count`` records from the key's token bucket, or raise RateLimited.

        The bucket refills at ``rate`` records a second up to one second's worth.
        A batch is let through whenever the bucket is not empty, even one larger
        than it: the debt is paid back before the next batch, so the rate holds
        on average and a large batch is never refused forever.
        """

    @abstractmethod
    def insert(self, rows):
        """Insert Rows with the next ids, linked into the audit chain and indexed; the first id."""

    @abstractmethod
    def rows_between(self, first_id, count):
        """The Rows of the ``count`` records from id ``first_id`` on."""


class Store(ABC):
    """A backend: records, keys, the audit chain, maintenance."""

    # Lifecycle

    @abstractmethod
    def session(self):
        """A context holding a connection for a command or a thread outside a request."""

    @abstractmethod
    def release(self):
        """Give back the connection this thread holds, if any (after each request)."""

    @abstractmethod
    def close(self):
        """Close every connection; the store may be opened again."""

    @abstractmethod
    def describe(self):
        """What database this is, for people: its file or its server and name."""

    def exists(self):
        """Whether the database is there to open; a file backend says whether its file is.

        A server's database is there once the server is: opening it says otherwise.
        """
        return True

    def create(self):
        """Create the database's empty files, readable by their owner only; a server's has none."""
        return None

    def exposure(self):
        """Warnings, one line each, about the database's files being open to other users."""
        return []

    def key_file(self):
        """Where ``make migrate`` writes the first admin key: beside the database file."""
        return Path(self.describe()).with_name("admin.key")

    # Schema

    @abstractmethod
    def migrate(self):
        """Apply every pending migration; the versions applied (none when up to date)."""

    @abstractmethod
    def schema_version(self):
        """The newest migration applied, 0 for an empty database."""

    latest_version = 0

    # Writes

    @abstractmethod
    def write(self, committed=None):
        """A context yielding a WriteTransaction, committed when the block ends cleanly.

        ``committed()``, when given, is called as soon as the commit is durable,
        before any housekeeping of the backend's that follows it (a checkpoint).
        """

    # Reads

    @abstractmethod
    def newest_id(self):
        """The id of the newest stored record (0 when there is none)."""

    @abstractmethod
    def newest_received_at(self):
        """When the newest stored record was received (µs), or None when none is."""

    @abstractmethod
    def record(self, record_id):
        """The Stored record with ``record_id``, or None."""

    @abstractmethod
    def page(self, where, order, after, limit, max_id):
        """Up to ``limit`` Stored records matching the RecordFilter ``where`` with ids up to
        ``max_id``, in (timestamp, id) ``order`` ("asc" or "desc"), past Position ``after``."""

    @abstractmethod
    def follow(self, where, after_id, max_id, limit):
        """Up to ``limit`` Stored records matching ``where`` with ids in (after_id, max_id],
        in id order."""

    @abstractmethod
    def patterns(self, where, new_since, span, limit):
        """Up to ``limit`` PatternSummary of the records matching ``where`` (each record under
        its pattern's canonical id), most records first; with ``new_since`` (µs) only those
        first seen then or later; ``counts`` over the Span ``span`` (None: no counts)."""

    @abstractmethod
    def counts(self, where, by, interval):
        """Counts of matching records as dicts: ``count`` and one key for each name in ``by``:
        "severity" as ``severity_rank``, "service" as ``service``, "host" as ``host`` (None
        for records without one), and "attr.<dotted key>" (a key as RecordFilter.attributes
        names it) under that same name, holding the attribute's JSON value (str, int, float,
        bool, list or dict; None where a record lacks it or it is null); with ``interval``
        (seconds), ``bucket`` (the µs its time bucket starts at). Groups of several names
        count each combination found."""

    # Patterns: the one miner's ledger (see ``ops.miner``), and its progress

    @abstractmethod
    def pattern_miner(self):
        """A context that holds the one miner lock of every process and instance, yielding
        the MinerLedger, or None while another miner holds it."""

    @abstractmethod
    def mining_progress(self):
        """The MiningProgress of the miner."""

    # API keys

    @abstractmethod
    def create_key(self, name, key_hash, scopes, services, rate_limit, created_at):
        """Store a new key; the keys.ApiKey. ApiKeyError when an active key has the name."""

    @abstractmethod
    def revoke_key(self, name, now):
        """Revoke the active key ``name``; ApiKeyError when there is none."""

    @abstractmethod
    def active_key(self, key_hash):
        """The active keys.ApiKey with ``key_hash``, or None."""

    @abstractmethod
    def keys(self):
        """Every keys.ApiKey, revoked ones too, oldest first."""

    @abstractmethod
    def any_key_created(self):
        """Whether a key was ever created."""

    @abstractmethod
    def note_key_use(self, key_id, now, resolution):
        """Record that the key was used at ``now``, unless it was within ``resolution`` µs."""

    # The audit chain

    @abstractmethod
    def verify(self, on_record=lambda: None):
        """Walk the audit chain in one snapshot; an audit.Verification."""

    # Maintenance

    @abstractmethod
    def count_expired(self, retention, now):
        """How many records the Retention expires at ``now`` (µs)."""

    @abstractmethod
    def prune(self, retention, now, on_deleted=lambda count: None):
        """Delete the records expired at ``now`` while ingest goes on; a retention.PruneReport."""

    @abstractmethod
    def prune_schedule(self):
        """A context that holds the one prune lock of every instance and worker, yielding a
        PruneSchedule, or None when another holds it (see ``ops.autoprune``)."""

    @abstractmethod
    def peek_prune_schedule(self):
        """The prune schedule's state, read without the lock (a dict)."""

    @abstractmethod
    def backup(self, directory, on_progress=lambda copied, total: None):
        """A consistent copy of the live database in ``directory``, named after it; its path."""

    @abstractmethod
    def latest_backup(self, directory):
        """The path of this database's newest backup in ``directory``, or None."""

    @abstractmethod
    def restore(self, source):
        """Replace the database with the checked backup ``source``; MaintenanceError when not."""

    @abstractmethod
    def stats(self):
        """The Stats of the database."""

    @abstractmethod
    def gauges(self):
        """The storage's own gauges for /metrics, measured now: (name, help, value) each."""

    @abstractmethod
    def readiness(self, min_free_mb):
        """{check: None when it passes, else what is wrong}."""


class MinerLedger(ABC):
    """What the one miner reads and writes, under its lock.

    Patterns are derived data: the records stay the truth, and a state that is lost or of
    another generation (settings that group otherwise) is mined again from the first
    record on.
    """

    @abstractmethod
    def load(self, generation):
        """(the last record id mined, its patterns.index.ClusterRows and Patterns in id order)
        as saved for ``generation``; a state of another generation is dropped first, and
        none saved is (0, [], [])."""

    @abstractmethod
    def unmined(self, after_id, limit):
        """Up to ``limit`` records after id ``after_id``, in id order, as tuples
        (id, service, message, timestamp, received_at)."""

    @abstractmethod
    def save(self, changes, mined_id):
        """Save a patterns.index.Changes and ``mined_id``, the last record mined, in one
        transaction: a record's pattern, the state that gave it and the progress commit
        together."""

    @abstractmethod
    def forget_pruned(self, after_id, limit):
        """Drop the patterns of pruned records among the ``limit`` record ids after
        ``after_id`` that have one; the last id looked at, or None past the end."""


class PruneSchedule(ABC):
    """The prune schedule under the prune lock: when the last prune started and finished."""

    @abstractmethod
    def read(self):
        """The state, a dict (empty when no prune ran)."""

    @abstractmethod
    def write(self, state):
        """Replace the state."""
