"""The database: one deferred peewee object, its pragmas, connections and write transactions."""

import contextlib
import os
import sqlite3
import time

from playhouse.pool import PooledSqliteDatabase

from .errors import STORAGE_FAILURES
from .metrics import WRITE_LOCK_WAIT, WRITE_TRANSACTION

# Initialised by ``init_app`` from the configured URL; no connection is opened
# before a request needs one, so nothing crosses gunicorn's fork.
# The pool holds at most one connection per gunicorn thread, so it needs no cap.
database = PooledSqliteDatabase(None, max_connections=None)
PAGE_SIZE = 4096  # SQLite's default, which the collector keeps


def pragmas(config):
    """The pragmas set on every new connection."""
    values = {
        # First, before WAL writes the header: only a new, empty database takes
        # it. It lets `make prune` give freed pages back to the file system.
        "auto_vacuum": "incremental",
        "journal_mode": "wal",
        "synchronous": config["SQLITE_SYNCHRONOUS"],
        "foreign_keys": 1,
        # Per connection, so per thread that touched the database: the OS page
        # cache keeps the file hot anyway, this only saves a read() per page.
        "cache_size": -1024 * config["SQLITE_CACHE_MB"],
        "temp_store": "memory",
        # How long BEGIN IMMEDIATE waits for the write lock, in milliseconds.
        "busy_timeout": round(config["WRITE_LOCK_TIMEOUT"] * 1000),
    }
    if config["SQLITE_MAX_SIZE_MB"]:
        # A size cap: past it, writes fail as they would on a full disk.
        values["max_page_count"] = config["SQLITE_MAX_SIZE_MB"] * (1024 * 1024 // PAGE_SIZE)
    return values


def configure(config):
    """Point the shared database object at the configured SQLite file."""
    path = config["DATABASE_URL"].removeprefix("sqlite:///")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if not database.deferred:  # configured before (tests build many apps)
        database.close_all()
    # Pooled connections move between a worker's threads.
    database.init(path, pragmas=pragmas(config), check_same_thread=False)
    return database


def init_app(app):
    """Configure the database for ``app`` and return connections after each request."""
    configure(app.config)

    @app.teardown_request
    def close_connection(exc):
        if not database.is_closed():
            database.close()


@contextlib.contextmanager
def write_transaction():
    """A write transaction that takes the write lock up front (BEGIN IMMEDIATE).

    Concurrent writers wait in SQLite's busy handler (which retries, sleeping
    between tries) for up to WRITE_LOCK_TIMEOUT seconds; past that the request
    answers 503 with Retry-After instead of failing late with "database is
    locked". A full disk or a read-only file
    rolls the transaction back and answers 507 or 503 the same way.
    """
    connection = database.connection()
    try:
        asked = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        locked = time.perf_counter()
        WRITE_LOCK_WAIT.observe(locked - asked)
        try:
            yield connection
            connection.execute("COMMIT")
        finally:
            # SQLite may have rolled back already (it does on a full disk).
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            WRITE_TRANSACTION.observe(time.perf_counter() - locked)
    except sqlite3.OperationalError as exc:
        for words, failure in STORAGE_FAILURES.items():
            if words in str(exc):
                raise failure() from exc
        raise
