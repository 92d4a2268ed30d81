"""How much of SQLite's write-ahead log is still to copy back, read from its wal-index."""

import os
import struct
import threading

PAGE_SIZE = 4096  # SQLite's default, which the collector keeps
HEADER_BYTES = 136  # two copies of the wal-index header, then the checkpoint info
FRAME_HEADER_BYTES = 24  # before each page in the -wal file


class WalIndex:
    """The ``-shm`` file of one database, read beside SQLite (https://www.sqlite.org/walformat.html).

    Its descriptor stays open for the life of the process: closing any descriptor of a file
    drops every POSIX lock the process holds on it, SQLite's own WAL locks included
    (https://www.sqlite.org/howtocorrupt.html, 2.2). It is closed only once the file was
    replaced (the last connection to close the database removes it, so no connection of this
    process holds a lock on the old one) or by ``close`` once the process's connections to
    the database are closed. A forked child opens its own and leaves the inherited one alone.
    """

    def __init__(self, database_path):
        self.path = f"{database_path}-shm"
        self._descriptor = None
        self._inode = None
        self._pid = None
        # One thread at a time opens, reads and closes: a descriptor closed twice could be
        # one SQLite opened meanwhile.
        self._lock = threading.Lock()

    def log_bytes(self):
        """The log's length since it was last rewound, in bytes, while some of it is still to
        copy into the database; 0 once all of it is (the next commit rewinds it).

        The wal-index counts the frames in the log (``mxFrame``, at byte 16 of its header)
        and those copied back (``nBackfill``, at byte 96), in the machine's byte order; each
        frame is a page and its header. Read without SQLite's locks, a figure may be a
        commit old, which is all a trigger needs.
        """
        with self._lock:
            header = self._read_header()
        if len(header) < HEADER_BYTES:
            return 0  # no connection has opened the database in WAL mode yet
        (frames,) = struct.unpack_from("=I", header, 16)
        (copied,) = struct.unpack_from("=I", header, 96)
        return 0 if copied >= frames else frames * (PAGE_SIZE + FRAME_HEADER_BYTES)

    def close(self):
        """Close the descriptor: only once no connection of this process has the database open."""
        with self._lock:
            self._close()

    def _close(self):
        if self._descriptor is not None and self._pid == os.getpid():
            os.close(self._descriptor)
        self._descriptor = None

    def _read_header(self):
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            return b""
        if self._pid != os.getpid():
            self._descriptor = None  # the parent's: closing it would drop this process's locks
        if self._descriptor is None or inode != self._inode:
            self._close()
            try:
                self._descriptor = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return b""
            self._inode = os.fstat(self._descriptor).st_ino
            self._pid = os.getpid()
        return os.pread(self._descriptor, HEADER_BYTES, 0)
