"""The write-ahead log stays bounded under sustained ingest from several workers."""

import multiprocessing
import os
import re
import threading
import time

import orjson
import pytest
from helpers import request
from server import Server

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
SECONDS = 12


def keep_posting(port, client, deadline, results):
    """Post 1,000-record batches, stamped now, until ``deadline``; report how many were stored."""
    records = [{"service": f"soak-{client}-{i % 5}", "severity": "INFO",
                "message": f"request {i} served in {i % 97} ms for user {i % 1013}",
                "trace_id": os.urandom(16).hex(), "attributes": {"n": i}} for i in range(1000)]
    body = orjson.dumps(records)
    headers = {"Content-Type": "application/json", "Prefer": "return=minimal"}
    stored = 0
    while time.monotonic() < deadline:
        status, _ = request(port, "POST", "/ingest", body, headers, timeout=60)
        assert status == 201, status
        stored += 1000
    results.put(stored)


def test_sustained_ingest_keeps_the_wal_under_its_bound(tmp_path):
    database = tmp_path / "collector.db"
    env = {"WORKERS": "2", "WAL_CHECKPOINT_MB": "2", "WAL_MAX_MB": "6"}
    with Server(tmp_path, database, env=env) as server:
        largest, stop = [0], threading.Event()

        def watch():
            while not stop.is_set():
                try:
                    largest[0] = max(largest[0], os.path.getsize(f"{database}-wal"))
                except FileNotFoundError:
                    pass
                time.sleep(0.02)

        watcher = threading.Thread(target=watch)
        watcher.start()
        deadline = time.monotonic() + SECONDS
        results = multiprocessing.Queue()
        clients = [multiprocessing.Process(target=keep_posting,
                                           args=(server.port, c, deadline, results))
                   for c in range(4)]
        for client in clients:
            client.start()
        stored = sum(results.get(timeout=SECONDS + 120) for _ in clients)
        for client in clients:
            client.join(timeout=30)
        stop.set()
        watcher.join()
        _, metrics = request(server.port, "GET", "/metrics")
    emptied = re.search(rb'collector_wal_checkpoints_seconds_count\{result="emptied"\} (\S+)',
                        metrics)
    print(f"\n{stored:,} records in {SECONDS} s; WAL at most {largest[0] / MIB:.1f} MiB;"
          f" {float(emptied[1]) if emptied else 0:.0f} checkpoints emptied it")
    assert stored >= 20_000  # enough to have grown an unbounded log well past the bound
    # The bound: WAL_MAX_MB, plus the frames of the one group committed past it.
    assert largest[0] < 10 * MIB
    assert emptied and float(emptied[1]) > 0
