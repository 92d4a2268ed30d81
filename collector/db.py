"""The database: one deferred peewee object, its pragmas, connections and write transactions."""

import contextlib
import os
import sqlite3

import peewee as pw
from playhouse.pool import PooledSqliteDatabase

from .errors import StorageBusy

# Initialised by ``init_app`` from the configured URL; no connection is opened
# before a request needs one, so nothing crosses gunicorn's fork.
database = PooledSqliteDatabase(None)


def pragmas(config):
    """The pragmas set on every new connection."""
    return {
        "journal_mode": "wal",
        "synchronous": config["SQLITE_SYNCHRONOUS"],
        "foreign_keys": 1,
        # WAL mode makes this a cheap size check per page; 64 MiB of page cache.
        "cache_size": -64 * 1024,
        "temp_store": "memory",
    }


def configure(config):
    """Point the shared database object at the configured SQLite file."""
    path = config["DATABASE_URL"].removeprefix("sqlite:///")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    database.init(
        path,
        pragmas=pragmas(config),
        # sqlite3's busy handler: how long BEGIN IMMEDIATE waits for the write lock.
        timeout=config["WRITE_LOCK_TIMEOUT"],
        check_same_thread=False,
        max_connections=None,
        stale_timeout=None,
    )
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

    Concurrent writers queue in SQLite's busy handler for WRITE_LOCK_TIMEOUT
    seconds; past that the request answers 503 with Retry-After instead of
    failing late with "database is locked".
    """
    try:
        with database.atomic("IMMEDIATE"):
            yield database.connection()
    except (pw.OperationalError, sqlite3.OperationalError) as exc:
        if "database is locked" in str(exc):
            raise StorageBusy() from exc
        raise
