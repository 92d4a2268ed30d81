"""glibc's malloc arenas in the server's processes.

glibc gives threads malloc arenas of their own, up to eight per core, and memory freed in
one arena is not reused for another's: a worker whose request threads lead batches in turn
keeps each thread's peak. Two arenas are enough for threads that
run one at a time under the GIL.
"""

import ctypes
import os

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2


def limit_arenas(arenas=ARENAS):
    """Let malloc use at most ``arenas`` arenas in this process and the ones it forks, unless
    MALLOC_ARENA_MAX chose already. False where nothing was set (that variable, or not glibc)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): no such arenas
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))
