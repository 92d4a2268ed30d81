"""The prune lock of a SQLite database: a lock file beside it, ``<database>.prune-lock``.

A prune runs only while its process holds a non-blocking ``flock`` on that file,
so two prunes never overlap, whichever processes they run in. Under the lock the
file holds the schedule's state (JSON): when the last prune started and finished.
A process that dies mid-prune loses the lock with its file descriptor.
"""

import contextlib
import fcntl
import json
import os

from ..base import PruneSchedule


def lock_path(database_path):
    """The lock file beside the database."""
    return f"{database_path}.prune-lock"


@contextlib.contextmanager
def held(database_path):
    """Hold the prune lock for the block, yielding the schedule; None when another holds it."""
    with exclusive(lock_path(database_path)) as lock_file:
        yield None if lock_file is None else _FileSchedule(lock_file)


@contextlib.contextmanager
def exclusive(path):
    """Hold a non-blocking ``flock`` on the file ``path`` for the block, yielding the open
    file; None when another process holds it (the miner's lock is one too)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    # Closing the file releases the lock, as the death of the process does.
    with os.fdopen(fd, "r+", encoding="utf-8") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield lock_file


def peek(database_path):
    """The schedule's state read without the lock: good enough to schedule a wake-up by."""
    try:
        with open(lock_path(database_path), encoding="utf-8") as lock_file:
            return _parse(lock_file.read())
    except OSError:
        return {}


class _FileSchedule(PruneSchedule):
    def __init__(self, lock_file):
        self.lock_file = lock_file

    def read(self):
        self.lock_file.seek(0)
        return _parse(self.lock_file.read())

    def write(self, state):
        self.lock_file.seek(0)
        self.lock_file.truncate()
        self.lock_file.write(json.dumps(state))
        self.lock_file.flush()


def _parse(text):
    try:
        state = json.loads(text)
    except ValueError:  # empty (never pruned) or torn by a reader without the lock
        return {}
    return state if isinstance(state, dict) else {}
