"""The database's files on disk: created readable by their owner only, and checked for it.

SQLite gives the -wal and -shm files the permissions of the database file, so a database
created here keeps its side files private too.
"""

import os
import stat
from pathlib import Path

PRIVATE_FILE, PRIVATE_DIRECTORY = 0o600, 0o700


def private_directory(path):
    """Create the directory ``path`` (and its parents) for its owner only, unless it exists."""
    os.makedirs(path, mode=PRIVATE_DIRECTORY, exist_ok=True)


def private_file(path):
    """Create the empty file ``path``, readable and writable by its owner only, unless it exists.

    Its directory is created too, for its owner only.
    """
    private_directory(os.path.dirname(os.path.abspath(path)))
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE))


def exposure(*paths):
    """A warning for each of ``paths`` (and their directory) that other users may read."""
    warnings = []
    directories = {Path(path).resolve().parent for path in paths}
    for path in [*sorted(directories), *map(Path, paths)]:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o004:
            fix = PRIVATE_DIRECTORY if path.is_dir() else PRIVATE_FILE
            warnings.append(f"{path} is readable by every user (mode {mode:04o});"
                            f" `chmod {fix:o} {path}` keeps the logs to the collector's user")
    return warnings
