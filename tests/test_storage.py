"""Schema migrations, pragmas, indexes, and the full-text index kept in step with the rows."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import record

from collector import create_app
from collector.storage.sqlite.db import database, write_transaction
from collector.storage.sqlite.migrations import (
    LATEST_VERSION,
    MIGRATIONS,
    current_version,
    migrate,
)
from collector.storage.sqlite.writes import insert_rows


def fts_matches(db_path, query):
    with sqlite3.connect(db_path) as db:
        return db.execute(
            "SELECT count(*) FROM log_record_fts WHERE log_record_fts MATCH ?", (query,)
        ).fetchone()[0]


def test_migrate_is_idempotent_and_records_versions(app, db_path):
    with database.connection_context():
        assert current_version() == LATEST_VERSION
        assert migrate() == []
    with sqlite3.connect(db_path) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == [version for version, _, _ in MIGRATIONS]


def test_migrate_command(runner, db_path):
    result = runner.invoke(args=["migrate"])
    assert result.exit_code == 0
    assert "up to date" in result.output


def test_an_older_database_is_upgraded_with_its_data(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # a database as release 1 left it
        db.execute("CREATE TABLE schema_version"
                   " (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        for statement in MIGRATIONS[0][2]:
            db.execute(statement)
        db.execute("INSERT INTO schema_version VALUES (1, 0)")
        db.execute(
            "INSERT INTO log_record"
            " (received_at, timestamp, service, severity, severity_rank, message)"
            " VALUES (1, 1, 'legacy', 'INFO', 30, 'written before the upgrade')"
        )
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{path}"})
    result = app.test_cli_runner().invoke(args=["migrate"])
    assert "migrated" in result.output
    assert fts_matches(path, "upgrade") == 1
    assert app.test_client().get("/logs/1").get_json()["service"] == "legacy"
    database.close_all()


@pytest.mark.parametrize("synchronous, expected", [("NORMAL", 1), ("FULL", 2)])
def test_pragmas_on_every_connection(make_app, synchronous, expected):
    make_app(SQLITE_SYNCHRONOUS=synchronous, WRITE_LOCK_TIMEOUT=2.5)
    with database.connection_context():
        pragma = lambda name: database.execute_sql(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == expected
        assert pragma("busy_timeout") == 2500
        assert pragma("foreign_keys") == 1


def test_indexes_for_the_reads(app, db_path):
    with sqlite3.connect(db_path) as db:
        indexes = {
            name: [column for _, _, column in db.execute(f"PRAGMA index_info({name})")]
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'log_record'"
                " AND sql IS NOT NULL"
            )
        }
    assert sorted(indexes.values()) == [
        ["service", "event_id"], ["service", "timestamp"], ["severity_rank", "timestamp"],
        ["timestamp"],
    ]  # trace ids are indexed in the full-text table log_record_trace


def test_full_text_index_commits_with_the_records(client, db_path):
    client.post("/ingest", json=[record(message="disk quota exceeded on volume seven")])
    assert fts_matches(db_path, "quota") == 1
    assert fts_matches(db_path, '"volume seven"') == 1


def test_full_text_index_rolls_back_with_the_records(app, db_path):
    row = (1, 1, "svc", "INFO", 30, "phantom message", None, None, None, None, None, None)
    with app.app_context(), pytest.raises(RuntimeError):
        with write_transaction() as connection:
            insert_rows(connection, [row])
            raise RuntimeError("abort")
    assert fts_matches(db_path, "phantom") == 0


def test_deleted_records_leave_the_full_text_index(client, db_path):
    client.post("/ingest", json=[record(message="ephemeral entry")])
    with sqlite3.connect(db_path) as db:
        db.execute("DELETE FROM log_record")
    assert fts_matches(db_path, "ephemeral") == 0
    with sqlite3.connect(db_path) as db:
        db.execute("INSERT INTO log_record_fts (log_record_fts, rank)"
                   " VALUES ('integrity-check', 1)")


def test_trace_ids_are_found_through_their_index_and_leave_it_with_their_records(client, db_path):
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    client.post("/ingest", json=[record(trace_id=trace), record(trace_id=trace.upper()),
                                 record(trace_id="a" * 32), record()])
    found = client.get(f"/logs?trace_id={trace}").get_json()["items"]
    assert [item["id"] for item in found] == [2, 1]
    with sqlite3.connect(db_path) as db:
        assert db.execute("SELECT count(*) FROM log_record_trace WHERE log_record_trace MATCH ?",
                          (f'"{trace}"',)).fetchone()[0] == 2
        db.execute("DELETE FROM log_record WHERE id = 1")
        db.execute("INSERT INTO log_record_trace (log_record_trace, rank)"
                   " VALUES ('integrity-check', 1)")
    found = client.get(f"/logs?trace_id={trace}").get_json()["items"]
    assert [item["id"] for item in found] == [2]


PROBE = """
import json, sys
from collector import create_app
client = create_app({"DATABASE_URL": "sqlite:///" + sys.argv[1]}).test_client()
answers = {}
for method, path in (("POST", "/ingest"), ("GET", "/logs"), ("GET", "/logs/1"), ("GET", "/readyz")):
    body = [{"service": "s", "severity": "INFO", "message": "m"}] if method == "POST" else None
    response = client.open(path, method=method, json=body)
    answers[path] = [response.status_code, response.headers.get("Retry-After"), response.get_json()]
print(json.dumps(answers))
"""


def test_a_read_only_data_directory_answers_503_and_readyz_names_it(make_app, db_path, tmp_path):
    """A collector started on a data directory it cannot write: 503 storage_read_only, not 500."""
    client = make_app().test_client()
    assert client.post("/ingest", json=[record()]).status_code == 201
    database.close_all()
    for path in db_path.parent.glob("collector.db*"):
        path.chmod(0o444)
    db_path.parent.chmod(0o555)
    command = [sys.executable, "-c", PROBE, str(db_path)]
    if os.geteuid() == 0:  # root writes anything: run the probe without that power
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", *command]
    try:
        probe = subprocess.run(command, capture_output=True, text=True, timeout=60,
                               cwd=Path(__file__).parents[1])
    finally:
        db_path.parent.chmod(0o755)
    assert probe.returncode == 0, probe.stderr
    answers = json.loads(probe.stdout)
    for path in ("/ingest", "/logs", "/logs/1"):
        status, retry_after, body = answers[path]
        assert (status, retry_after, body["error"]) == (503, "30", "storage_read_only"), path
    status, _, body = answers["/readyz"]
    assert status == 503
    assert "read-only" in body["checks"]["database"]
    assert "not writable" in body["checks"]["writable"]
