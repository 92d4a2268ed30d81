"""The PostgreSQL database: one deferred pooled peewee object, its connections' settings, the write
transaction around the chain's head, and PostgreSQL's failures in the domain's words."""

import contextlib
import time

import peewee as pw
import psycopg
from playhouse.pool import MaxConnectionsExceeded, PooledPostgresqlDatabase
from psycopg.types.string import TextLoader

from ...errors import StorageBusy, StorageFull, StorageReadOnly, StorageUnavailable
from ...metrics import WRITE_LOCK_WAIT, WRITE_TRANSACTION


def json_as_text(connection):
    """Read json columns back as their text: the audit chain hashed that text, and answers
    embed it as it is."""
    connection.adapters.register_loader("json", TextLoader)
    return connection


class _Database(PooledPostgresqlDatabase):
    def _connect(self):
        return json_as_text(super()._connect())


# Initialised by ``configure``; no connection is opened before one is needed, so
# nothing crosses gunicorn's fork.
database = _Database(None, prefer_psycopg3=True)


def conninfo(url):
    """The libpq connection string of a DATABASE_URL (postgres:// is an alias)."""
    return "postgresql://" + url.split("://", 1)[1]


def connect_kwargs(config):
    """psycopg's connection settings from the collector's."""
    timeout_ms = round(config["POSTGRES_STATEMENT_TIMEOUT"] * 1000)
    return {
        "conninfo": conninfo(config["DATABASE_URL"]),
        "connect_timeout": config["POSTGRES_CONNECT_TIMEOUT"],
        # Every time as UTC, and a statement past its limit cancelled (answered 503).
        "options": f"-c statement_timeout={timeout_ms} -c TimeZone=UTC",
        "application_name": "collector",
    }


def configure(config):
    """Point the shared database object at the server DATABASE_URL names."""
    if not database.deferred:  # configured before (tests build many stores)
        database.close_all()
    database.init(
        conninfo(config["DATABASE_URL"]), max_connections=config["POSTGRES_POOL_SIZE"],
        # A thread waits this long for a free pooled connection, then answers 503.
        timeout=max(1, round(config["WRITE_LOCK_TIMEOUT"])), stale_timeout=300,
        prefer_psycopg3=True,
        **{name: value for name, value in connect_kwargs(config).items() if name != "conninfo"},
    )
    return database


def connect_raw(config, autocommit=True):
    """A connection of its own, outside the pool (the lock holders, the miner)."""
    connection = json_as_text(psycopg.connect(**connect_kwargs(config)))
    connection.autocommit = autocommit
    return connection


# SQLSTATE classes and codes -> the domain's error (see failure).
_RETRY_SOON = 5


def failure(exc):
    """The domain error for a driver failure ``exc``, or None for a fault of ours."""
    if isinstance(exc, MaxConnectionsExceeded):
        return StorageBusy()
    cause = exc
    while cause is not None and not isinstance(cause, psycopg.Error):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        if isinstance(exc, (pw.OperationalError, pw.InterfaceError)):
            return _unavailable(str(exc))
        return None
    state = cause.sqlstate or ""
    if state == "53100":  # disk_full
        return StorageFull()
    if state == "25006":  # read_only_sql_transaction: a standby, or default_transaction_read_only
        return StorageReadOnly()
    if state in ("55P03", "40P01", "40001"):  # lock_not_available, deadlock, serialization
        return StorageBusy()
    if state == "57014":  # query_canceled: statement_timeout
        return StorageUnavailable(
            "storage_timeout", "the database did not answer within POSTGRES_STATEMENT_TIMEOUT;"
            " nothing was stored", _RETRY_SOON)
    if state.startswith(("08", "57P", "53")) or isinstance(
            cause, (psycopg.OperationalError, psycopg.InterfaceError)) and not state:
        # Refused, terminated, shutting down, starting up, out of connections or memory.
        return _unavailable(str(cause).strip().splitlines()[0] if str(cause).strip() else state)
    return None


def _unavailable(text):
    return StorageUnavailable("storage_unavailable",
                              f"the database cannot be reached: {text}", _RETRY_SOON)


@contextlib.contextmanager
def storage_errors():
    """Turn PostgreSQL's failures into domain errors; a broken connection leaves the pool."""
    try:
        yield
    except (psycopg.Error, pw.PeeweeException) as exc:
        domain = failure(exc)
        if domain is None:
            raise
        _drop_broken_connection()
        raise domain from exc


def _drop_broken_connection():
    # A terminated server leaves the pooled connection closed or in an unknown state:
    # the next request opens a new one (recovery without a restart).
    if database.is_closed():
        return
    connection = database._state.conn
    if connection is not None and (connection.closed or connection.broken):
        database.close()


@contextlib.contextmanager
def transaction():
    """A read-write transaction on this thread's connection (COMMIT when the block ends)."""
    with storage_errors(), database.atomic():
        yield database.connection()


@contextlib.contextmanager
def write_transaction(lock_timeout, committed=None):
    """A write transaction whose chain head, once locked (chain.lock_head), waits at most
    ``lock_timeout`` seconds for another writer; then ``committed()`` after the commit."""
    asked = time.perf_counter()
    with storage_errors():
        with database.atomic():
            connection = database.connection()
            connection.execute(f"SET LOCAL lock_timeout = {round(lock_timeout * 1000)}")
            locked = time.perf_counter()
            WRITE_LOCK_WAIT.observe(locked - asked)
            try:
                yield connection
            finally:
                WRITE_TRANSACTION.observe(time.perf_counter() - locked)
        if committed is not None:
            committed()
