"""The SQLite database: one deferred peewee object, its pragmas, connections, write transactions,
the write-ahead log kept bounded, and SQLite's failures in the domain's words."""

import contextlib
import fcntl
import os
import sqlite3
import threading
import time

import peewee as pw
from playhouse.pool import PooledSqliteDatabase

from ...errors import StorageBusy, StorageFull, StorageReadOnly, StorageUnavailable
from ...metrics import WAL_CHECKPOINTS, WRITE_LOCK_WAIT, WRITE_TRANSACTION

# Initialised by ``configure``; no connection is opened before one is needed,
# so nothing crosses gunicorn's fork. The pool holds at most one connection per
# gunicorn thread, so it needs no cap.
database = PooledSqliteDatabase(None, max_connections=None)
PAGE_SIZE = 4096  # SQLite's default, which the collector keeps
MIB = 1024 * 1024


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
        # The writers checkpoint the log themselves (see WriteLock); SQLite's own
        # checkpoint after each commit stays only as a net, past the bound.
        "wal_autocheckpoint": config["WAL_MAX_MB"] * MIB // PAGE_SIZE,
        "journal_size_limit": config["WAL_MAX_MB"] * MIB,
    }
    if config["SQLITE_MAX_SIZE_MB"]:
        # A size cap: past it, writes fail as they would on a full disk.
        values["max_page_count"] = config["SQLITE_MAX_SIZE_MB"] * (1024 * 1024 // PAGE_SIZE)
    return values


def configure(path, config):
    """Point the shared database object, and its writers' lock, at the SQLite file ``path``."""
    global _write_lock
    if not database.deferred:  # configured before (tests build many stores)
        database.close_all()
    # Pooled connections move between a worker's threads.
    database.init(path, pragmas=pragmas(config), check_same_thread=False)
    _write_lock = WriteLock(path, config)
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


class WriteLock:
    """The writers' lock of one database, across every process and thread that writes it.

    SQLite lets one writer in at a time, but with several processes its own
    checkpoint after a commit races the next writer, which takes the write lock
    the moment the commit releases it: the log is then never fully copied back
    when a writer starts, so SQLite never rewinds it, and it grows without bound
    under sustained ingest (3 GB in 3 minutes, measured). Writers hold this lock
    (a thread lock, then an ``flock`` on ``<database>.write-lock``) from before
    BEGIN IMMEDIATE until after the commit; a writer that leaves the log past its
    trigger copies it back while others go on writing, then takes the lock again
    to copy the rest and empty the log with no writer in between. The lock also
    hands over at once when released, where SQLite's busy handler polls in sleeps
    of up to 100 ms.
    """

    # Between tries for the file lock, as another process holds it.
    FIRST_WAIT, LONGEST_WAIT = 0.0005, 0.005
    # How long one checkpoint attempt waits for readers to leave the log.
    CHECKPOINT_BUSY_MS = 50

    def __init__(self, path, config):
        self.path = f"{path}.write-lock"
        self.wal_path = f"{path}-wal"
        self.timeout = config["WRITE_LOCK_TIMEOUT"]
        self.checkpoint_bytes = config["WAL_CHECKPOINT_MB"] * MIB
        self.max_bytes = config["WAL_MAX_MB"] * MIB
        self.checkpoint_wait = config["WAL_CHECKPOINT_WAIT"]
        self.busy_timeout = round(config["WRITE_LOCK_TIMEOUT"] * 1000)
        self._thread_lock = threading.Lock()
        self._file = None
        self._pid = None  # the process that opened _file: a forked child opens its own

    @contextlib.contextmanager
    def held(self):
        """Hold the lock for the block; StorageBusy past WRITE_LOCK_TIMEOUT."""
        deadline = time.monotonic() + self.timeout
        if not self._thread_lock.acquire(timeout=self.timeout):
            raise StorageBusy()
        try:
            self._lock_file(deadline)
            try:
                yield
            finally:
                fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _lock_file(self, deadline):
        if self._pid != os.getpid():
            try:
                self._file = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except PermissionError:  # a directory the database cannot be written in either
                raise StorageReadOnly() from None
            self._pid = os.getpid()
        wait = self.FIRST_WAIT
        while True:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() + wait > deadline:
                    raise StorageBusy() from None
                time.sleep(wait)
                wait = min(wait * 2, self.LONGEST_WAIT)

    def checkpoint_due(self):
        """Whether the log has grown past the size that calls for a checkpoint."""
        return _file_size(self.wal_path) >= self.checkpoint_bytes

    def checkpoint(self, connection):
        """Copy the log into the database and empty it; called without the lock held.

        The bulk is copied first (PASSIVE) while other writers go on; then, with
        the lock, TRUNCATE copies what they added meanwhile and empties the log:
        only readers can stand in its way, and one try waits CHECKPOINT_BUSY_MS
        for them. Past WAL_MAX_MB the writer keeps trying for WAL_CHECKPOINT_WAIT
        seconds (back-pressure on its own worker) before going on.
        """
        started = time.perf_counter()
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        busy = True
        try:
            with self.held():
                size = _file_size(self.wal_path)
                give_up = time.monotonic() + (self.checkpoint_wait if size >= self.max_bytes
                                              else 0)
                connection.execute(f"PRAGMA busy_timeout = {self.CHECKPOINT_BUSY_MS}")
                try:
                    while True:
                        busy, _, _ = connection.execute(
                            "PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                        if not busy or time.monotonic() >= give_up:
                            break
                        time.sleep(0.005)
                finally:
                    connection.execute(f"PRAGMA busy_timeout = {self.busy_timeout}")
        except StorageBusy:  # the writes are committed: the next commit tries again
            pass
        WAL_CHECKPOINTS.labels("busy" if busy else "emptied").observe(
            time.perf_counter() - started)


_write_lock = None  # the WriteLock of the configured database


def _file_size(path):
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


@contextlib.contextmanager
def write_transaction(committed=None):
    """A write transaction under the writers' lock, taking SQLite's write lock up front.

    Writers queue on the WriteLock for up to WRITE_LOCK_TIMEOUT seconds; past
    that the write raises StorageBusy instead of failing late with "database is
    locked". After the commit, ``committed()`` is called, then the log is
    checkpointed when due (see WriteLock.checkpoint). A full disk or a
    read-only file rolls the transaction back and raises StorageFull or
    StorageReadOnly.
    """
    asked = time.perf_counter()
    with storage_errors():
        with _write_lock.held():
            connection = database.connection()
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
            if committed is not None:
                committed()
            due = _write_lock.checkpoint_due()
        if due:
            _write_lock.checkpoint(connection)


@contextlib.contextmanager
def writers_held():
    """Keep every writer out for the block (a maintenance task that checkpoints itself)."""
    with _write_lock.held():
        yield
