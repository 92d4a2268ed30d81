"""The audit chain: every record is linked to the one before by a hash, so edits show.

A log record's ``chain`` is SHA-256 over the previous link and the record's
canonical content (its id and every stored column), computed in the write
transaction that inserts it: one chain, in id order, however many workers
write. Changing, deleting, inserting or reordering a record breaks the links
from there on.

Retention pruning is the one deletion. For each run of consecutive pruned ids
it keeps the link of the run's last record in ``audit_gap``, so the chain can
still be walked across the run. Each prune transaction appends a checkpoint to
the chain (``audit_checkpoint``) holding a digest of the whole gap table: a gap
widened later to hide a deleted record no longer matches the last checkpoint,
and the checkpoint cannot be changed without breaking its own link.

The chain proves that the records are as written unless every link after the
change was recomputed too: whoever can rewrite the whole file can rewrite the
chain. Keep the head link that ``verify`` reports somewhere else to rule that out.
"""

import hashlib
import json
from dataclasses import dataclass
from heapq import merge

import orjson

from .times import now_micros

GENESIS = bytes(32)  # the link before the first record

# A record's stored columns, all covered by its link (LogRecord.INSERT_COLUMNS).
RECORD_COLUMNS = (
    "received_at", "timestamp", "service", "severity", "severity_rank", "message",
    "host", "trace_id", "span_id", "attributes", "event_id", "api_key_id",
)

_RECORD, _GAP, _CHECKPOINT = 0, 1, 2


def record_link(previous, record_id, row):
    """The link of a record: ``row`` is its columns in ``LogRecord.INSERT_COLUMNS`` order."""
    return hashlib.sha256(previous + orjson.dumps((record_id, *row))).digest()


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
    return _digest_bytes(sum(run_hash(*gap) for gap in gaps))


def _digest_bytes(total):
    return (total % _DIGEST_MODULUS).to_bytes(64, "big")


def last_id_given(connection):
    """The last id a log record was given, deleted since or not; 0 when none was."""
    row = connection.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log_record'").fetchone()
    return row[0] if row else 0


def head(connection):
    """The last id a log record was given and the chain's newest link."""
    last_id = last_id_given(connection)
    return last_id, link_before(connection, last_id + 1)


def link_before(connection, record_id):
    """The link of the chain's entry just before record ``record_id``."""
    # A record, a pruned run (it stands where its last record stood) or a
    # checkpoint written after record ``after_id``, whichever comes last.
    entries = [(0, 0, GENESIS)]
    for sql in (
        "SELECT id, 0, chain FROM log_record WHERE id < ? ORDER BY id DESC LIMIT 1",
        "SELECT last_id, 0, link FROM audit_gap WHERE last_id < ? ORDER BY first_id DESC LIMIT 1",
        "SELECT after_id, id, link FROM audit_checkpoint WHERE after_id < ?"
        " ORDER BY after_id DESC, id DESC LIMIT 1",
    ):
        entries += connection.execute(sql, (record_id,)).fetchall()
    return max(entries)[2]


def link_rows(connection, rows):
    """``rows`` as (id, *row, link) for the next ids, continuing the chain.

    In the write transaction that inserts them: the ids and the chain's head
    cannot change in between.
    """
    last_id, link = head(connection)
    linked = []
    for record_id, row in enumerate(rows, last_id + 1):
        link = record_link(link, record_id, row)
        linked.append((record_id, *row, link))
    return linked


def record_pruned(connection, ids):
    """Merge the ids about to be pruned into audit_gap; call before deleting them.

    Returns the change to the gap table's digest, for ``append_checkpoint``.
    """
    links = dict(connection.execute(
        "SELECT id, chain FROM log_record WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(ids),),
    ).fetchall())
    change = 0
    for first_id, last_id in _runs(sorted(links)):
        link = links[last_id]
        before = connection.execute(
            "SELECT first_id, last_id, link FROM audit_gap WHERE first_id < ?"
            " ORDER BY first_id DESC LIMIT 1", (first_id,),
        ).fetchone()
        if before and before[1] == first_id - 1:
            connection.execute("DELETE FROM audit_gap WHERE first_id = ?", (before[0],))
            change -= run_hash(*before)
            first_id = before[0]
        after = connection.execute(
            "SELECT first_id, last_id, link FROM audit_gap WHERE first_id = ?", (last_id + 1,)
        ).fetchone()
        if after:
            connection.execute("DELETE FROM audit_gap WHERE first_id = ?", (after[0],))
            change -= run_hash(*after)
            last_id, link = after[1], after[2]
        connection.execute(
            "INSERT INTO audit_gap (first_id, last_id, link) VALUES (?, ?, ?)",
            (first_id, last_id, link),
        )
        change += run_hash(first_id, last_id, link)
    return change


def _runs(ids):
    """Sorted ids as (first, last) runs of consecutive ids."""
    runs = []
    for record_id in ids:
        if runs and runs[-1][1] == record_id - 1:
            runs[-1][1] = record_id
        else:
            runs.append([record_id, record_id])
    return runs


def append_checkpoint(connection, pruned, now, change):
    """Add a checkpoint covering the gap table, changed by ``change``, to the chain.

    In the transaction that changed the gap table.
    """
    last_id, previous = head(connection)
    row = connection.execute(
        "SELECT gaps_digest FROM audit_checkpoint ORDER BY id DESC LIMIT 1").fetchone()
    digest = _digest_bytes((int.from_bytes(row[0], "big") if row else 0) + change)
    connection.execute(
        "INSERT INTO audit_checkpoint (created_at, after_id, pruned, gaps_digest, link)"
        " VALUES (?, ?, ?, ?, ?)",
        (now, last_id, pruned, digest, checkpoint_link(previous, now, last_id, pruned, digest)),
    )


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


def verify(connection, on_record=lambda: None):
    """Walk the whole chain in id order; a Verification. Call it in one read transaction."""
    found = Verification()
    last_id = last_id_given(connection)
    walk = _Walk(found, GENESIS, 1, on_record)
    walk.run(connection.execute(_RECORDS_SQL, (0, _MAX_ID)),
             connection.execute(_GAPS_SQL),
             connection.execute(_CHECKPOINTS_SQL, (0, _MAX_ID)))
    if not found.intact:
        return found
    if last_id >= walk.expected:
        return _broken(found, walk.expected, f"records {walk.expected}-{last_id} are missing")
    if walk.expected - 1 > last_id or walk.checkpoint_after > last_id:
        return _broken(found, None, f"the chain reaches past the last id given, {last_id}")
    newest = connection.execute(
        "SELECT id, gaps_digest FROM audit_checkpoint ORDER BY id DESC LIMIT 1").fetchone()
    if newest and newest[0] != walk.checkpoint_id:
        return _broken(found, None, f"the last prune checkpoint ({newest[0]}) is not where"
                                    " the chain says it was written")
    if _digest_bytes(walk.gaps_sum) != (newest[1] if newest else _digest_bytes(0)):
        return _broken(found, None, "the pruned ranges differ from those the last prune recorded")
    found.head_id, found.head_link = walk.expected - 1, walk.link
    return found


def check_before_pruning(connection, ids):
    """The Verification of the stored records ``ids`` that do not match their links, or None.

    Pruning must not delete an altered record: it would take the evidence along
    and leave a gap whose link looks right. Call it in the read transaction
    that found ``ids``.
    """
    for first_id, last_id in _runs(sorted(ids)):
        found = Verification()
        _Walk(found, link_before(connection, first_id), first_id).run(
            connection.execute(_RECORDS_SQL, (first_id, last_id)), [],
            connection.execute(_CHECKPOINTS_SQL, (first_id, last_id - 1)),
        )
        if not found.intact:
            return found
    return None


class _Walk:
    """Checks the chain's entries from ``link`` and id ``expected`` on, in chain order.

    Stops at the first break, noted in ``found``; afterwards ``link`` and
    ``expected`` are where it ended.
    """

    def __init__(self, found, link, expected, on_record=lambda: None):
        self.found, self.link, self.expected, self.on_record = found, link, expected, on_record
        self.gap_end = None  # the last id of the pruned run just crossed, if no record since
        self.gaps_sum = 0  # the pruned runs' digest, as append_checkpoint keeps it
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
            except (TypeError, AttributeError, ValueError):  # a value SQLite let in, of no sense
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


def link_existing_records(connection):
    """Link the records stored before the chain existed; the migration that adds it calls this.

    Ids missing already (pruned before) become pruned runs, passed through
    with the link before them, and a checkpoint covers them.
    """
    columns = ", ".join(RECORD_COLUMNS)
    link, expected, missing = GENESIS, 1, []
    while rows := connection.execute(  # a chunk at a time: a large table need not fit in memory
        f"SELECT id, {columns} FROM log_record WHERE id >= ? ORDER BY id LIMIT 10000", (expected,)
    ).fetchall():
        links = []
        for record_id, *row in rows:
            if record_id > expected:
                missing.append((expected, record_id - 1, link))
            link = record_link(link, record_id, row)
            links.append((link, record_id))
            expected = record_id + 1
        connection.executemany("UPDATE log_record SET chain = ? WHERE id = ?", links)
    last_id = last_id_given(connection)
    if last_id >= expected:
        missing.append((expected, last_id, link))
    connection.executemany(
        "INSERT INTO audit_gap (first_id, last_id, link) VALUES (?, ?, ?)", missing
    )
    if missing:
        append_checkpoint(connection, 0, now_micros(), sum(run_hash(*gap) for gap in missing))


_MAX_ID = 2**63 - 1
_RECORDS_SQL = "SELECT id, {}, chain FROM log_record WHERE id BETWEEN ? AND ? ORDER BY id".format(
    ", ".join(RECORD_COLUMNS))
_GAPS_SQL = "SELECT first_id, last_id, link FROM audit_gap ORDER BY first_id"
_CHECKPOINTS_SQL = (
    "SELECT after_id, id, created_at, pruned, gaps_digest, link FROM audit_checkpoint"
    " WHERE after_id BETWEEN ? AND ? ORDER BY after_id, id"
)
