"""The audit chain's SQL: its head, the links of pruned runs, checkpoints, and the walk's cursors.

The arithmetic and the walk are ``collector.audit``'s; this module keeps them fed
from the tables ``log_record`` (each record's ``chain``), ``audit_gap`` (one row
per run of pruned ids, with the link of its last record) and
``audit_checkpoint`` (one per prune transaction).
"""

import json

from ... import audit
from ...records import COLUMNS
from ...times import now_micros


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
    entries = [(0, 0, audit.GENESIS)]
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
    return audit.link_rows(*head(connection), rows)


def record_pruned(connection, ids):
    """Merge the ids about to be pruned into audit_gap; call before deleting them.

    Returns the change to the gap table's digest, for ``append_checkpoint``.
    """
    links = dict(connection.execute(
        "SELECT id, chain FROM log_record WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(ids),),
    ).fetchall())
    change = 0
    for first_id, last_id in audit.runs(sorted(links)):
        link = links[last_id]
        before = connection.execute(
            "SELECT first_id, last_id, link FROM audit_gap WHERE first_id < ?"
            " ORDER BY first_id DESC LIMIT 1", (first_id,),
        ).fetchone()
        if before and before[1] == first_id - 1:
            connection.execute("DELETE FROM audit_gap WHERE first_id = ?", (before[0],))
            change -= audit.run_hash(*before)
            first_id = before[0]
        after = connection.execute(
            "SELECT first_id, last_id, link FROM audit_gap WHERE first_id = ?", (last_id + 1,)
        ).fetchone()
        if after:
            connection.execute("DELETE FROM audit_gap WHERE first_id = ?", (after[0],))
            change -= audit.run_hash(*after)
            last_id, link = after[1], after[2]
        connection.execute(
            "INSERT INTO audit_gap (first_id, last_id, link) VALUES (?, ?, ?)",
            (first_id, last_id, link),
        )
        change += audit.run_hash(first_id, last_id, link)
    return change


def append_checkpoint(connection, pruned, now, change):
    """Add a checkpoint covering the gap table, changed by ``change``, to the chain.

    In the transaction that changed the gap table.
    """
    last_id, previous = head(connection)
    row = connection.execute(
        "SELECT gaps_digest FROM audit_checkpoint ORDER BY id DESC LIMIT 1").fetchone()
    digest = audit.changed_digest(row[0] if row else None, change)
    connection.execute(
        "INSERT INTO audit_checkpoint (created_at, after_id, pruned, gaps_digest, link)"
        " VALUES (?, ?, ?, ?, ?)",
        (now, last_id, pruned, digest,
         audit.checkpoint_link(previous, now, last_id, pruned, digest)),
    )


def verify(connection, on_record=lambda: None):
    """Walk the whole chain in id order; an audit.Verification. In one read transaction."""
    newest = connection.execute(
        "SELECT id, gaps_digest FROM audit_checkpoint ORDER BY id DESC LIMIT 1").fetchone()
    return audit.verify(
        connection.execute(_RECORDS_SQL, (0, _MAX_ID)),
        connection.execute(_GAPS_SQL),
        connection.execute(_CHECKPOINTS_SQL, (0, _MAX_ID)),
        last_id_given(connection), newest, on_record,
    )


def check_before_pruning(connection, ids):
    """The Verification of the stored records ``ids`` that do not match their links, or None.

    Pruning must not delete an altered record: it would take the evidence along
    and leave a gap whose link looks right. Call it in the read transaction
    that found ``ids``.
    """
    for first_id, last_id in audit.runs(sorted(ids)):
        broken = audit.check_run(
            link_before(connection, first_id), first_id,
            connection.execute(_RECORDS_SQL, (first_id, last_id)),
            connection.execute(_CHECKPOINTS_SQL, (first_id, last_id - 1)),
        )
        if broken:
            return broken
    return None


def link_existing_records(connection):
    """Link the records stored before the chain existed; the migration that adds it calls this.

    Ids missing already (pruned before) become pruned runs, passed through
    with the link before them, and a checkpoint covers them.
    """
    columns = ", ".join(COLUMNS)
    link, expected, missing = audit.GENESIS, 1, []
    while rows := connection.execute(  # a chunk at a time: a large table need not fit in memory
        f"SELECT id, {columns} FROM log_record WHERE id >= ? ORDER BY id LIMIT 10000", (expected,)
    ).fetchall():
        links = []
        for record_id, *row in rows:
            if record_id > expected:
                missing.append((expected, record_id - 1, link))
            link = audit.record_link(link, record_id, row)
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
        append_checkpoint(connection, 0, now_micros(),
                          sum(audit.run_hash(*gap) for gap in missing))


_MAX_ID = 2**63 - 1
_RECORDS_SQL = "SELECT id, {}, chain FROM log_record WHERE id BETWEEN ? AND ? ORDER BY id".format(
    ", ".join(COLUMNS))
_GAPS_SQL = "SELECT first_id, last_id, link FROM audit_gap ORDER BY first_id"
_CHECKPOINTS_SQL = (
    "SELECT after_id, id, created_at, pruned, gaps_digest, link FROM audit_checkpoint"
    " WHERE after_id BETWEEN ? AND ? ORDER BY after_id, id"
)
