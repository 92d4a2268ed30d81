"""Many instances behind a load balancer: three collectors (two workers each) on one PostgreSQL
database behind Debian's HAProxy with deploy/haproxy.cfg, while one is drained, another
SIGKILLed and restarted, four clients send batches and a follower long-polls through HAProxy.

Skipped, saying why, without haproxy or a PostgreSQL server (COLLECTOR_TEST_POSTGRES).
"""

import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import POSTGRES_ADMIN_URL, postgres_admin
from helpers import record
from server import HOST, Server, free_port

from collector import create_app
from collector.times import format_micros, now_micros

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
CLIENTS, BATCH, SHARED_PER_BATCH, SHARED_POOL = 4, 1000, 50, 400
MAX_BATCHES = 30  # per client: at most 120,000 records however slow the run
SEEDED = 200  # old records, for the one automatic prune to delete
RUN_TIMEOUT = 45.0
# What a test cannot have that Debian's service has: its privileges, its syslog.
SERVICE_ONLY = ("    chroot /var/lib/haproxy\n", "    user haproxy\n", "    group haproxy\n",
                "    daemon\n")


@pytest.fixture(scope="module")
def tools():
    if not os.access(HAPROXY, os.X_OK):
        pytest.skip("haproxy is not installed (Debian: apt-get install haproxy)")
    if postgres_admin() is None:
        pytest.skip(f"no PostgreSQL server answers at {POSTGRES_ADMIN_URL}"
                    " (set COLLECTOR_TEST_POSTGRES)")


def haproxy_config(tmp_path, port, servers, stats):
    """deploy/haproxy.cfg on loopback ``port`` in front of ``servers``, in the foreground."""
    text = (DEPLOY / "haproxy.cfg").read_text()
    replacements = [(line, "") for line in SERVICE_ONLY] + [
        ("log /dev/log local0", "log stderr format raw local0"),
        ("/run/haproxy/admin.sock", str(stats)),
        ("bind :8080", f"bind {HOST}:{port}"),
    ] + [(f"127.0.0.1:{8001 + index}", f"{HOST}:{server.port}")
         for index, server in enumerate(servers)]
    for old, new in replacements:
        assert text.count(old) == 1, f"deploy/haproxy.cfg no longer has {old!r}"
        text = text.replace(old, new)
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    return path


def test_the_readme_shows_deploy_haproxy_cfg_as_it_is():
    readme = (DEPLOY.parent / "README.md").read_text()
    shown = re.findall(r"```haproxy\n(.*?)```", readme, re.S)
    assert shown and all(block in (DEPLOY / "haproxy.cfg").read_text() for block in shown)


def test_deploy_haproxy_cfg_is_valid_as_shipped():
    if not os.access(HAPROXY, os.X_OK):
        pytest.skip("haproxy is not installed (Debian: apt-get install haproxy)")
    checked = subprocess.run([HAPROXY, "-c", "-f", DEPLOY / "haproxy.cfg"], capture_output=True,
                             text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def server_states(stats):
    """{server name: status} of the collectors' backend, from HAProxy's stats socket."""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(str(stats))
        connection.sendall(b"show stat\n")
        text = b"".join(iter(lambda: connection.recv(65536), b"")).decode()
    rows = [line.split(",") for line in text.splitlines() if line.startswith("collectors,")]
    return {row[1]: row[17] for row in rows if row[1] != "BACKEND"}


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)


def request(port, method, path, body=None, headers=None, timeout=40):
    """(status, JSON body, instance that answered), or (None, None, None) when the connection
    failed."""
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        answer = json.loads(data) if data.startswith(b"{") else None
        return response.status, answer, response.getheader("X-Collector-Instance")
    except OSError:
        return None, None, None
    finally:
        connection.close()


class Run:
    """The clients' and the follower's shared record of what they sent and saw."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.answers = {}  # Idempotency-Key -> the first 2xx answer
        self.replays = []  # (key, the answer of sending its batch again)
        self.sent = {}  # key -> the batch's records
        self.served = []  # (monotonic time the request was sent, instance that answered)
        self.errors = []
        self.newest = None  # the last id, once the clients are done: the follower reads to it

    def acked(self):
        with self.lock:
            return len(self.answers)

    def send(self, key, body):
        """POST the batch until it is acknowledged (2xx); its answer."""
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            sent_at = time.monotonic()
            status, answer, instance = request(
                self.port, "POST", "/ingest", body,
                {"Content-Type": "application/json", "Idempotency-Key": key})
            if status is not None and 200 <= status < 300:
                with self.lock:
                    self.served.append((sent_at, instance))
                return answer
            if status not in (None, 502, 503, 504):
                raise AssertionError(f"ingest answered {status}: {answer}")
            time.sleep(0.2)  # a collector died or none is up: again, with the same key
        raise AssertionError(f"batch {key} not acknowledged in {RUN_TIMEOUT} s")

    def client(self, number):
        chooser = random.Random(number)
        try:
            for batch in range(MAX_BATCHES):
                if self.stop.is_set():
                    return
                records = [record(service="e2e", message=f"c{number} b{batch} r{index}")
                           for index in range(BATCH - SHARED_PER_BATCH)]
                records += [record(service="e2e", message=f"c{number} b{batch} shared",
                                   event_id=f"shared-{chooser.randrange(SHARED_POOL)}")
                            for _ in range(SHARED_PER_BATCH)]
                key, body = str(uuid.uuid4()), json.dumps(records)
                answer = self.send(key, body)
                with self.lock:
                    self.answers[key], self.sent[key] = answer, records
                if chooser.random() < 0.25:  # the client retries an acknowledged batch
                    replay = self.send(key, body)
                    with self.lock:
                        self.replays.append((key, replay))
                time.sleep(0.3)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.errors.append(exc)
            raise

    def follow(self, after_id, seen):
        while self.newest is None or after_id < self.newest:
            status, page, _ = request(self.port, "GET",
                                      f"/logs?after_id={after_id}&wait=2&limit=1000")
            if status != 200:
                time.sleep(0.2)
                continue
            seen.extend(item["id"] for item in page["items"])
            after_id = page["next_after_id"]


def kill(server):
    """SIGKILL the instance: its master, its workers, its miner."""
    for pid in [*server.worker_pids(), *server.miner_pids(), server.process.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.process.wait()


def seed_old_records(url):
    """SEEDED records of three days ago, for the automatic prune."""
    app = create_app({"TESTING": True, "DATABASE_URL": url})
    old = format_micros(now_micros() - 3 * 86_400 * 10**6)
    answer = app.test_client().post("/ingest", json=[
        record(service="e2e", message=f"old {index}", timestamp=old) for index in range(SEEDED)])
    app.extensions["store"].close()
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["last_id"]


def prunes(servers):
    """How many automatic prunes the instances logged, in all."""
    return sum(server.log_path.read_text().count("automatic prune:") for server in servers
               if server.log_path.exists())


def stored(url):
    """(id, message, event_id) of every record, in id order, and the chain head's last id."""
    import psycopg

    with psycopg.connect(url) as connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot
        rows = connection.execute(
            "SELECT id, message, event_id FROM log_record ORDER BY id").fetchall()
        head = connection.execute("SELECT last_id FROM chain_head").fetchone()[0]
    return rows, head


def id_runs(ids):
    """``ids`` as compact runs ("1-5, 9"), for a failure message of readable length."""
    runs = []
    for record_id in sorted(ids):
        if runs and runs[-1][1] == record_id - 1:
            runs[-1][1] = record_id
        else:
            runs.append([record_id, record_id])
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in runs)


def differ(seen, expected):
    """What tells ``seen`` apart from ``expected`` (lists of ids), in runs."""
    return (f"missing {id_runs(set(expected) - set(seen)) or 'none'};"
            f" extra {id_runs(set(seen) - set(expected)) or 'none'};"
            f" {len(seen) - len(set(seen))} seen twice; {len(seen)} seen, {len(expected)} expected")


def test_three_instances_behind_haproxy_drained_killed_and_restarted(tools, postgres_url,
                                                                     tmp_path):
    started = time.monotonic()
    seeded_last = seed_old_records(postgres_url)
    env = {"WORKERS": "2", "PATTERN_MINER": "off", "POSTGRES_POOL_SIZE": "4",
           "TRUSTED_PROXIES": "127.0.0.1", "RETENTION_DAYS": "1", "PRUNE_INTERVAL": "60"}
    drains = [tmp_path / f"drain-c{index}" for index in (1, 2, 3)]
    servers = [Server(tmp_path, postgres_url, env={**env, "DRAIN_FILE": str(drain)})
               for drain in drains]
    port, stats = free_port(), tmp_path / "haproxy.sock"
    config = haproxy_config(tmp_path, port, servers, stats)
    drained, killed = servers[0], servers[1]
    log = (tmp_path / "haproxy.log").open("wb")
    haproxy, run = None, Run(port)
    try:
        for server in servers:
            server.start()
        haproxy = subprocess.Popen([HAPROXY, "-db", "-f", config], stdout=log,
                                   stderr=subprocess.STDOUT)
        wait_for(lambda: stats.exists() and set(server_states(stats).values()) == {"UP"},
                 15, "HAProxy sees the three collectors up")
        seen = []
        threads = [threading.Thread(target=run.client, args=(number,), daemon=True)
                   for number in range(CLIENTS)]
        follower = threading.Thread(target=run.follow, args=(seeded_last, seen), daemon=True)
        for thread in [follower, *threads]:
            thread.start()

        wait_for(lambda: run.acked() >= 4 or run.errors, 20, "four batches acknowledged")
        drains[0].touch()
        wait_for(lambda: server_states(stats)["c1"].startswith("DOWN"), 10,
                 "HAProxy takes the drained c1 out")
        drained_at = time.monotonic()
        acked = run.acked()
        wait_for(lambda: run.acked() >= acked + 4 or run.errors, 20, "batches without c1")
        assert request(drained.port, "GET", "/healthz")[0] == 200  # it serves on, out of HAProxy

        wait_for(lambda: prunes(servers) >= 1, 20, "the automatic prune")
        kill(killed)
        wait_for(lambda: server_states(stats)["c2"].startswith("DOWN"), 10,
                 "HAProxy takes the killed c2 out")
        killed.start()
        wait_for(lambda: server_states(stats)["c2"] == "UP", 15, "c2 back after its restart")
        restarted_at = time.monotonic()
        acked = run.acked()
        wait_for(lambda: run.acked() >= acked + 4 or run.errors, 20, "batches after c2's restart")
        drains[0].unlink()
        undrained_at = time.monotonic()
        wait_for(lambda: server_states(stats)["c1"] == "UP", 10, "c1 back after undrain")
        run.stop.set()
        for thread in threads:
            thread.join(RUN_TIMEOUT)
        assert not run.errors, run.errors
        assert not [thread for thread in threads if thread.is_alive()], "a client still sends"
        rows, head = stored(postgres_url)
        run.newest = head
        follower.join(RUN_TIMEOUT)
        assert not follower.is_alive(), "the follower did not reach the newest record"
        verify = request(port, "GET", "/audit/verify")[1]
    finally:
        run.stop.set()  # the threads end (daemons) even when the test failed
        if run.newest is None:
            run.newest = 0
        if haproxy is not None:
            haproxy.terminate()
            haproxy.wait(10)
        for server in servers:
            server.stop()
        log.close()
    elapsed = time.monotonic() - started

    ids = [row[0] for row in rows]
    # ids gapless: the survivors follow the pruned seeded ones, up to the chain's head
    assert ids == list(range(seeded_last + 1, head + 1)), differ(
        ids, range(seeded_last + 1, head + 1))
    assert verify["intact"] and verify["records"] == len(rows) and verify["pruned"] == SEEDED
    # each key produced one batch: every resend got the first answer again
    assert run.replays and all(run.answers[key] == replay for key, replay in run.replays)
    answers = list(run.answers.values())
    assert sum(answer["accepted"] for answer in answers) == len(rows)
    assert all(answer["accepted"] + answer["duplicates"] == BATCH for answer in answers)
    # every acknowledged record stored once, nothing else, no duplicates
    plain = sorted(item["message"] for records in run.sent.values() for item in records
                   if "event_id" not in item)
    assert sorted(message for _, message, event_id in rows if event_id is None) == plain
    shared = {item["event_id"] for records in run.sent.values() for item in records
              if "event_id" in item}
    stored_shared = [event_id for _, _, event_id in rows if event_id is not None]
    assert sorted(stored_shared) == sorted(shared)
    # the follower saw every id, in order, once
    assert seen == ids, differ(seen, ids)
    # HAProxy sent nothing to c1 while it was drained; c2 served again after its restart
    assert not [when for when, instance in run.served
                if instance == "c1" and drained_at < when < undrained_at]
    assert any(instance == "c2" and when > restarted_at for when, instance in run.served)
    # exactly one automatic prune across the instances
    assert prunes(servers) == 1
    assert elapsed < 60, f"the run took {elapsed:.0f} s"
