"""End to end: real gunicorn workers, concurrent clients, every acknowledged record stored once."""

import http.client
import multiprocessing
import random
import socket
import sqlite3
import threading
import time

import orjson
import pytest
from helpers import request
from server import Server

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path):
    """gunicorn started as `make run` starts it, with two workers, on a fresh database."""
    with Server(tmp_path, tmp_path / "collector.db", env={"WORKERS": "2"}) as running:
        yield running.port, tmp_path / "collector.db"


def post_batches(port, client, batches, results):
    """One client process: post ``batches`` batches and report the markers acknowledged."""
    rng = random.Random(client)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    acknowledged, statuses = [], []
    for batch in range(batches):
        markers = [f"{client}-{batch}-{i}" for i in range(rng.choice((1, 5, 50, 400)))]
        records = [
            {"service": f"svc-{client}", "severity": rng.choice(("INFO", "warn", "Error")),
             "message": f"event {marker}", "attributes": {"marker": marker}}
            for marker in markers
        ]
        ndjson = rng.random() < 0.5
        body = (b"\n".join(map(orjson.dumps, records)) if ndjson else orjson.dumps(records))
        status, data = request(
            port, "POST", "/ingest", body,
            {"Content-Type": "application/x-ndjson" if ndjson else "application/json",
             "Prefer": "return=minimal"},
            connection,
        )
        statuses.append(status)
        if 200 <= status < 300:
            assert orjson.loads(data)["accepted"] == len(markers)
            acknowledged.extend(markers)
    connection.close()
    results.put((acknowledged, statuses))


def test_concurrent_clients_every_acknowledged_record_stored_exactly_once(server):
    port, db_path = server
    clients, batches = 4, 40
    results = multiprocessing.Queue()
    processes = [
        multiprocessing.Process(target=post_batches, args=(port, c, batches, results))
        for c in range(clients)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    acknowledged = [marker for markers, _ in outcomes for marker in markers]
    statuses = [status for _, batch_statuses in outcomes for status in batch_statuses]
    assert len(statuses) == clients * batches
    assert not [s for s in statuses if s >= 500], "no answer may be a 5xx"
    assert all(s == 201 for s in statuses)

    with sqlite3.connect(db_path) as db:
        stored = [row[0] for row in db.execute(
            "SELECT json_extract(attributes, '$.marker') FROM log_record")]
        ids = [row[0] for row in db.execute("SELECT id FROM log_record ORDER BY id")]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert len(stored) == len(set(stored)), "a record was stored twice"
    assert sorted(stored) == sorted(acknowledged)
    assert ids == list(range(1, len(ids) + 1))


def test_errors_from_real_gunicorn_are_json(server):
    port, _ = server
    for method, path, body, headers, status in [
        ("GET", "/nowhere", None, {}, 404),
        ("DELETE", "/ingest", None, {}, 405),
        ("POST", "/ingest", b"{not json", {"Content-Type": "application/json"}, 400),
        ("POST", "/ingest", b"[]", {"Content-Type": "text/csv"}, 415),
    ]:
        got, data = request(port, method, path, body, headers)
        assert got == status, (path, data[:200])
        assert orjson.loads(data)["error"]


def test_oversized_body_is_refused_before_it_is_read(server):
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 6291456\r\n\r\n[")
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 413
        assert orjson.loads(response.read())["error"] == "payload_too_large"


def follow_everything(port, until_count, seen, deadline):
    """A `tail -f` client: long-poll for records after the last one seen."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    after_id = 0
    while len(seen) < until_count and time.monotonic() < deadline:
        status, data = request(port, "GET", f"/logs?after_id={after_id}&wait=5&limit=1000",
                               connection=connection)
        assert status == 200
        body = orjson.loads(data)
        seen.extend(item["id"] for item in body["items"])
        after_id = body["next_after_id"]
    connection.close()


def test_followers_and_full_speed_ingest_coexist(server):
    """Four long-polling followers hold threads; ingest from two processes is not starved."""
    port, db_path = server
    clients, batches = 2, 25
    expected = clients * batches * 200
    follows = [[] for _ in range(4)]
    deadline = time.monotonic() + 120
    followers = [threading.Thread(target=follow_everything, args=(port, expected, seen, deadline))
                 for seen in follows]
    for follower in followers:
        follower.start()
    time.sleep(0.5)  # the followers are now waiting inside the workers

    results = multiprocessing.Queue()
    writers = [multiprocessing.Process(target=post_fixed_batches, args=(port, c, batches, results))
               for c in range(clients)]
    for writer in writers:
        writer.start()
    statuses = [status for _ in writers for status in results.get(timeout=120)]
    for writer in writers:
        writer.join(timeout=30)
    for follower in followers:
        follower.join(timeout=120)

    assert statuses == [201] * (clients * batches)
    for seen in follows:
        # each follower sees every record once, in order
        assert seen == list(range(1, expected + 1))


def post_fixed_batches(port, client, batches, results):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    records = [{"service": f"writer-{client}", "severity": "INFO", "message": f"line {i}"}
               for i in range(200)]
    body = orjson.dumps(records)
    statuses = [
        request(port, "POST", "/ingest", body,
                {"Content-Type": "application/json", "Prefer": "return=minimal"}, connection)[0]
        for _ in range(batches)
    ]
    connection.close()
    results.put(statuses)


def test_slow_clients_get_408_and_do_not_hold_the_workers(tmp_path):
    """More stalled uploads than the server has threads: each gets a 408, others still get in."""
    env = {"WORKERS": "2", "THREADS": "4", "BODY_READ_TIMEOUT": "1"}
    with Server(tmp_path, tmp_path / "collector.db", env=env) as server:
        stalled = []
        for _ in range(12):  # more than the 8 threads of the two workers
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n[{")
            stalled.append(sock)
        dripping = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        dripping.sendall(b"POST /ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n")
        started = time.monotonic()
        for _ in range(6):  # a byte every 0.3 s: never idle long, never done
            dripping.sendall(b" ")
            time.sleep(0.3)

        status, _ = request(server.port, "POST", "/ingest",
                            orjson.dumps({"service": "a", "severity": "INFO", "message": "m"}),
                            {"Content-Type": "application/json"})
        assert status == 201
        assert time.monotonic() - started < 10
        for sock in stalled + [dripping]:
            response = http.client.HTTPResponse(sock)
            response.begin()
            assert response.status == 408
            assert orjson.loads(response.read())["error"] == "request_timeout"
            sock.close()
