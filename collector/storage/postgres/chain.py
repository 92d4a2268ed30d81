"""The audit chain's SQL on PostgreSQL: the head row, the links of pruned runs, checkpoints.

The arithmetic and the walk are ``collector.audit``'s. ``chain_head`` holds the last id
given and the chain's newest link; every writer locks it (``lock_head``) before it takes
ids, and holds it to its commit, so ids are gapless and commit in id order: a follower
polling ``id > n`` can never see a later id commit before an earlier one.
"""

from ... import audit
from ...records import COLUMNS
from .text import decode_row


def lock_head(connection):
    """Lock the chain's head until the transaction ends; (last id given, newest link)."""
    last_id, link = connection.execute(
        "SELECT last_id, link FROM chain_head WHERE id = 1 FOR UPDATE").fetchone()
    return last_id, bytes(link)


def move_head(connection, last_id, link):
    """Set the head (its lock held) to the last id given and the newest link."""
    connection.execute("UPDATE chain_head SET last_id = %s, link = %s WHERE id = 1",
                       (last_id, link))


def last_id_given(connection):
    """The last id a log record was given, deleted since or not; 0 when none was."""
    return connection.execute("SELECT last_id FROM chain_head WHERE id = 1").fetchone()[0]


def link_before(connection, record_id):
    """The link of the chain's entry just before record ``record_id``."""
    entries = [(0, 0, audit.GENESIS)]
    for sql in (
        "SELECT id, 0, chain FROM log_record WHERE id < %s ORDER BY id DESC LIMIT 1",
        "SELECT last_id, 0, link FROM audit_gap WHERE last_id < %s"
        " ORDER BY first_id DESC LIMIT 1",
        "SELECT after_id, id, link FROM audit_checkpoint WHERE after_id < %s"
        " ORDER BY after_id DESC, id DESC LIMIT 1",
    ):
        entries += [(a, b, bytes(link)) for a, b, link in connection.execute(sql, (record_id,))]
    return max(entries)[2]


def record_pruned(connection, links):
    """Merge the pruned records ({id: link}) into audit_gap, before deleting them; the change
    to the gap table's digest, for ``append_checkpoint``."""
    change = 0
    for first_id, last_id in audit.runs(sorted(links)):
        link = links[last_id]
        before = connection.execute(
            "SELECT first_id, last_id, link FROM audit_gap WHERE first_id < %s"
            " ORDER BY first_id DESC LIMIT 1", (first_id,)).fetchone()
        if before and before[1] == first_id - 1:
            connection.execute("DELETE FROM audit_gap WHERE first_id = %s", (before[0],))
            change -= audit.run_hash(before[0], before[1], bytes(before[2]))
            first_id = before[0]
        after = connection.execute(
            "SELECT first_id, last_id, link FROM audit_gap WHERE first_id = %s",
            (last_id + 1,)).fetchone()
        if after:
            connection.execute("DELETE FROM audit_gap WHERE first_id = %s", (after[0],))
            change -= audit.run_hash(after[0], after[1], bytes(after[2]))
            last_id, link = after[1], bytes(after[2])
        connection.execute("INSERT INTO audit_gap (first_id, last_id, link) VALUES (%s, %s, %s)",
                           (first_id, last_id, link))
        change += audit.run_hash(first_id, last_id, link)
    return change


def append_checkpoint(connection, pruned, now, change):
    """Add a checkpoint covering the gap table, changed by ``change``, to the chain; in the
    transaction that changed it, with the head locked."""
    last_id, previous = lock_head(connection)
    row = connection.execute(
        "SELECT gaps_digest FROM audit_checkpoint ORDER BY id DESC LIMIT 1").fetchone()
    digest = audit.changed_digest(bytes(row[0]) if row else None, change)
    link = audit.checkpoint_link(previous, now, last_id, pruned, digest)
    connection.execute(
        "INSERT INTO audit_checkpoint (created_at, after_id, pruned, gaps_digest, link)"
        " VALUES (%s, %s, %s, %s, %s)", (now, last_id, pruned, digest, link))
    move_head(connection, last_id, link)


def verify(connection, on_record=lambda: None):
    """Walk the whole chain in id order; an audit.Verification. In one snapshot (REPEATABLE
    READ), the records streamed through a server-side cursor."""
    newest = connection.execute(
        "SELECT id, gaps_digest FROM audit_checkpoint ORDER BY id DESC LIMIT 1").fetchone()
    records = connection.cursor(name="collector_verify")
    records.itersize = 5000
    records.execute(_RECORDS_SQL, (0, _MAX_ID))
    return audit.verify(
        (decode_row(_plain(row), 1) for row in records),
        [_plain(row) for row in connection.execute(_GAPS_SQL)],
        [_plain(row) for row in connection.execute(_CHECKPOINTS_SQL, (0, _MAX_ID))],
        last_id_given(connection), newest and (newest[0], bytes(newest[1])), on_record,
    )


def check_before_pruning(connection, ids):
    """The Verification of the stored records ``ids`` that do not match their links, or None."""
    for first_id, last_id in audit.runs(sorted(ids)):
        broken = audit.check_run(
            link_before(connection, first_id), first_id,
            (decode_row(_plain(row), 1)
             for row in connection.execute(_RECORDS_SQL, (first_id, last_id))),
            [_plain(row) for row in connection.execute(_CHECKPOINTS_SQL,
                                                       (first_id, last_id - 1))],
        )
        if broken:
            return broken
    return None


def _plain(row):
    # bytea may come back as memoryview; the chain compares bytes.
    return tuple(bytes(value) if isinstance(value, memoryview) else value for value in row)


_MAX_ID = 2**63 - 1
_RECORDS_SQL = "SELECT id, {}, chain FROM log_record WHERE id BETWEEN %s AND %s ORDER BY id".format(
    ", ".join(COLUMNS))
_GAPS_SQL = "SELECT first_id, last_id, link FROM audit_gap ORDER BY first_id"
_CHECKPOINTS_SQL = (
    "SELECT after_id, id, created_at, pruned, gaps_digest, link FROM audit_checkpoint"
    " WHERE after_id BETWEEN %s AND %s ORDER BY after_id, id"
)
