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
from .wal_index import PAGE_SIZE, WalIndex

# Initialised by ``configure``; no connection is opened before one is needed,
# so nothing crosses gunicorn's fork. The pool holds at most one connection per
# gunicorn thread, so it needs no cap.
database = PooledSqliteDatabase(None, max_connections=None)
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
        # checkpoint after each commit stays only as a net, at twice the bound: at the
        # bound itself it would copy the log first and leave the writer nothing to do.
        "wal_autocheckpoint": 2 * config["WAL_MAX_MB"] * MIB // PAGE_SIZE,
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
        _write_lock.wal_index.close()  # no connection of the process has the database open
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
    BEGIN IMMEDIATE until after the commit; once a commit leaves the log past its
    trigger, the process's checkpointer thread copies it back while writers go on,
    then takes the lock to copy the rest and rewind the log with no writer in
    between. A waiting writer is let in within a millisecond of the lock coming
    free, where SQLite's busy handler polls in sleeps of up to 100 ms.
    """

    # Between tries for the file lock, as another process holds it.
    FIRST_WAIT, LONGEST_WAIT = 0.0001, 0.001
    # How long one checkpoint attempt waits for readers to leave the log.
    CHECKPOINT_BUSY_MS = 50
    # Copies without the lock, at most; the frames left to copy with it, at most.
    PASSIVE_PASSES, LOCKED_FRAMES = 3, 64
    # After readers kept the log from emptying, the checkpointer waits this long (s) to retry.
    CHECKPOINT_RETRY = 0.1

    def __init__(self, path, config):
        self.path = f"{path}.write-lock"
        self.wal_index = WalIndex(path)
        self.timeout = config["WRITE_LOCK_TIMEOUT"]
        self.checkpoint_bytes = config["WAL_CHECKPOINT_MB"] * MIB
        self.max_bytes = config["WAL_MAX_MB"] * MIB
        self.checkpoint_wait = config["WAL_CHECKPOINT_WAIT"]
        self.busy_timeout = round(config["WRITE_LOCK_TIMEOUT"] * 1000)
        self._thread_lock = threading.Lock()
        self._file = None
        self._pid = None  # the process that opened _file: a forked child opens its own
        self._checkpointer_pid = None  # the process whose checkpointer thread runs
        # A process's checkpoints, one at a time: the byte lock is the process's, not a thread's.
        self._checkpointing = threading.Lock()
        self._checkpoint_due = None

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

    def _open_file(self):
        if self._pid != os.getpid():
            try:
                self._file = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except PermissionError:  # a directory the database cannot be written in either
                raise StorageReadOnly() from None
            self._pid = os.getpid()

    def _lock_file(self, deadline):
        self._open_file()
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

    def after_commit(self, connection):
        """Checkpoint the log when due: in this process's checkpointer thread, so the writer
        goes on at once; in the writer itself past WAL_MAX_MB (back-pressure on its worker)."""
        size = self.wal_index.log_bytes()
        if size < self.checkpoint_bytes:
            return
        if size >= self.max_bytes:
            self.checkpoint(connection, wait=self.checkpoint_wait)
            return
        if self._checkpointer_pid != os.getpid():  # started lazily: threads do not cross a fork
            self._checkpointer_pid = os.getpid()
            self._checkpoint_due = threading.Event()
            threading.Thread(target=self._checkpoint_when_due, name="wal-checkpointer",
                             daemon=True).start()
        self._checkpoint_due.set()

    def _checkpoint_when_due(self):
        while True:
            self._checkpoint_due.wait()
            self._checkpoint_due.clear()
            if self.wal_index.log_bytes() < self.checkpoint_bytes:  # another process's was first
                continue
            try:
                with database.connection_context():
                    rewound = self.checkpoint(database.connection())
            except Exception:  # noqa: BLE001 (the next commit asks again; a writer is never hurt)
                rewound = False
            if not rewound:  # readers kept the log: no retry at every commit meanwhile
                time.sleep(self.CHECKPOINT_RETRY)

    def checkpoint(self, connection, wait=0.0):
        """Copy all of the log into the database, for the next commit to rewind it; True when
        done (or another process is at it). Called without the lock held.

        One process checkpoints at a time (a lock on a byte of the lock file; the others
        would only wait behind it). The bulk is copied first (PASSIVE) while writers go on;
        then, with the lock, RESTART copies what they added meanwhile and waits until no reader
        needs the log, so the next commit rewinds it and writes it from its start: only readers
        can stand in its way, and one try waits CHECKPOINT_BUSY_MS for them. With ``wait``
        (past WAL_MAX_MB) the checkpoint keeps trying for that many seconds.

        RESTART and not TRUNCATE: cutting the file to nothing, to grow it again at once,
        held the writers out 20-40 ms a time on a file system that discards freed blocks,
        where rewinding takes 2-6 ms; and a log written over costs its commits less than one
        that grows. The file stays at the largest size the log reached (see WAL_MAX_MB), and
        SQLite's ``journal_size_limit`` cuts it back to WAL_MAX_MB when it grew past.
        """
        started = time.perf_counter()
        give_up = time.monotonic() + wait
        if not self._checkpointing.acquire(timeout=wait):
            return True  # this process's other checkpointer is at it
        try:
            return self._checkpoint(connection, started, give_up)
        finally:
            self._checkpointing.release()

    def _checkpoint(self, connection, started, give_up):
        if not self._lock_checkpoints(give_up):
            return True
        try:
            for _ in range(self.PASSIVE_PASSES):
                _, logged, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                if logged - copied <= self.LOCKED_FRAMES:
                    break
            busy = True
            try:
                with self.held():
                    connection.execute(f"PRAGMA busy_timeout = {self.CHECKPOINT_BUSY_MS}")
                    try:
                        while True:
                            busy, _, _ = connection.execute(
                                "PRAGMA wal_checkpoint(RESTART)").fetchone()
                            if not busy or time.monotonic() >= give_up:
                                break
                            time.sleep(0.005)
                    finally:
                        connection.execute(f"PRAGMA busy_timeout = {self.busy_timeout}")
            except StorageBusy:  # the writes are committed: the next commit tries again
                pass
        finally:
            fcntl.lockf(self._file, fcntl.LOCK_UN, 1, 1)
        WAL_CHECKPOINTS.labels("busy" if busy else "emptied").observe(
            time.perf_counter() - started)
        return not busy

    def _lock_checkpoints(self, give_up):
        self._open_file()
        while True:
            try:
                fcntl.lockf(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 1)
                return True
            except OSError:  # another process checkpoints
                if time.monotonic() >= give_up:
                    return False
                time.sleep(0.005)


_write_lock = None  # the WriteLock of the configured database


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
        _write_lock.after_commit(connection)


@contextlib.contextmanager
def writers_held():
    """Keep every writer out for the block (a maintenance task that checkpoints itself)."""
    with _write_lock.held():
        yield
