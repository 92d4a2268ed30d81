"""The write-ahead log stays bounded under sustained ingest from several workers, and is
checkpointed off the writers' path."""

import multiprocessing
import os
import re
import subprocess
import sys
import threading
import time

import orjson
import pytest
from helpers import record, request
from server import Server

from collector.storage.sqlite import db as sqlite_database

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


@pytest.mark.e2e
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


def wal_size(db_path):
    try:
        return os.path.getsize(f"{db_path}-wal")
    except FileNotFoundError:
        return 0


def wait_until(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.01)


def large_batch():
    """About 2.5 MiB of write-ahead log once stored."""
    return [record(message=f"event {i} " + "lorem ipsum " * 100) for i in range(1000)]


def checkpoints_ran_in(monkeypatch):
    """The names of the threads WriteLock.checkpoint runs in, from now on."""
    threads = []
    real = sqlite_database.WriteLock.checkpoint

    def checkpoint(self, connection, wait=0.0):
        threads.append(threading.current_thread().name)
        return real(self, connection, wait)

    monkeypatch.setattr(sqlite_database.WriteLock, "checkpoint", checkpoint)
    return threads


def test_a_commit_past_the_checkpoint_size_leaves_the_checkpoint_to_a_thread(
        make_app, db_path, monkeypatch):
    client = make_app(WAL_CHECKPOINT_MB=1, WAL_MAX_MB=64).test_client()
    threads = checkpoints_ran_in(monkeypatch)
    assert client.post("/ingest", json=large_batch()).status_code == 201
    wait_until(lambda: wal_size(db_path) == 0)  # emptied after the answer, by the checkpointer
    assert threads == ["wal-checkpointer"]
    assert client.post("/ingest", json=[record()]).status_code == 201
    time.sleep(0.2)
    assert threads == ["wal-checkpointer"]  # a log under the size asks for none


def test_a_log_past_its_bound_is_checkpointed_by_the_writer_itself(make_app, db_path,
                                                                    monkeypatch):
    client = make_app(WAL_CHECKPOINT_MB=1, WAL_MAX_MB=1).test_client()
    threads = checkpoints_ran_in(monkeypatch)
    assert client.post("/ingest", json=large_batch()).status_code == 201
    assert threads == [threading.current_thread().name]  # back-pressure on the writer
    assert wal_size(db_path) == 0  # emptied before the answer


def test_one_checkpoint_at_a_time(make_app, db_path):
    client = make_app(WAL_CHECKPOINT_MB=64, WAL_MAX_MB=64).test_client()
    assert client.post("/ingest", json=large_batch()).status_code == 201
    assert wal_size(db_path) > 0
    # Another process holds the checkpointers' byte of the lock file, as one checkpointing does.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time;"
         " fd = os.open(sys.argv[1], os.O_RDWR); fcntl.lockf(fd, fcntl.LOCK_EX, 1, 1);"
         " print('held', flush=True); time.sleep(60)", f"{db_path}.write-lock"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        lock = sqlite_database._write_lock
        with sqlite_database.database.connection_context():
            assert lock.checkpoint(sqlite_database.database.connection()) is True
        assert wal_size(db_path) > 0  # left to the other process
    finally:
        holder.kill()
        holder.wait()
    with sqlite_database.database.connection_context():
        connection = sqlite_database.database.connection()
        with lock._checkpointing:  # as when this process's checkpointer thread is at it
            assert lock.checkpoint(connection) is True
        assert wal_size(db_path) > 0
        assert lock.checkpoint(connection) is True
    assert wal_size(db_path) == 0
