"""Operator commands: retention rules, prune, backup, restore and stats."""

import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from helpers import record
from server import BIN, REPO

from collector.records import COLUMNS
from collector.retention import MICROS_PER_DAY, Retention, parse_rules
from collector.severity import RANKS
from collector.storage.sqlite import maintenance
from collector.storage.sqlite.db import database
from collector.storage.sqlite.writes import insert_rows
from collector.times import now_micros
from config import Config, ConfigError

ROOT = Path(__file__).resolve().parent.parent
DAY = 86_400


def days_ago(days):
    """Epoch seconds ``days`` before now, as a client would stamp a record."""
    return time.time() - days * DAY


def post(client, records):
    response = client.post("/ingest", json=records, headers={"Prefer": "return=representation"})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def insert_records(db_path, specs):
    """Store a record per (service, severity, age in days) of ``specs``, bypassing ingest."""
    now = now_micros()
    rows = []
    for service, severity, age_days in specs:
        values = {
            "received_at": now, "timestamp": now - round(age_days * MICROS_PER_DAY),
            "service": service, "severity": severity, "severity_rank": RANKS[severity],
            "message": f"{service} {severity.lower()} record",
        }
        rows.append(tuple(values.get(column) for column in COLUMNS))
    with closing(sqlite3.connect(db_path, isolation_level=None, timeout=10)) as connection:
        connection.execute("BEGIN IMMEDIATE")
        insert_rows(connection, rows)
        connection.execute("COMMIT")


def query(db_path, sql, *params):
    with closing(sqlite3.connect(db_path)) as connection:
        return connection.execute(sql, params).fetchall()


@contextmanager
def ingesting(app, threads=3, batch=50):
    """Post batches from ``threads`` threads until the block ends; yields the answers.

    Each answer is (status, first_id, last_id, monotonic time the answer came).
    """
    answers, stop = [], threading.Event()

    def run():
        client = app.test_client()
        while not stop.is_set():
            response = client.post("/ingest", json=[record(message="live")] * batch,
                                   headers={"Prefer": "return=minimal"})
            body = response.get_json() or {}
            answers.append((response.status_code, body.get("first_id"), body.get("last_id"),
                            time.monotonic()))

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        while not answers:  # ingest is under way before the block runs
            time.sleep(0.01)
        yield answers
    finally:
        stop.set()
        for worker in workers:
            worker.join()


def acknowledged_ids(answers, before=float("inf")):
    return {record_id for status, first, last, at in answers if status == 201 and at < before
            for record_id in range(first, last + 1)}


# Retention rules


@pytest.mark.parametrize(
    "text, service_days, severity_days",
    [
        ("", {}, {}),
        ("service=chatty:3", {"chatty": 3}, {}),
        ("severity>=ERROR:365, service=chatty:3", {"chatty": 3}, {60: 365}),
        ("severity>=warning:90,severity>=FATAL:1000", {}, {50: 90, 80: 1000}),
        ("service=a:b:7", {"a:b": 7}, {}),  # a service name may hold a colon
    ],
)
def test_rules_parse(text, service_days, severity_days):
    assert parse_rules(text) == (service_days, severity_days)


@pytest.mark.parametrize(
    "text",
    [
        "chatty:3",
        "service=chatty",
        "service=:3",
        "service=chatty:0",
        "service=chatty:three",
        "service=chatty:3,service=chatty:4",
        "severity>=LOUD:3",
        "severity=ERROR:3",
        "severity>=ERROR:3,severity>=ERR:4",
    ],
)
def test_invalid_rule_stops_start_up_naming_the_setting(text):
    # As gunicorn.conf.py and create_app read the settings at start-up.
    with pytest.raises(ConfigError, match="RETENTION_RULES"):
        Retention.from_config(Config({"RETENTION_RULES": text}).as_dict())


def test_retention_settings_from_the_environment():
    config = Config({"RETENTION_DAYS": "7", "RETENTION_RULES": "service=chatty:1",
                     "BACKUP_DIR": "/srv/backups"})
    assert (config.RETENTION_DAYS, config.RETENTION_RULES, config.BACKUP_DIR) == (
        7, "service=chatty:1", "/srv/backups")
    defaults = Config({})
    assert (defaults.RETENTION_DAYS, defaults.RETENTION_RULES, defaults.BACKUP_DIR) == (
        30, "", "backups")
    with pytest.raises(ConfigError, match="RETENTION_DAYS"):
        Config({"RETENTION_DAYS": "0"})


@pytest.mark.parametrize(
    "service, severity, days",
    [
        ("billing", "INFO", 30),  # RETENTION_DAYS
        ("chatty", "INFO", 3),  # a service rule shortens
        ("archive", "INFO", 400),  # or lengthens
        ("chatty", "WARN", 90),  # a severity rule extends
        ("chatty", "ERROR", 365),  # the longest matching severity rule wins
        ("billing", "FATAL", 365),
        ("archive", "ERROR", 400),  # a severity rule never shortens
    ],
)
def test_the_longest_applicable_rule_wins(service, severity, days):
    retention = Retention(30, *parse_rules(
        "service=chatty:3,service=archive:400,severity>=WARN:90,severity>=ERROR:365"))
    now = now_micros()
    condition, params = maintenance.expired_sql(retention, now)
    with closing(sqlite3.connect(":memory:")) as connection:
        connection.execute("CREATE TABLE log_record (timestamp, service, severity_rank)")
        for age in (days - 0.01, days + 0.01):
            connection.execute("INSERT INTO log_record VALUES (?, ?, ?)",
                               (now - round(age * MICROS_PER_DAY), service, RANKS[severity]))
        expired = connection.execute(
            f"SELECT timestamp FROM log_record WHERE {condition}", params).fetchall()
    assert expired == [(now - round((days + 0.01) * MICROS_PER_DAY),)]
    assert retention.expired_before(now) >= expired[0][0]


# Prune


def test_prune_deletes_what_is_past_its_retention(make_app, db_path):
    app = make_app(RETENTION_RULES="service=chatty:3,service=archive:400,severity>=ERROR:365")
    cases = [  # (service, severity, age in days, kept)
        ("billing", "INFO", 40, False),
        ("billing", "INFO", 20, True),
        ("billing", "WARN", 40, False),
        ("chatty", "INFO", 5, False),
        ("chatty", "INFO", 1, True),
        ("chatty", "ERROR", 100, True),
        ("chatty", "FATAL", 400, False),
        ("archive", "INFO", 200, True),
        ("archive", "ERROR", 380, True),
    ]
    post(app.test_client(), [
        record(service=service, severity=severity, timestamp=days_ago(age),
               message=f"{'keep' if kept else 'drop'} {service} {severity} {age}")
        for service, severity, age, kept in cases
    ])

    result = app.test_cli_runner().invoke(args=["prune"])

    assert result.exit_code == 0, result.output
    kept = {message for (message,) in query(db_path, "SELECT message FROM log_record")}
    assert kept == {f"keep {s} {sev} {age}" for s, sev, age, k in cases if k}
    summary = result.output.strip().splitlines()[-1]
    assert summary.startswith("pruned 4 records in 1 transactions;")
    # The full-text index lost the deleted messages with them.
    matches = "SELECT COUNT(*) FROM log_record_fts WHERE log_record_fts MATCH '{}'"
    assert query(db_path, matches.format("drop")) == [(0,)]
    assert query(db_path, matches.format("keep")) == [(5,)]


def test_prune_with_nothing_expired_deletes_nothing(make_app, db_path):
    app = make_app()
    post(app.test_client(), [record(timestamp=days_ago(29))])
    result = app.test_cli_runner().invoke(args=["prune"])
    assert result.exit_code == 0, result.output
    assert "pruned 0 records in 0 transactions" in result.output
    assert query(db_path, "SELECT COUNT(*) FROM log_record") == [(1,)]


def test_prune_walks_past_kept_records_that_share_a_timestamp(make_app, db_path, monkeypatch):
    app = make_app(RETENTION_RULES="severity>=ERROR:365")
    # Batches of 7 among records all stamped alike, every other one kept.
    monkeypatch.setattr(maintenance, "FIRST_BATCH", 7)
    monkeypatch.setattr(maintenance, "MIN_BATCH", 7)
    monkeypatch.setattr(maintenance, "MAX_BATCH", 7)
    insert_records(db_path, [("billing", severity, 40) for severity in ("INFO", "ERROR")] * 50)

    result = app.test_cli_runner().invoke(args=["prune"])

    assert result.exit_code == 0, result.output
    assert query(db_path, "SELECT severity, COUNT(*) FROM log_record GROUP BY 1") == [("ERROR", 50)]
    assert "pruned 50 records in 8 transactions" in result.output


def test_prune_of_many_records_keeps_ingest_going(make_app, db_path):
    # Past half a second of waiting for the write lock ingest answers 503:
    # deleting these records in one transaction takes more than twice that.
    # (A quarter second, as before the audit chain, was too close to a prune's
    # worst moments on a slow day, with prune and ingest sharing one process.)
    app = make_app(WRITE_LOCK_TIMEOUT=0.5)
    old = 150_000
    insert_records(db_path, [("billing", "INFO", 45)] * old)

    with ingesting(app) as answers:
        result = app.test_cli_runner().invoke(args=["prune"])
        during_prune = len(answers)

    assert result.exit_code == 0, result.output
    summary = result.output.strip().splitlines()[-1]
    figures = re.fullmatch(
        r"pruned ([\d,]+) records in (\d+) transactions; write lock held max ([\d.]+) ms,"
        r" median ([\d.]+) ms; [\d.]+ s", summary)
    assert figures, summary
    assert during_prune > 1
    assert {status for status, *_ in answers} == {201}
    assert int(figures[1].replace(",", "")) == old
    assert int(figures[2]) > 5
    assert float(figures[4]) < 100
    assert query(db_path, "SELECT COUNT(*) FROM log_record") == [(len(acknowledged_ids(answers)),)]
    assert "WAL truncated" in result.output
    assert "\r" not in result.output  # no progress bar off a terminal


def test_prune_truncates_the_wal(make_app, db_path):
    # A database from before auto_vacuum was set: its file cannot shrink.
    with closing(sqlite3.connect(db_path)) as connection:
        connection.execute("PRAGMA journal_mode = wal")
        connection.execute("CREATE TABLE predates_auto_vacuum (x)")
    app = make_app()
    insert_records(db_path, [("billing", "INFO", 40)] * 2_000)
    assert os.path.getsize(f"{db_path}-wal") > 0
    result = app.test_cli_runner().invoke(args=["prune"])
    assert result.exit_code == 0, result.output
    assert os.path.getsize(f"{db_path}-wal") == 0
    assert "free pages kept for new records (auto_vacuum is off" in result.output


def test_prune_returns_free_pages_of_a_new_database(make_app, db_path):
    app = make_app()  # the first connection sets auto_vacuum before WAL and the first table
    assert query(db_path, "PRAGMA auto_vacuum") == [(2,)]
    insert_records(db_path, [("billing", "INFO", 40)] * 5_000)
    size_before = query(db_path, "PRAGMA page_count")[0][0]

    result = app.test_cli_runner().invoke(args=["prune"])

    assert result.exit_code == 0, result.output
    assert "incremental vacuum returned" in result.output
    assert query(db_path, "PRAGMA freelist_count") == [(0,)]
    assert query(db_path, "PRAGMA page_count")[0][0] < size_before / 2


def test_prune_refuses_invalid_rules_naming_the_setting(db_path):
    result = subprocess.run(
        [BIN / "flask", "--app", "wsgi", "prune"], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{db_path}", "RETENTION_RULES": "chatty:3"})
    assert result.returncode != 0
    assert "RETENTION_RULES" in result.stderr


# Backup and restore


def test_backup_during_ingest_then_restore(make_app, db_path, tmp_path):
    backups = tmp_path / "backups"
    app = make_app(BACKUP_DIR=str(backups))
    insert_records(db_path, [("billing", "INFO", 1)] * 30_000)  # several backup steps

    with ingesting(app) as answers:
        time.sleep(0.2)
        backup_started = time.monotonic()
        result = app.test_cli_runner().invoke(args=["backup"])
    assert result.exit_code == 0, result.output

    path = Path(result.output.splitlines()[0])
    assert path.parent == backups
    assert re.fullmatch(r"collector-\d{8}T\d{6}Z\.db", path.name)
    assert os.listdir(backups) == [path.name]  # no partial copy left behind
    assert "written and checked" in result.output.splitlines()[-1]
    assert {status for status, *_ in answers} == {201}
    copied = {record_id for (record_id,) in query(path, "SELECT id FROM log_record")}
    before = acknowledged_ids(answers, before=backup_started)
    assert before and before <= copied
    assert query(path, "PRAGMA integrity_check") == [("ok",)]

    # Records stored after the backup are gone once it is restored.
    post(app.test_client(), [record(message="after the backup")])
    database.close_all()  # the collector is stopped
    result = app.test_cli_runner().invoke(args=["restore", str(path)])

    assert result.exit_code == 0, result.output
    assert not os.path.exists(f"{db_path}-wal")
    assert {record_id for (record_id,) in query(db_path, "SELECT id FROM log_record")} == copied
    client = app.test_client()
    assert client.get(f"/logs/{min(before)}").status_code == 200
    post(client, [record(message="after the restore")])


def test_restore_discards_a_wal_left_beside_a_moved_database(make_app, db_path, tmp_path):
    app = make_app(BACKUP_DIR=str(tmp_path / "backups"))
    post(app.test_client(), [record(message="in the backup")])
    backup = app.test_cli_runner().invoke(args=["backup"]).output.splitlines()[0]
    database.close_all()
    # A process that commits and dies without closing leaves its -wal behind.
    crash = ("import os, sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
             " c.execute('DELETE FROM log_record'); os._exit(0)")
    subprocess.run([sys.executable, "-c", crash, str(db_path)], check=True, timeout=60)
    assert os.path.getsize(f"{db_path}-wal") > 0
    # The operator moves the broken database aside, its -wal stays.
    os.replace(db_path, tmp_path / "broken.db")

    result = app.test_cli_runner().invoke(args=["restore", backup])

    assert result.exit_code == 0, result.output
    assert query(db_path, "SELECT message FROM log_record") == [("in the backup",)]
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]


def test_restore_refuses_while_the_database_is_open(make_app, db_path, tmp_path):
    runner = make_app(BACKUP_DIR=str(tmp_path)).test_cli_runner()
    backup = Path(runner.invoke(args=["backup"]).output.splitlines()[0])
    with database.connection_context():
        database.execute_sql("SELECT COUNT(*) FROM log_record").fetchone()
        result = runner.invoke(args=["restore", str(backup)])
    assert result.exit_code == 1
    assert "stop the collector first" in result.output


def not_sqlite(path, live):
    path.write_text("not a database\n" * 1000)


def not_collector(path, live):
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")


def corrupted(path, live):
    with closing(sqlite3.connect(live)) as source, closing(sqlite3.connect(path)) as copy:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode = DELETE")
    insert_records(path, [("billing", "INFO", 1)] * 2_000)
    with open(path, "r+b") as file:
        file.seek(os.path.getsize(path) // 2)
        file.write(os.urandom(16_384))


@pytest.mark.parametrize(
    "make_file, reason",
    [
        (not_sqlite, "not a readable SQLite database"),
        (not_collector, "not a collector database"),
        (corrupted, ""),  # integrity_check's findings, or a malformed file
    ],
)
def test_restore_refuses_a_file_that_is_no_sound_collector_database(
        app, db_path, tmp_path, make_file, reason):
    source = tmp_path / "source.db"
    make_file(source, db_path)
    post(app.test_client(), [record(message="still here")])
    database.close_all()

    result = app.test_cli_runner().invoke(args=["restore", str(source)])

    assert result.exit_code == 1
    assert "refusing to restore" in result.output and reason in result.output
    assert query(db_path, "SELECT message FROM log_record") == [("still here",)]
    assert not list(tmp_path.glob("*.restoring"))


def test_restore_help_says_to_stop_the_collector(runner):
    result = runner.invoke(args=["restore", "--help"])
    assert "Stop the collector first" in result.output


# Stats


def test_stats_counts_records_per_service_and_severity(app, db_path):
    items = post(app.test_client(), [
        record(service="billing", severity="INFO", timestamp=days_ago(2)),
        record(service="billing", severity="WARN", timestamp=days_ago(0.1)),
        record(service="auth", severity="ERROR", timestamp=days_ago(10)),
    ])["items"]

    result = app.test_cli_runner().invoke(args=["stats"])

    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert ["records", "3"] in lines
    assert ["oldest", items[2]["timestamp"]] in lines
    assert ["newest", items[1]["timestamp"]] in lines
    assert lines.index(["billing", "2"]) < lines.index(["auth", "1"])
    assert lines.index(["INFO", "1"]) < lines.index(["WARN", "1"]) < lines.index(["ERROR", "1"])
    assert "size on disk" in result.output


def test_stats_of_an_empty_database(runner):
    result = runner.invoke(args=["stats"])
    assert result.exit_code == 0, result.output
    assert ["records", "0"] in [line.split() for line in result.output.splitlines()]


# Makefile


def test_make_restore_without_file_prints_usage_and_fails():
    result = subprocess.run(["make", "-s", "restore"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert "usage: make restore FILE=" in result.stderr


def test_make_help_lists_the_operator_targets():
    result = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    for target in ("prune", "backup", "restore", "stats"):
        assert re.search(rf"make {target} +\S", result.stdout), target
