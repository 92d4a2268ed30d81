"""The patterns in PostgreSQL (derived data beside the records, see ``collector.patterns``):
``record_pattern``, ``pattern``, ``pattern_cluster`` and ``miner_state`` in the same
database, read by joins; the one miner across every instance holds an advisory lock."""

import contextlib
import time

import orjson
import peewee as pw

from ...patterns.index import ClusterRow, Pattern
from ..base import MinerLedger, MiningProgress
from .db import connect_raw, database, storage_errors
from .migrations import MINER_LOCK
from .models import LogRecord as R
from .models import PatternRow, RecordPattern
from .text import decode

_TABLES = ("miner_state", "pattern_cluster", "pattern", "record_pattern")
# Past this many records a pattern counts as common (see pattern_clause).
COMMON_PATTERN_RECORDS = 5000


def with_pattern_ids(query):
    """``query`` of log records with each one's canonical pattern id as a last column."""
    return (query.select_extend(PatternRow.canonical_id)
            .join(RecordPattern, pw.JOIN.LEFT_OUTER, on=(RecordPattern.record_id == R.id))
            .join(PatternRow, pw.JOIN.LEFT_OUTER, on=(PatternRow.id == RecordPattern.pattern_id))
            .switch(R))


def pattern_clause(pattern_id):
    """Records of the pattern that stands for ``pattern_id`` now (and of its aliases)."""
    canonical = (PatternRow.select(PatternRow.canonical_id)
                 .where(PatternRow.id == pattern_id).scalar())
    if canonical is None:
        return pw.SQL("FALSE")  # no such pattern: no record
    aliases = PatternRow.select(PatternRow.id).where(PatternRow.canonical_id == canonical)
    return R.id.in_(RecordPattern.select(RecordPattern.record_id)
                    .where(RecordPattern.pattern_id.in_(aliases)))


def progress():
    """The MiningProgress."""
    row = database.execute_sql("SELECT mined_id FROM miner_state").fetchone()
    mined_id = row[0] if row else 0
    newest = R.select(R.id).order_by(R.id.desc()).limit(1).scalar() or 0
    oldest = (R.select(R.received_at).where(R.id > mined_id).order_by(R.id).limit(1).scalar()
              if newest > mined_id else None)
    return MiningProgress(mined_id, newest, oldest)


def reset(connection):
    """Empty the patterns (a restored database is mined again from its first record)."""
    connection.execute(f"TRUNCATE {', '.join(_TABLES)}")


@contextlib.contextmanager
def miner_ledger(config):
    """Hold the one miner lock (a session advisory lock on the ledger's own connection),
    yielding the ledger, or None while another miner holds it."""
    with storage_errors():
        connection = connect_raw(config)
    try:
        with storage_errors():
            held = connection.execute("SELECT pg_try_advisory_lock(%s)",
                                      (MINER_LOCK,)).fetchone()[0]
        yield PostgresMinerLedger(connection) if held else None
    finally:
        connection.close()  # the lock goes with the session


class PostgresMinerLedger(MinerLedger):
    """The MinerLedger on one connection of the miner's."""

    def __init__(self, connection):
        self.connection = connection

    def load(self, generation):
        with storage_errors(), self.connection.transaction():
            state = self.connection.execute(
                "SELECT generation, mined_id FROM miner_state").fetchone()
            if state is not None and state[0] == generation:
                clusters = [
                    ClusterRow(service, cluster_id, tuple(orjson.loads(created)),
                               tuple(orjson.loads(template)), orjson.loads(places))
                    for service, cluster_id, created, template, places in self.connection.execute(
                        "SELECT service, cluster_id, created, template, places"
                        " FROM pattern_cluster ORDER BY service, cluster_id")
                ]
                patterns = [
                    Pattern(pattern_id, service, cluster_id, tuple(orjson.loads(key)),
                            canonical_id, text, first_seen, last_seen, records)
                    for (pattern_id, service, cluster_id, key, canonical_id, text, first_seen,
                         last_seen, records) in self.connection.execute(
                        "SELECT id, service, cluster_id, key, canonical_id, text, first_seen,"
                        " last_seen, records FROM pattern ORDER BY id")
                ]
                return state[1], clusters, patterns
            reset(self.connection)  # another generation, or nothing: start afresh
            self.connection.execute(
                "INSERT INTO miner_state (id, generation, mined_id, updated_at)"
                " VALUES (1, %s, 0, %s)", (generation, time.time_ns() // 1000))
            return 0, [], []

    def unmined(self, after_id, limit):
        with storage_errors():
            return [(record_id, decode(service), decode(message), timestamp, received_at)
                    for record_id, service, message, timestamp, received_at
                    in self.connection.execute(
                        "SELECT id, service, message, timestamp, received_at FROM log_record"
                        " WHERE id > %s ORDER BY id LIMIT %s", (after_id, limit))]

    def save(self, changes, mined_id):
        with storage_errors(), self.connection.transaction(), self.connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO record_pattern (record_id, pattern_id) VALUES (%s, %s)"
                " ON CONFLICT (record_id) DO UPDATE SET pattern_id = excluded.pattern_id",
                changes.assigned)
            cursor.executemany(
                "INSERT INTO pattern_cluster (service, cluster_id, created, template, places)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (service, cluster_id) DO UPDATE SET"
                " created = excluded.created, template = excluded.template,"
                " places = excluded.places",
                [(row.service, row.cluster_id, orjson.dumps(row.created).decode(),
                  orjson.dumps(row.template).decode(), orjson.dumps(row.places).decode())
                 for row in changes.clusters])
            cursor.executemany(
                "INSERT INTO pattern (id, service, cluster_id, key, canonical_id, text,"
                " first_seen, last_seen, records) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET service = excluded.service,"
                " cluster_id = excluded.cluster_id, key = excluded.key,"
                " canonical_id = excluded.canonical_id, text = excluded.text,"
                " first_seen = excluded.first_seen, last_seen = excluded.last_seen,"
                " records = excluded.records",
                [(p.id, p.service, p.cluster_id, orjson.dumps(p.key).decode(), p.canonical_id,
                  p.text, p.first_seen, p.last_seen, p.records) for p in changes.patterns])
            cursor.execute("UPDATE miner_state SET mined_id = %s, updated_at = %s",
                           (mined_id, time.time_ns() // 1000))

    def forget_pruned(self, after_id, limit):
        with storage_errors(), self.connection.transaction():
            ids = [record_id for (record_id,) in self.connection.execute(
                "SELECT record_id FROM record_pattern WHERE record_id > %s"
                " ORDER BY record_id LIMIT %s", (after_id, limit))]
            if not ids:
                return None
            self.connection.execute(
                "DELETE FROM record_pattern WHERE record_id BETWEEN %s AND %s"
                " AND record_id NOT IN (SELECT id FROM log_record WHERE id BETWEEN %s AND %s)",
                (ids[0], ids[-1], ids[0], ids[-1]))
            return ids[-1]
