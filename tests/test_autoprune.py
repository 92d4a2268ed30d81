"""Automatic pruning: one prune per PRUNE_INTERVAL across workers, never from tests or the CLI."""

import json
import logging
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from datetime import datetime

import orjson
import pytest
from helpers import record, run_threads
from server import Server

from collector.errors import StorageBusy
from collector.ops import autoprune
from collector.storage.sqlite import prune_lock

EXPIRED = "2020-01-01T00:00:00Z"  # past the default retention of 30 days


def post(client, records):
    response = client.post("/ingest", json=records, headers={"Prefer": "return=minimal"})
    assert response.status_code == 201, response.get_data(as_text=True)


def fill(client, expired, fresh):
    """Store ``expired`` records from 2020 and ``fresh`` ones from now."""
    records = [record(message=f"old {n}", timestamp=EXPIRED) for n in range(expired)]
    post(client, records + [record(message=f"new {n}") for n in range(fresh)])


def count(db_path, sql="SELECT COUNT(*) FROM log_record"):
    with closing(sqlite3.connect(db_path, timeout=10)) as connection:
        return connection.execute(sql).fetchone()[0]


def count_expired(db_path):
    return count(db_path, "SELECT COUNT(*) FROM log_record WHERE timestamp < 1600000000000000")


@pytest.fixture
def app(make_app):
    return make_app(PRUNE_INTERVAL=60)


def run_once(app, clock=time.time):
    """One try of the app's automatic prune, as a worker's thread makes it."""
    return autoprune.run_once(app.extensions["store"], app.extensions["retention"],
                              app.config["PRUNE_INTERVAL"], clock)


def test_two_workers_at_once_prune_once(app, client, db_path):
    fill(client, expired=300, fresh=5)
    reports, barrier = [], threading.Barrier(2)

    def worker():
        barrier.wait()
        reports.append(run_once(app))

    run_threads(worker, [()] * 2)
    pruned = [report for report in reports if report is not None]
    assert len(reports) == 2 and len(pruned) == 1
    assert pruned[0].deleted == 300
    assert count(db_path) == 5


def test_a_second_call_within_the_interval_does_nothing(app, client, db_path):
    fill(client, expired=10, fresh=1)
    assert run_once(app).deleted == 10
    fill(client, expired=10, fresh=0)
    assert run_once(app) is None
    assert run_once(app, clock=lambda: time.time() + 59) is None
    assert count_expired(db_path) == 10
    assert run_once(app, clock=lambda: time.time() + 61).deleted == 10


def test_the_schedule_survives_in_the_lock_file(app, client, db_path):
    fill(client, expired=3, fresh=0)
    before = time.time()
    run_once(app)
    with open(prune_lock.lock_path(str(db_path))) as lock_file:
        state = json.loads(lock_file.read())
    assert before <= state["started"] <= state["finished"] <= time.time()
    assert state["deleted"] == 3
    assert prune_lock.lock_path(str(db_path)) == f"{db_path}.prune-lock"
    due = autoprune.seconds_until_due(app.extensions["store"].peek_prune_schedule(), 60,
                                      time.time())
    assert 59 < due <= 60


def test_a_clock_gone_back_does_not_stall_the_schedule(app, client, db_path):
    fill(client, expired=3, fresh=0)
    run_once(app)
    fill(client, expired=3, fresh=0)
    # A day back: the stamps lie in the future and no longer count.
    assert run_once(app, clock=lambda: time.time() - 86_400).deleted == 3


def test_a_worker_that_dies_mid_prune_releases_the_lock(app, client, db_path):
    fill(client, expired=5, fresh=1)
    path = prune_lock.lock_path(str(db_path))
    # Another process takes the lock and starts a prune, as a worker would, then dies.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, json, sys, time\n"
         "f = open(sys.argv[1], 'w')\n"
         "fcntl.flock(f, fcntl.LOCK_EX)\n"
         "f.write(json.dumps({'started': time.time()})); f.flush()\n"
         "print('locked', flush=True)\n"
         "time.sleep(60)\n",
         path],
        stdout=subprocess.PIPE, text=True,
    )

    def later():
        return time.time() + 61

    try:
        assert holder.stdout.readline() == "locked\n"
        assert run_once(app, clock=later) is None  # busy: it holds the lock
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # Its start still counts: the next prune is an interval after it.
    assert run_once(app) is None
    assert run_once(app, clock=later).deleted == 5
    assert count(db_path) == 1


def test_a_failed_prune_is_logged_and_retried_next_interval(app, client, db_path, monkeypatch,
                                                          caplog):
    fill(client, expired=4, fresh=0)

    def busy(retention, now, on_deleted=None):
        raise StorageBusy()

    monkeypatch.setattr(app.extensions["store"], "prune", busy)
    pruner = app.extensions["autoprune"]  # not started: its steps are run here
    with caplog.at_level(logging.WARNING, logger="collector.autoprune"):
        delay = pruner.step()
    [logged] = caplog.records
    assert logged.levelno == logging.WARNING and "database is busy" in logged.getMessage()
    assert logged.fields == {"error": "storage_busy"}
    assert 60 < delay <= 66  # the interval and its jitter, not a tight retry loop
    monkeypatch.undo()

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="collector.autoprune"):
        assert pruner.step() > 60  # tried less than an interval ago: nothing runs
        assert not caplog.records
        run_once(app, clock=lambda: time.time() + 61)
    assert count(db_path) == 0


def test_an_unexpected_error_does_not_end_the_thread(app, monkeypatch, caplog):
    def broken(retention, now, on_deleted=None):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(app.extensions["store"], "prune", broken)
    with caplog.at_level(logging.ERROR, logger="collector.autoprune"):
        delay = app.extensions["autoprune"].step()
    [logged] = caplog.records
    assert "disk on fire" in logged.exc_text and delay > 60


def test_a_prune_is_logged_as_one_line_with_its_summary(app, client, caplog):
    fill(client, expired=7, fresh=0)
    with caplog.at_level(logging.INFO, logger="collector.autoprune"):
        app.extensions["autoprune"].step()
    [logged] = caplog.records
    assert logged.getMessage().startswith("automatic prune: pruned 7 records in 1 transactions")
    assert logged.fields["deleted"] == 7 and logged.fields["transactions"] == 1
    assert {"max_hold_ms", "median_hold_ms", "seconds", "space"} <= logged.fields.keys()


def test_no_thread_under_the_test_client_or_the_cli(make_app):
    app = make_app(PRUNE_INTERVAL=1)
    app.test_client().get("/healthz")
    app.test_cli_runner().invoke(args=["stats"])
    assert "autoprune" not in [thread.name for thread in threading.enumerate()]
    assert autoprune.start(make_app(PRUNE_INTERVAL=0)) is None  # the default: off


def test_start_runs_a_daemon_thread_that_prunes(make_app, client, db_path):
    app = make_app(PRUNE_INTERVAL=1)
    fill(client, expired=2, fresh=0)
    pruner = autoprune.start(app)
    try:
        assert pruner.daemon
        deadline = time.monotonic() + 5
        while count(db_path) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert count(db_path) == 0
    finally:
        pruner.stop()
        pruner.join(5)
    assert not pruner.is_alive()


@pytest.mark.e2e
def test_gunicorn_workers_prune_once_per_interval(client, db_path, tmp_path):
    fill(client, expired=3000, fresh=3)
    with Server(tmp_path, db_path, env={"WORKERS": "2", "PRUNE_INTERVAL": "1"}) as server:
        deadline = time.monotonic() + 15
        while count_expired(db_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count_expired(db_path) == 0, server.log_tail()
        # A second prune, on whichever worker, shows the first one's interval was kept.
        while len(prunes(server)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(server.worker_pids()) == 2
    lines = prunes(server)
    assert len(lines) >= 2, server.log_tail()
    assert [line["deleted"] for line in lines if line["deleted"]] == [3000]
    assert count(db_path) == 3
    times = [time_of(line) for line in lines]
    assert all(later - earlier >= 0.9 for earlier, later in zip(times, times[1:], strict=False))


def prunes(server):
    lines = [orjson.loads(line) for line in server.log_path.read_text().splitlines()]
    return [line for line in lines if line["logger"] == "collector.autoprune"
            and line["level"] == "info"]


def time_of(line):
    return datetime.fromisoformat(line["time"]).timestamp()
