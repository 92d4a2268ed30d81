"""The audit chain: every record is linked to the one before by a hash, so edits show.

A log record's ``chain`` is SHA-256 over the previous link and the record's
canonical content (its id and every stored column), computed in the write
transaction that inserts it: one chain, in id order, however many workers
write. Changing, deleting, inserting or reordering a record breaks the links
from there on.

Retention pruning is the one deletion. For each run of consecutive pruned ids
the storage keeps the link of the run's last record (a gap), so the chain can
still be walked across the run. Each prune transaction appends a checkpoint to
the chain holding a digest of the whole gap table: a gap widened later to hide
a deleted record no longer matches the last checkpoint, and the checkpoint
cannot be changed without breaking its own link.

The chain proves that the records are as written unless every link after the
change was recomputed too: whoever can rewrite the whole file can rewrite the
chain. Keep the head link that ``verify`` reports somewhere else to rule that out.

This module is the chain's arithmetic and its walk; each storage backend keeps
the links and feeds the walk from its tables.
"""

import hashlib
from dataclasses import dataclass
from heapq import merge

import orjson

GENESIS = bytes(32)  # the link before the first record

_RECORD, _GAP, _CHECKPOINT = 0, 1, 2


def record_link(previous, record_id, row):
    """The link of a record: ``row`` is its columns in ``records.COLUMNS`` order."""
    return hashlib.sha256(previous + orjson.dumps((record_id, *row))).digest()


def link_rows(last_id, link, rows):
    """``rows`` as (id, *row, link) for the ids after ``last_id``, continuing from ``link``."""
    linked = []
    for record_id, row in enumerate(rows, last_id + 1):
        link = record_link(link, record_id, row)
        linked.append((record_id, *row, link))
    return linked


def checkpoint_link(previous, created_at, after_id, pruned, gaps_digest):
    """The link of a prune checkpoint."""
    content = orjson.dumps(("checkpoint", created_at, after_id, pruned, gaps_digest.hex()))
    return hashlib.sha256(previous + content).digest()


# The digest of the gap table is a set hash: the sum of each run's SHA-512
# modulo 2**512. A prune transaction updates it by the runs it removes and
# adds instead of hashing every run again (a table of one run per pruned
# record, when retention rules interleave, holds millions).
_DIGEST_MODULUS = 2**512


def run_hash(first_id, last_id, link):
    """A pruned run's share of the gap table's digest."""
    content = orjson.dumps((first_id, last_id, link.hex()))
    return int.from_bytes(hashlib.sha512(content).digest(), "big")


def gaps_digest(gaps):
    """The digest of a whole gap table: its (first_id, last_id, link) rows."""
    return digest_bytes(sum(run_hash(*gap) for gap in gaps))


def changed_digest(previous, change):
    """The digest ``previous`` (bytes, or None for an empty table) changed by ``change``."""
    return digest_bytes((int.from_bytes(previous, "big") if previous else 0) + change)


def digest_bytes(total):
    """A digest's sum as its stored 64 bytes."""
    return (total % _DIGEST_MODULUS).to_bytes(64, "big")


def runs(ids):
    """Sorted ids as [first, last] runs of consecutive ids."""
    found = []
    for record_id in ids:
        if found and found[-1][1] == record_id - 1:
            found[-1][1] = record_id
        else:
            found.append([record_id, record_id])
    return found


@dataclass
class Verification:
    """What walking the chain found."""

    records: int = 0  # records whose link was checked
    pruned: int = 0  # ids the chain crosses as pruned runs
    head_id: int = 0
    head_link: bytes = GENESIS
    broken_at: int | None = None  # the first record id where the chain breaks
    reason: str | None = None

    @property
    def intact(self):
        return self.reason is None

    def to_dict(self):
        if self.intact:
            return {"intact": True, "records": self.records, "pruned": self.pruned,
                    "head": {"id": self.head_id, "link": self.head_link.hex()}}
        return {"intact": False, "broken_at": self.broken_at, "reason": self.reason,
                "records": self.records}

    def summary(self):
        """One line: ``intact, N records`` or where and why the chain breaks."""
        if self.intact:
            return (f"intact, {self.records:,} records ({self.pruned:,} pruned);"
                    f" head {self.head_link.hex()} at id {self.head_id}")
        where = ("in the pruned ranges" if self.broken_at is None
                 else f"at record {self.broken_at}")
        return f"BROKEN {where}: {self.reason} ({self.records:,} records intact before it)"


def verify(records, gaps, checkpoints, last_id, newest_checkpoint, on_record=lambda: None):
    """Walk the whole chain; a Verification.

    ``records`` yields (id, *columns, link) in id order, ``gaps`` (first_id,
    last_id, link) in order, ``checkpoints`` (after_id, id, created_at, pruned,
    digest, link) by after_id then id; ``last_id`` is the last id a record was
    given and ``newest_checkpoint`` the (id, digest) of the newest checkpoint,
    or None. All read in one snapshot.
    """
    found = Verification()
    walk = _Walk(found, GENESIS, 1, on_record)
    walk.run(records, gaps, checkpoints)
    if not found.intact:
        return found
    if last_id >= walk.expected:
        return _broken(found, walk.expected, f"records {walk.expected}-{last_id} are missing")
    if walk.expected - 1 > last_id or walk.checkpoint_after > last_id:
        return _broken(found, None, f"the chain reaches past the last id given, {last_id}")
    if newest_checkpoint and newest_checkpoint[0] != walk.checkpoint_id:
        return _broken(found, None, f"the last prune checkpoint ({newest_checkpoint[0]}) is not"
                                    " where the chain says it was written")
    recorded = newest_checkpoint[1] if newest_checkpoint else digest_bytes(0)
    if digest_bytes(walk.gaps_sum) != recorded:
        return _broken(found, None, "the pruned ranges differ from those the last prune recorded")
    found.head_id, found.head_link = walk.expected - 1, walk.link
    return found


def check_run(link, first_id, records, checkpoints):
    """The Verification of a run of stored records that breaks, or None when it is intact.

    ``link`` is the chain's link before record ``first_id``; ``records`` and
    ``checkpoints`` are the run's entries, ordered as for ``verify``.
    """
    found = Verification()
    _Walk(found, link, first_id).run(records, [], checkpoints)
    return None if found.intact else found


class _Walk:
    """Checks the chain's entries from ``link`` and id ``expected`` on, in chain order.

    Stops at the first break, noted in ``found``; afterwards ``link`` and
    ``expected`` are where it ended.
    """

    def __init__(self, found, link, expected, on_record=lambda: None):
        self.found, self.link, self.expected, self.on_record = found, link, expected, on_record
        self.gap_end = None  # the last id of the pruned run just crossed, if no record since
        self.gaps_sum = 0  # the pruned runs' digest, as each prune keeps it
        self.checkpoint_id = self.checkpoint_after = 0  # the last checkpoint checked
        self.checkpoint_seen = 0  # the last checkpoint met, checked or not

    def run(self, records, gaps, checkpoints):
        """Walk the entries: records and pruned runs in id order, each checkpoint just after
        the record it was written after (cursors ordered by id, and by after_id then id)."""
        entries = merge(
            ((row[0], 0, 0, _RECORD, row) for row in records),
            ((gap[0], 0, 0, _GAP, gap) for gap in gaps),
            ((point[0], 1, point[1], _CHECKPOINT, point) for point in checkpoints),
            key=lambda entry: entry[:3],
        )
        step = {_RECORD: self._record, _GAP: self._gap, _CHECKPOINT: self._checkpoint}
        for position, *_, kind, entry in entries:
            try:
                broken = step[kind](*entry)
            except (TypeError, AttributeError, ValueError):  # a stored value of no sense
                broken = position, "a value of the wrong type"
            if broken:
                _broken(self.found, *broken)
                return

    def _record(self, record_id, *row):
        *row, stored = row
        if record_id != self.expected:
            return min(record_id, self.expected), _misplaced(record_id, self.expected)
        if record_link(self.link, record_id, row) != stored:
            return record_id, "its content or position does not match its link"
        self.link, self.expected, self.gap_end = stored, record_id + 1, None
        self.found.records += 1
        self.on_record()
        return None

    def _gap(self, first_id, last_id, stored):
        if first_id != self.expected or self.gap_end is not None:  # runs next to each other merge
            return min(first_id, self.expected), (
                f"the pruned run {first_id}-{last_id} does not follow record {self.expected - 1}")
        self.link, self.expected, self.gap_end = stored, last_id + 1, last_id
        self.found.pruned += last_id - first_id + 1
        self.gaps_sum += run_hash(first_id, last_id, stored)
        return None

    def _checkpoint(self, after_id, checkpoint_id, created_at, pruned, digest, stored):
        if checkpoint_id < self.checkpoint_seen:  # later ones were written after later records
            return after_id + 1, f"prune checkpoint {checkpoint_id} is out of order"
        self.checkpoint_seen = checkpoint_id
        if self.gap_end is not None and after_id < self.gap_end:
            return None  # written between records pruned since: the run's link covers it
        if checkpoint_link(self.link, created_at, after_id, pruned, digest) != stored:
            return after_id + 1, f"the prune checkpoint after id {after_id} does not match its link"
        self.link, self.checkpoint_id, self.checkpoint_after = stored, checkpoint_id, after_id
        return None


def _misplaced(record_id, expected):
    if record_id > expected:
        return f"records {expected}-{record_id - 1} are missing"
    return "a record stands where records were pruned"


def _broken(found, record_id, reason):
    found.broken_at, found.reason = record_id, reason
    return found
