"""A PostgreSQL crash in the middle of ingest loses nothing acknowledged.

The test runs a PostgreSQL of its own (initdb and pg_ctl on a temporary directory and a free
loopback port), SIGKILLs it and its backends while clients send batches through gunicorn,
restarts it (crash recovery), and checks that every acknowledged record is stored once, the
ids are gapless and the chain verifies. The machine's shared server is never touched.
"""

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import orjson
import psycopg
import pytest
from conftest import BACKEND
from helpers import record, request
from server import Server, free_port

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.skipif(
    BACKEND != "postgres", reason="PostgreSQL's own tests: run by make test-postgres")]

PG_BIN = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), None)


class OwnPostgres:
    """A throwaway PostgreSQL cluster (run as nobody when the tests run as root)."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="collector-pg-"))
        self.root.chmod(0o777)
        self.data = self.root / "data"
        self.port = free_port()
        self.as_server = ["runuser", "-u", "nobody", "--"] if os.getuid() == 0 else []
        self.run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust")

    def run(self, tool, *args):
        subprocess.run([*self.as_server, f"{PG_BIN}/{tool}", *args], check=True,
                       capture_output=True, timeout=120)

    def start(self):
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-o",
                 f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1", "start")

    def url(self, name="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def kill(self):
        """SIGKILL the postmaster and every backend: a crash, not a shutdown."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = [int(stat.split()[0]) for stat in (
            Path(path).read_text() for path in glob.glob("/proc/[0-9]*/stat")
            if _readable(path)) if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster]
        for pid in [postmaster, *children]:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in children) and (
                time.monotonic() < deadline):
            time.sleep(0.05)

    def stop(self):
        subprocess.run([*self.as_server, f"{PG_BIN}/pg_ctl", "-D", str(self.data), "-m",
                        "immediate", "stop"], capture_output=True, check=False, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def _readable(path):
    try:
        Path(path).read_text()
    except OSError:
        return False
    return True


@pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL's server binaries are not installed")
def test_nothing_acknowledged_is_lost_when_postgresql_is_killed(tmp_path):
    cluster = OwnPostgres()
    try:
        cluster.start()
        with psycopg.connect(cluster.url(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE collector")
        env = {"DATABASE_URL": cluster.url("collector"), "WORKERS": "2", "PATTERN_MINER": "OFF",
               "POSTGRES_CONNECT_TIMEOUT": "1"}
        with Server(tmp_path, None, env=env) as server:
            acknowledged, stop = [], threading.Event()

            def send(client):
                batch_number = 0
                while not stop.is_set():
                    events = [f"c{client}-b{batch_number}-{n}" for n in range(100)]
                    body = orjson.dumps([record(event_id=event) for event in events])
                    try:
                        status, _ = request(server.port, "POST", "/ingest", body,
                                               {"Content-Type": "application/json"}, timeout=10)
                    except OSError:
                        continue
                    if status == 201:
                        acknowledged.extend(events)
                        batch_number += 1
                    else:
                        assert status == 503, status  # the same batch again: nothing stored
                        time.sleep(0.1)

            senders = [threading.Thread(target=send, args=(n,)) for n in range(3)]
            for sender in senders:
                sender.start()
            time.sleep(2)
            before = len(acknowledged)
            cluster.kill()
            time.sleep(1)
            cluster.start()  # crash recovery
            time.sleep(3)
            stop.set()
            for sender in senders:
                sender.join(30)
            assert before > 0 and len(acknowledged) > before  # ingest went on after the restart
            verified = orjson.loads(request(server.port, "GET", "/audit/verify")[1])
        with psycopg.connect(cluster.url("collector")) as connection:
            stored = [row[0] for row in connection.execute("SELECT event_id FROM log_record")]
            ids = [row[0] for row in connection.execute("SELECT id FROM log_record ORDER BY id")]
        assert len(stored) == len(set(stored))  # every record once
        assert set(acknowledged) <= set(stored)
        assert ids == list(range(1, len(ids) + 1))
        assert verified["intact"] and verified["records"] == len(ids)
    finally:
        cluster.stop()
