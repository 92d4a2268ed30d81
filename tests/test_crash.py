"""Crashes and deploys under sustained ingest: a 2xx always means the whole batch is stored.

Real gunicorn, real clients; workers and then the master are killed with SIGKILL at random
moments, or the master gets SIGTERM as in a deploy. Afterwards every acknowledged batch is
fully present, no batch is partly present, SQLite's integrity check passes, the audit chain is
intact and ingest resumes.
"""

import http.client
import multiprocessing
import os
import random
import signal
import sqlite3
import time

import orjson
import pytest
from helpers import request
from server import Server

from collector.storage.sqlite import chain as sqlite_chain

pytestmark = pytest.mark.e2e

BATCH = 50


def keep_posting(port, client, stop, results):
    """Post numbered batches until ``stop`` is set; report the acknowledged batches' numbers
    and how many requests got no answer."""
    number, acknowledged, unanswered = 0, [], 0
    connection = None
    while not stop.is_set():
        number += 1
        batch = [{"service": f"crash-{client}", "severity": "INFO", "message": f"record {i}",
                  "attributes": {"batch": f"{client}-{number}"}} for i in range(BATCH)]
        try:
            connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("POST", "/ingest", orjson.dumps(batch),
                               {"Content-Type": "application/json", "Prefer": "return=minimal"})
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            connection = None  # the worker died under us: this batch is unacknowledged
            unanswered += 1
            time.sleep(0.05)
            continue
        if 200 <= response.status < 300:
            acknowledged.append(f"{client}-{number}")
        elif response.status >= 500 and response.status != 503:
            acknowledged.append(f"error {response.status}")
    results.put((acknowledged, unanswered))


def start_clients(port, count=3):
    stop = multiprocessing.Event()
    results = multiprocessing.Queue()
    clients = [multiprocessing.Process(target=keep_posting, args=(port, c, stop, results))
               for c in range(count)]
    for client in clients:
        client.start()
    return stop, results, clients


def stop_clients(stop, results, clients):
    """Stop the clients; every batch they had acknowledged."""
    stop.set()
    reports = [results.get(timeout=30) for _ in clients]
    for client in clients:
        client.join(timeout=30)
    batches = [batch for acknowledged, _ in reports for batch in acknowledged]
    print(f"\n{len(batches) + sum(n for _, n in reports)} requests, {len(batches)} acknowledged"
          f" ({len(batches) * BATCH} records), {sum(n for _, n in reports)} unanswered", end="; ")
    return batches


def stored_batches(db_path):
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        chain = sqlite_chain.verify(db)  # one chain, though two workers wrote it and died
        assert chain.intact, chain.summary()
        return dict(db.execute(
            "SELECT json_extract(attributes, '$.batch'), count(*) FROM log_record GROUP BY 1"))


def wait_for_exit(pids, timeout=10):
    deadline = time.monotonic() + timeout
    while any(os.path.exists(f"/proc/{pid}") for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)


def assert_resumes(tmp_path, db_path):
    with Server(tmp_path, db_path, env={"WORKERS": "2"}) as server:
        status, _ = request(server.port, "POST", "/ingest", b'{"service": "after",'
                            b' "severity": "INFO", "message": "back"}',
                            {"Content-Type": "application/json"}, timeout=10)
        assert status == 201


def test_sigkill_of_workers_and_master_loses_no_acknowledged_batch(tmp_path):
    db_path = tmp_path / "collector.db"
    rng = random.Random(7)
    server = Server(tmp_path, db_path, env={"WORKERS": "2"}).__enter__()
    stop, results, clients = start_clients(server.port)
    kills = 0
    try:
        for _ in range(4):
            time.sleep(rng.uniform(0.3, 1.2))
            workers = server.worker_pids()
            if workers:
                os.kill(rng.choice(workers), signal.SIGKILL)
                kills += 1
        time.sleep(rng.uniform(0.3, 1.0))
        workers = server.worker_pids()
        server.process.kill()  # the master, with no chance to clean up
        server.process.wait()
        kills += 1
        for pid in workers:  # and, as in a crash of the machine, its workers with it
            os.kill(pid, signal.SIGKILL)
        wait_for_exit(workers)
    finally:
        batches = stop_clients(stop, results, clients)
        server.stop()

    assert not [b for b in batches if b.startswith("error")], "no 5xx other than 503"
    assert len(batches) > 20 and kills == 5
    stored = stored_batches(db_path)
    assert all(stored.get(batch) == BATCH for batch in batches), "an acknowledged batch is missing"
    assert set(stored.values()) == {BATCH}, "a batch is partly stored"
    print(f"{sum(stored.values())} records stored, every acknowledged one found; {kills} kills")
    assert_resumes(tmp_path, db_path)


def test_sigterm_lets_in_flight_batches_finish(tmp_path):
    db_path = tmp_path / "collector.db"
    server = Server(tmp_path, db_path, env={"WORKERS": "2"}).__enter__()
    stop, results, clients = start_clients(server.port)
    try:
        time.sleep(1.5)
        server.process.send_signal(signal.SIGTERM)  # a deploy
        assert server.process.wait(timeout=40) == 0
    finally:
        batches = stop_clients(stop, results, clients)
        server.stop()

    assert batches and not [b for b in batches if b.startswith("error")]
    stored = stored_batches(db_path)
    assert all(stored.get(batch) == BATCH for batch in batches)
    assert set(stored.values()) == {BATCH}
    print(f"{sum(stored.values())} records stored after SIGTERM, every acknowledged one found")
    assert_resumes(tmp_path, db_path)
