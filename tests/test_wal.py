"""The write-ahead log stays bounded under sustained ingest from several workers, and is
checkpointed off the writers' path."""

import multiprocessing
import os
import re
import shutil
import sqlite3
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


def logged_frames(db_path):
    """The frames in the log since it was last rewound, as SQLite itself counts them (its
    PASSIVE checkpoint copies them too)."""
    connection = sqlite3.connect(db_path)
    try:
        _, logged, _ = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        connection.close()
    return logged


def records_in_database_file(db_path, tmp_path):
    """How many records the database file holds by itself, without its log."""
    alone = tmp_path / "alone.db"
    shutil.copyfile(db_path, alone)
    connection = sqlite3.connect(alone)
    try:
        tables = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if ("log_record",) not in tables.fetchall():
            return 0  # the migrations themselves are still in the log
        return connection.execute("SELECT count(*) FROM log_record").fetchone()[0]
    finally:
        connection.close()
        for name in (alone, f"{alone}-wal", f"{alone}-shm"):
            if os.path.exists(name):
                os.remove(name)


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
        make_app, db_path, tmp_path, monkeypatch):
    client = make_app(WAL_CHECKPOINT_MB=1, WAL_MAX_MB=64).test_client()
    threads = checkpoints_ran_in(monkeypatch)
    assert client.post("/ingest", json=large_batch()).status_code == 201
    lock = sqlite_database._write_lock
    wait_until(lambda: lock.wal_index.log_bytes() == 0)  # copied after the answer, by its thread
    assert records_in_database_file(db_path, tmp_path) == 1000
    assert threads == ["wal-checkpointer"]
    assert client.post("/ingest", json=[record()]).status_code == 201
    time.sleep(0.2)
    assert threads == ["wal-checkpointer"]  # a log under the size asks for none


def test_a_log_past_its_bound_is_checkpointed_by_the_writer_itself(make_app, db_path, tmp_path,
                                                                    monkeypatch):
    client = make_app(WAL_CHECKPOINT_MB=1, WAL_MAX_MB=1).test_client()
    threads = checkpoints_ran_in(monkeypatch)
    assert client.post("/ingest", json=large_batch()).status_code == 201
    assert threads == [threading.current_thread().name]  # back-pressure on the writer
    assert records_in_database_file(db_path, tmp_path) == 1000  # copied before the answer


def test_one_checkpoint_at_a_time(make_app, db_path, tmp_path):
    client = make_app(WAL_CHECKPOINT_MB=64, WAL_MAX_MB=64).test_client()
    assert client.post("/ingest", json=large_batch()).status_code == 201
    lock = sqlite_database._write_lock
    assert lock.wal_index.log_bytes() > 0
    # Another process holds the checkpointers' byte of the lock file, as one checkpointing does.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time;"
         " fd = os.open(sys.argv[1], os.O_RDWR); fcntl.lockf(fd, fcntl.LOCK_EX, 1, 1);"
         " print('held', flush=True); time.sleep(60)", f"{db_path}.write-lock"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with sqlite_database.database.connection_context():
            assert lock.checkpoint(sqlite_database.database.connection()) is True
        assert lock.wal_index.log_bytes() > 0  # left to the other process
        assert records_in_database_file(db_path, tmp_path) == 0
    finally:
        holder.kill()
        holder.wait()
    with sqlite_database.database.connection_context():
        connection = sqlite_database.database.connection()
        with lock._checkpointing:  # as when this process's checkpointer thread is at it
            assert lock.checkpoint(connection) is True
        assert lock.wal_index.log_bytes() > 0
        assert lock.checkpoint(connection) is True
    assert lock.wal_index.log_bytes() == 0
    assert records_in_database_file(db_path, tmp_path) == 1000


def test_the_log_is_measured_by_its_frames_and_written_over_once_copied(make_app, db_path):
    client = make_app(WAL_CHECKPOINT_MB=64, WAL_MAX_MB=64).test_client()
    lock = sqlite_database._write_lock
    assert client.post("/ingest", json=large_batch()).status_code == 201
    logged = lock.wal_index.log_bytes()
    frames = logged_frames(db_path)  # and copies them
    assert frames > 400  # some 2 MiB
    assert logged == frames * (4096 + 24)
    assert lock.wal_index.log_bytes() == 0  # all copied: the next commit rewinds the log
    high_water = wal_size(db_path)
    assert high_water >= logged
    for _ in range(3):
        assert client.post("/ingest", json=large_batch()).status_code == 201
        with sqlite_database.database.connection_context():
            assert lock.checkpoint(sqlite_database.database.connection()) is True
        assert lock.wal_index.log_bytes() == 0
    # Each batch wrote the log over from its start (its full-text merges write more pages
    # than the first batch did): appended, the four batches would take four times the first.
    assert wal_size(db_path) < 2 * high_water
    assert client.post("/ingest", json=[record()]).status_code == 201
    assert 0 < lock.wal_index.log_bytes() < 64 * 1024


def restart_checkpoint_from_another_process(db_path):
    """Whether another process's RESTART checkpoint is kept busy (1) or gets through (0)."""
    script = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]);"
              " c.execute('PRAGMA busy_timeout = 0');"
              " print(c.execute('PRAGMA wal_checkpoint(RESTART)').fetchone()[0])")
    done = subprocess.run([sys.executable, "-c", script, str(db_path)], capture_output=True,
                          text=True, timeout=30, check=True)
    return int(done.stdout)


def test_reading_the_wal_index_leaves_sqlites_locks_on_it_in_place(make_app, db_path):
    client = make_app(WAL_CHECKPOINT_MB=64, WAL_MAX_MB=64).test_client()
    assert client.post("/ingest", json=large_batch()).status_code == 201
    # A reader of this process holds its snapshot with a lock on a byte of the -shm file.
    reader = sqlite3.connect(db_path)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM log_record").fetchone() == (1000,)
        for _ in range(3):  # each commit reads the wal-index
            assert client.post("/ingest", json=[record()]).status_code == 201
        assert sqlite_database._write_lock.wal_index.log_bytes() > 0
        # Had a descriptor of the file been closed, the reader's lock would be gone with it,
        # and another process could rewind the log under the reader's snapshot.
        assert restart_checkpoint_from_another_process(db_path) == 1
        assert reader.execute("SELECT count(*) FROM log_record").fetchone() == (1000,)
    finally:
        reader.close()
    assert restart_checkpoint_from_another_process(db_path) == 0


def test_the_wal_index_is_read_anew_once_sqlite_replaced_it(make_app, db_path):
    client = make_app(WAL_CHECKPOINT_MB=64, WAL_MAX_MB=64).test_client()
    index = sqlite_database._write_lock.wal_index
    assert client.post("/ingest", json=large_batch()).status_code == 201
    assert index.log_bytes() > 1 * MIB
    sqlite_database.database.close_all()  # the last connection removes the -wal and -shm files
    assert not os.path.exists(f"{db_path}-shm")
    assert index.log_bytes() == 0
    assert client.post("/ingest", json=[record()]).status_code == 201
    assert 0 < index.log_bytes() < 256 * 1024  # the new log: one record's commit
    assert index.log_bytes() == logged_frames(db_path) * (4096 + 24)


def test_a_forked_child_leaves_the_descriptor_it_inherited_open(make_app, db_path):
    client = make_app(WAL_CHECKPOINT_MB=64, WAL_MAX_MB=64).test_client()
    index = sqlite_database._write_lock.wal_index
    assert client.post("/ingest", json=large_batch()).status_code == 201
    assert index.log_bytes() > 0  # the parent's descriptor, open
    child = os.fork()
    if child == 0:  # closing the inherited descriptor would drop the child's own locks
        outcome = 1
        try:
            reader = sqlite3.connect(db_path)
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM log_record").fetchone()
            outcome = 0 if index.log_bytes() > 0 else 2
            if restart_checkpoint_from_another_process(db_path) != 1:
                outcome = 3
        finally:
            os._exit(outcome)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
