"""The server's processes use at most two malloc arenas (collector/ops/malloc.py)."""

import ctypes
import http.client
import json
import os
import subprocess
import sys
import threading

import pytest
from server import HOST, PROC, Server

from collector.ops import malloc

HEAP_BYTES = 64 * 1024 * 1024

# Threads that allocate at once, then glibc's own account of its arenas (malloc_info).
COUNT_ARENAS = """
import ctypes, sys, threading
from collector.ops import malloc
if sys.argv[1] == "limited":
    assert malloc.limit_arenas()
start = threading.Barrier(8)
def allocate():
    start.wait()
    kept = [bytes(4096 + i) for i in range(200)]  # beyond pymalloc's sizes: malloc's
    start.wait()
threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fdopen.restype = ctypes.c_void_p
out = libc.fdopen(1, b"w")
libc.malloc_info(0, ctypes.c_void_p(out))
libc.fflush(ctypes.c_void_p(out))
"""


def _arenas(mode):
    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    completed = subprocess.run([sys.executable, "-c", COUNT_ARENAS, mode], env=env,
                               capture_output=True, text=True, timeout=60, check=True)
    return completed.stdout.count("<heap nr=")


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "malloc_info"), reason="not glibc's malloc")
def test_threads_share_two_arenas_once_limited():
    assert _arenas("unlimited") > malloc.ARENAS
    assert _arenas("limited") <= malloc.ARENAS


def test_malloc_arena_max_set_by_the_operator_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")

    assert malloc.limit_arenas() is False


def _heaps(pid):
    """The malloc arenas but the main one in process ``pid``: each is an anonymous mapping of
    64 MiB (glibc's HEAP_MAX_SIZE on 64 bits) at a 64 MiB-aligned address, in adjacent parts."""
    regions = []
    for line in (PROC / str(pid) / "maps").read_text().splitlines():
        fields = line.split()
        if len(fields) == 5:  # no path: anonymous
            regions.append(tuple(int(bound, 16) for bound in fields[0].split("-")))
    heaps = 0
    for index, (start, end) in enumerate(regions):
        if start % HEAP_BYTES == 0:
            for next_start, next_end in regions[index + 1:]:
                if end - start >= HEAP_BYTES or next_start != end:
                    break
                end = next_end
            heaps += end - start == HEAP_BYTES
    return heaps


@pytest.mark.e2e
@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "malloc_info"), reason="not glibc's malloc")
@pytest.mark.skipif(not PROC.exists(), reason="the arenas are counted in /proc/<pid>/maps")
@pytest.mark.parametrize("operator_chose", [None, "8"], ids=["default", "MALLOC_ARENA_MAX=8"])
def test_gunicorn_workers_use_two_arenas_unless_the_operator_chose(tmp_path, operator_chose):
    env = {} if operator_chose is None else {"MALLOC_ARENA_MAX": operator_chose}
    server = Server(tmp_path, tmp_path / "collector.db", env=env)
    if operator_chose is None:
        server.env.pop("MALLOC_ARENA_MAX", None)  # the machine's own, if it has one
    with server:
        record = {"service": "api", "severity": "info", "message": "x" * 3000}

        def post():
            for _ in range(20):
                connection = http.client.HTTPConnection(HOST, server.port, timeout=30)
                connection.request("POST", "/ingest", body=json.dumps([record]),
                                   headers={"Content-Type": "application/json"})
                assert connection.getresponse().status == 201
                connection.close()

        clients = [threading.Thread(target=post) for _ in range(8)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        heaps = [_heaps(pid) for pid in server.worker_pids()]

    assert heaps
    if operator_chose is None:
        assert max(heaps) <= malloc.ARENAS - 1, heaps
    else:  # the request threads got arenas of their own, as glibc's default gives them
        assert max(heaps) > malloc.ARENAS - 1, heaps
