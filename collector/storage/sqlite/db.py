"""The SQLite database: one deferred peewee object, its pragmas, connections, write transactions,
and SQLite's failures in the domain's words."""

import contextlib
import os
import sqlite3
import time

import peewee as pw
from playhouse.pool import PooledSqliteDatabase

from ...errors import StorageBusy, StorageFull, StorageReadOnly, StorageUnavailable
from ...metrics import WRITE_LOCK_WAIT, WRITE_TRANSACTION

# Initialised by ``configure``; no connection is opened before one is needed,
# so nothing crosses gunicorn's fork. The pool holds at most one connection per
# gunicorn thread, so it needs no cap.
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


def configure(path, config):
    """Point the shared database object at the SQLite file ``path``."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if not database.deferred:  # configured before (tests build many stores)
        database.close_all()
    # Pooled connections move between a worker's threads.
    database.init(path, pragmas=pragmas(config), check_same_thread=False)
    return database


# SQLite's words for what it cannot do -> the domain's error.
_FAILURES = {
    "database is locked": StorageBusy,
    "database or disk is full": StorageFull,
    "attempt to write a readonly database": StorageReadOnly,
}


@contextlib.contextmanager
def storage_errors():
    """Turn SQLite's failures to write, or to open the database, into domain errors."""
    try:
        yield
    except (sqlite3.OperationalError, pw.OperationalError) as exc:
        failure = _domain_error(exc)
        if failure is None:
            raise
        raise failure from exc


def _domain_error(exc):
    text = str(exc)
    for words, failure in _FAILURES.items():
        if words in text:
            return failure()
    if "unable to open database file" in text:
        # Setting the pragmas of a new connection writes the -wal and -shm files.
        path = database.database
        if not all(os.access(target, os.W_OK) for target in _files_to_write(path)):
            return StorageReadOnly()
        return StorageUnavailable("storage_unavailable",
                                  f"the database cannot be opened: {text}", 30)
    return None


def _files_to_write(path):
    directory = os.path.dirname(os.path.abspath(path))
    return [directory] + [name for name in (path, f"{path}-wal", f"{path}-shm")
                          if os.path.exists(name)]


@contextlib.contextmanager
def write_transaction():
    """A write transaction that takes the write lock up front (BEGIN IMMEDIATE).

    Concurrent writers wait in SQLite's busy handler (which retries, sleeping
    between tries) for up to WRITE_LOCK_TIMEOUT seconds; past that the write
    raises StorageBusy instead of failing late with "database is locked". A
    full disk or a read-only file rolls the transaction back and raises
    StorageFull or StorageReadOnly.
    """
    with storage_errors():
        connection = database.connection()
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
