"""The storage limit: the collector's own rows through plain sqlite3, no framework in the way.

Same schema (the collector's migrations: indexes and full-text index), same pragmas
(collector.storage.sqlite.db.pragmas), same rows (the generated records through the write
path's validate and normalize), same statements (the SQLite backend's insert_rows: one
executemany of the linked rows, then their messages into the full-text index), one
BEGIN IMMEDIATE ... COMMIT per 1,000 rows on a sqlite3 connection: what SQLite allows on this
machine for the collector's storage work, without HTTP, Flask, peewee or validation.
"""

import itertools
import sqlite3
import time
from contextlib import closing

from collector.ingest.schemas import record_schema
from collector.ingest.writer import normalize, validate
from collector.storage import open_store
from collector.storage.sqlite.db import pragmas
from collector.storage.sqlite.writes import insert_rows
from collector.times import now_micros
from config import Config

from .report import Row

ROWS_PER_TRANSACTION = 1_000


def collector_config(database):
    """The collector's settings from the environment, on the SQLite file ``database``."""
    return {**Config().as_dict(), "DATABASE_URL": f"sqlite:///{database}"}


def normalized_rows(records):
    """``records`` as the Rows the collector would insert for them."""
    valid, errors = validate(records, record_schema(Config().as_dict()))
    if errors:
        first = dict(list(errors.items())[:3])
        raise ValueError(f"the collector rejects generated records: {first}")
    received_at = now_micros()
    return [normalize(record, received_at) for record in valid]


def create_schema(database):
    """Create the collector's schema in ``database`` by running its migrations."""
    store = open_store(collector_config(database))
    with store.session():
        store.migrate()
    store.close()


def connect(database):
    """A plain sqlite3 connection to ``database`` with the collector's pragmas, in autocommit."""
    connection = sqlite3.connect(database, isolation_level=None)
    for name, value in _pragmas(database).items():
        connection.execute(f"PRAGMA {name} = {value}")
    return connection


def insert(connection, rows, count, per_transaction):
    """Insert ``count`` rows cycled from ``rows``, ``per_transaction`` a commit; return seconds."""
    cycled = itertools.cycle(rows)
    started = time.perf_counter()
    for done in range(0, count, per_transaction):
        chunk = list(itertools.islice(cycled, min(per_transaction, count - done)))
        connection.execute("BEGIN IMMEDIATE")
        insert_rows(connection, chunk)
        connection.execute("COMMIT")
    return time.perf_counter() - started


def row_count(database):
    """How many log records ``database`` holds (its newest id: nothing is deleted here)."""
    with closing(sqlite3.connect(database)) as connection:
        return connection.execute("SELECT MAX(id) FROM log_record").fetchone()[0] or 0


def storage_limit(bench):
    """Section: records/s of plain sqlite3 inserts into a fresh database of the collector's."""
    database = bench.workdir / "raw.db"
    create_schema(database)
    count = bench.mode.raw_rows
    with closing(connect(database)) as connection:
        seconds = insert(connection, bench.rows, count, ROWS_PER_TRANSACTION)
    rate = count / seconds
    figures = {
        "records": count,
        "rows_per_transaction": ROWS_PER_TRANSACTION,
        "seconds": seconds,
        "records_per_s": rate,
        "us_per_record": 1e6 / rate,
        "pragmas": {name: str(value) for name, value in _pragmas(database).items()},
        "sqlite_version": sqlite3.sqlite_version,
    }
    rows = [
        Row(f"executemany + FTS, {count:,} rows, 1,000 a commit", f"{rate:,.0f} records/s"),
        Row("  per record", f"{1e6 / rate:,.1f} us"),
    ]
    return figures, rows


def _pragmas(database):
    return pragmas(collector_config(database))
