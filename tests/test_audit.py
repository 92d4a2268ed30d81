"""The audit chain: records are append-only, and any change made to the file shows in verify.

The tampering tests change the SQLite file directly, as someone with access to it would
(dropping the append-only trigger first where they must), then walk the chain.
"""

import http.client
import sqlite3
from contextlib import closing

import orjson
import pytest
from helpers import record, request, run_threads
from server import Server

from collector import audit, records
from collector.errors import MaintenanceError
from collector.retention import MICROS_PER_DAY, Retention
from collector.storage.sqlite import chain
from collector.times import now_micros


def post(client, records):
    response = client.post("/ingest", json=records, headers={"Prefer": "return=minimal"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def verify(app):
    store = app.extensions["store"]
    with store.session():
        return store.verify()


@pytest.fixture
def stored(app, client):
    """Ten records stored in three batches (the chain runs across transactions)."""
    post(client, [record(message=f"first batch {i}") for i in range(4)])
    post(client, [record(service="api", message=f"second batch {i}") for i in range(3)])
    post(client, [record(severity="ERROR", message=f"third batch {i}") for i in range(3)])
    return app


def tamper(db_path, *statements):
    with closing(sqlite3.connect(db_path, isolation_level=None)) as connection:
        connection.execute("DROP TRIGGER IF EXISTS log_record_append_only")
        for statement in statements:
            connection.execute(*statement) if isinstance(statement, tuple) \
                else connection.execute(statement)


def test_an_untouched_chain_is_intact(stored, client):
    found = verify(stored)
    assert found.intact and found.records == 10 and found.head_id == 10
    assert found.summary().startswith("intact, 10 records")
    answer = client.get("/audit/verify").get_json()
    assert answer == {"intact": True, "records": 10, "pruned": 0,
                      "head": {"id": 10, "link": found.head_link.hex()}}


def test_an_empty_database_is_intact(app):
    found = verify(app)
    assert found.intact and found.records == 0 and found.head_link == audit.GENESIS


def test_each_link_covers_the_previous_link_and_the_record(stored, db_path):
    with closing(sqlite3.connect(db_path)) as connection:
        rows = connection.execute(
            f"SELECT id, {', '.join(records.COLUMNS)}, chain FROM log_record ORDER BY id"
        ).fetchall()
    link = audit.GENESIS
    for record_id, *row, stored_link in rows:
        link = audit.record_link(link, record_id, row)
        assert stored_link == link


def test_records_cannot_be_updated_through_sql(stored, db_path):
    with closing(sqlite3.connect(db_path)) as connection, \
            pytest.raises(sqlite3.IntegrityError, match="append-only"):
        connection.execute("UPDATE log_record SET message = 'changed' WHERE id = 3")


def test_there_is_no_api_to_change_or_delete_a_record(stored, client):
    for method in ("put", "patch", "delete"):
        assert getattr(client, method)("/logs/3").status_code == 405
    assert client.delete("/logs").status_code == 405


@pytest.mark.parametrize("statements, broken_at", [
    # a changed message
    (["UPDATE log_record SET message = 'nothing to see' WHERE id = 6"], 6),
    # a changed attribute, severity and key: every column is covered
    (["UPDATE log_record SET attributes = '{\"amount\": 1}' WHERE id = 2"], 2),
    (["UPDATE log_record SET severity = 'DEBUG', severity_rank = 20 WHERE id = 9"], 9),
    (["UPDATE log_record SET api_key_id = 7 WHERE id = 4"], 4),
    (["UPDATE log_record SET timestamp = timestamp - 1 WHERE id = 1"], 1),
    # a deleted row, in the middle and at the end
    (["DELETE FROM log_record WHERE id = 5"], 5),
    (["DELETE FROM log_record WHERE id = 10"], 10),
    # an inserted row, with a made-up link or a copy of another row's
    ([("INSERT INTO log_record (id, received_at, timestamp, service, severity, severity_rank,"
       " message, chain) SELECT 11, received_at, timestamp, service, severity, severity_rank,"
       " 'forged', chain FROM log_record WHERE id = 10",)], 11),
    ([("INSERT INTO log_record (id, received_at, timestamp, service, severity, severity_rank,"
       " message, chain) VALUES (11, 1, 1, 'api', 'INFO', 30, 'forged', ?)", (bytes(32),))], 11),
    # two rows swapped, links and all
    (["UPDATE log_record SET id = -3 WHERE id = 3", "UPDATE log_record SET id = 3 WHERE id = 7",
      "UPDATE log_record SET id = 7 WHERE id = -3"], 3),
    # two rows' contents swapped, each keeping its id and link
    (["CREATE TEMP TABLE swap AS SELECT * FROM log_record WHERE id IN (2, 8)",
      "UPDATE log_record SET message = (SELECT message FROM swap WHERE id = 8),"
      " service = (SELECT service FROM swap WHERE id = 8) WHERE id = 2",
      "UPDATE log_record SET message = (SELECT message FROM swap WHERE id = 2),"
      " service = (SELECT service FROM swap WHERE id = 2) WHERE id = 8"], 2),
], ids=["message", "attributes", "severity", "api key", "timestamp", "delete middle",
        "delete last", "insert copied link", "insert made-up link", "swap rows",
        "swap contents"])
def test_tampering_is_found_at_the_first_altered_record(stored, db_path, client, statements,
                                                        broken_at):
    tamper(db_path, *statements)
    found = verify(stored)
    assert not found.intact
    assert found.broken_at == broken_at, found.reason
    answer = client.get("/audit/verify").get_json()
    assert answer["intact"] is False and answer["broken_at"] == broken_at


def test_verify_command_reports_intact_or_broken_with_its_exit_status(stored, runner, db_path):
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 0, result.output
    assert "intact, 10 records" in result.output
    tamper(db_path, "UPDATE log_record SET message = 'quietly edited' WHERE id = 4")
    result = runner.invoke(args=["verify"])
    assert result.exit_code == 1
    assert "BROKEN at record 4" in result.output


# Retention pruning: the one deletion, which the chain must survive.

def store_aged(app, specs):
    """Store records through ingest, then age them: (service, age in days) each."""
    client = app.test_client()
    now = now_micros()
    for service, age_days in specs:
        timestamp = (now - round(age_days * MICROS_PER_DAY)) / 1e6
        post(client, [record(service=service, timestamp=timestamp)])


def prune(app, **settings):
    config = {**app.config, **settings}
    store = app.extensions["store"]
    with store.session():
        return store.prune(Retention.from_config(config), now_micros())


INTERLEAVED = [("chatty", 10), ("billing", 10), ("chatty", 9), ("chatty", 8), ("billing", 1),
               ("chatty", 7), ("billing", 40), ("chatty", 2), ("chatty", 6)]


def test_pruning_keeps_the_chain_verifiable(app, client):
    store_aged(app, INTERLEAVED)
    report = prune(app, RETENTION_DAYS=30, RETENTION_RULES="service=chatty:5")
    assert report.deleted == 6  # chatty older than 5 days, billing older than 30
    found = verify(app)
    assert found.intact, found.reason
    assert (found.records, found.pruned) == (3, 6)
    post(client, [record(message="after the prune")])  # the chain goes on past the gaps
    assert verify(app).intact
    assert prune(app, RETENTION_DAYS=30, RETENTION_RULES="service=chatty:1").deleted == 1
    found = verify(app)
    assert found.intact and (found.records, found.pruned) == (3, 7)


def test_pruning_everything_leaves_a_verifiable_chain(app, client):
    store_aged(app, [("old", 50)] * 5)
    prune(app)
    found = verify(app)
    assert found.intact and (found.records, found.pruned) == (0, 5)
    post(client, [record()])
    found = verify(app)
    assert found.intact and found.head_id == 6


def test_a_deletion_dressed_up_as_a_prune_is_found(app, db_path):
    store_aged(app, INTERLEAVED)  # pruned: 1, 3-4, 6-7, 9; kept: 2, 5, 8
    prune(app, RETENTION_RULES="service=chatty:5")
    # Delete live record 8 and make one run of 6-9 out of 6-7 and 9, with 9's own link.
    tamper(db_path,
           "UPDATE audit_gap SET last_id = 9,"
           " link = (SELECT link FROM audit_gap WHERE first_id = 9) WHERE first_id = 6",
           "DELETE FROM audit_gap WHERE first_id = 9",
           "DELETE FROM log_record WHERE id = 8")
    found = verify(app)
    assert not found.intact
    assert "differ from those the last prune recorded" in found.reason


def test_pruned_runs_side_by_side_are_found(app, db_path):
    store_aged(app, INTERLEAVED)
    prune(app, RETENTION_RULES="service=chatty:5")
    # Widen the run 3-4 over live record 5, next to the run 6-7: runs always merge.
    tamper(db_path,
           "UPDATE audit_gap SET last_id = 5, link = (SELECT chain FROM log_record WHERE id = 5)"
           " WHERE first_id = 3",
           "DELETE FROM log_record WHERE id = 5")
    found = verify(app)
    assert found.broken_at == 6 and "pruned run 6-7" in found.reason


def test_a_run_widened_over_the_last_checkpoint_is_found(app, db_path):
    """The last checkpoint must be on the walked chain: hiding it inside a run hides nothing."""
    store_aged(app, [("old", 50)] * 3 + [("new", 1)] * 2)
    prune(app)  # run 1-3, checkpoint after record 5
    store_aged(app, [("new", 0)] * 3)  # 6-8
    # Delete 4-6 and widen the run over them (and the checkpoint), with a matching digest.
    with closing(sqlite3.connect(db_path)) as connection:
        link_6 = connection.execute("SELECT chain FROM log_record WHERE id = 6").fetchone()[0]
    tamper(db_path, "DELETE FROM log_record WHERE id IN (4, 5, 6)",
           ("UPDATE audit_gap SET last_id = 6, link = ? WHERE first_id = 1", (link_6,)),
           ("UPDATE audit_checkpoint SET gaps_digest = ?",
            (audit.gaps_digest([(1, 6, link_6)]),)))
    found = verify(app)
    assert not found.intact and "last prune checkpoint" in found.reason


def test_a_made_up_prune_in_a_never_pruned_chain_is_found(app, client, db_path):
    for i in range(5):
        post(client, [record(message=f"r{i}")])
    with closing(sqlite3.connect(db_path)) as connection:
        link_3 = connection.execute("SELECT chain FROM log_record WHERE id = 3").fetchone()[0]
    tamper(db_path, "DELETE FROM log_record WHERE id IN (2, 3)",
           ("INSERT INTO audit_gap VALUES (2, 3, ?)", (link_3,)),
           ("INSERT INTO audit_checkpoint (created_at, after_id, pruned, gaps_digest, link)"
            " VALUES (0, 2, 2, ?, zeroblob(32))", (audit.gaps_digest([(2, 3, link_3)]),)))
    found = verify(app)
    assert not found.intact and "last prune checkpoint" in found.reason


def test_a_run_past_the_last_id_is_found(app, client, db_path):
    post(client, [record()] * 3)
    tamper(db_path, "INSERT INTO audit_gap VALUES (4, 9, zeroblob(32))",
           ("INSERT INTO audit_checkpoint (created_at, after_id, pruned, gaps_digest, link)"
            " VALUES (0, 3, 0, ?, zeroblob(32))", (audit.gaps_digest([(4, 9, bytes(32))]),)))
    assert not verify(app).intact


@pytest.mark.parametrize("statement", [
    "UPDATE log_record SET message = CAST('blob' AS BLOB) WHERE id = 2",
    "UPDATE log_record SET chain = 'text' WHERE id = 2",
    "UPDATE log_record SET timestamp = 1.5 WHERE id = 2",
])
def test_values_of_the_wrong_type_are_a_break_not_a_crash(stored, db_path, client, statement):
    tamper(db_path, statement)
    assert verify(stored).broken_at == 2
    assert client.get("/audit/verify").get_json()["broken_at"] == 2


def test_the_last_checkpoint_cannot_be_dropped_or_changed(app, db_path):
    store_aged(app, INTERLEAVED)
    prune(app, RETENTION_RULES="service=chatty:5")
    tamper(db_path, "UPDATE audit_checkpoint SET pruned = 0"
                    " WHERE id = (SELECT MAX(id) FROM audit_checkpoint)")
    assert "checkpoint" in verify(app).reason


def test_pruning_refuses_to_delete_an_altered_record(app, db_path):
    """Backdating a record so that retention deletes it would hide the edit: prune stops."""
    store_aged(app, [("billing", 1), ("billing", 1), ("billing", 1)])
    tamper(db_path, ("UPDATE log_record SET timestamp = ? WHERE id = 2",
                     (now_micros() - 60 * MICROS_PER_DAY,)))
    with pytest.raises(MaintenanceError, match="refusing to prune record 2"):
        prune(app)
    found = verify(app)
    assert found.broken_at == 2  # the evidence is still there


def test_prune_checks_links_across_checkpoints(app, client):
    """Records written after an earlier prune's checkpoint are checked through its link."""
    store_aged(app, [("chatty", 10), ("billing", 1)])
    prune(app, RETENTION_RULES="service=chatty:5")  # checkpoint after record 2
    store_aged(app, [("chatty", 10), ("chatty", 10), ("billing", 1)])
    assert prune(app, RETENTION_RULES="service=chatty:5").deleted == 2
    assert verify(app).intact


def test_an_upgraded_database_gets_its_records_linked(tmp_path, make_app):
    """Records stored before the chain existed are linked by the migration that adds it."""
    from collector.storage.sqlite.migrations import MIGRATIONS

    path = tmp_path / "old.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("CREATE TABLE schema_version"
                           " (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        for version, _description, statements in MIGRATIONS[:3]:
            for statement in statements:
                connection.execute(statement)
            connection.execute("INSERT INTO schema_version VALUES (?, 0)", (version,))
        for i in range(1, 6):
            connection.execute(
                "INSERT INTO log_record (received_at, timestamp, service, severity, severity_rank,"
                " message) VALUES (1, 1, 'old', 'INFO', 30, ?)", (f"record {i}",))
        connection.execute("INSERT INTO log_record_fts (log_record_fts) VALUES ('rebuild')")
        connection.execute("DELETE FROM log_record WHERE id IN (2, 5)")  # pruned back then
    app = make_app(DATABASE_URL=f"sqlite:///{path}")
    found = verify(app)
    assert found.intact, found.reason
    assert (found.records, found.pruned) == (3, 2)
    post(app.test_client(), [record()])
    assert verify(app).intact


@pytest.mark.e2e
def test_workers_writing_at_once_write_one_chain(tmp_path):
    database_path, clients, batches, size = tmp_path / "collector.db", 6, 20, 10
    with Server(tmp_path, database_path, env={"WORKERS": "2"}) as server:

        def client(number):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            for batch in range(batches):
                body = [record(message=f"client {number} batch {batch} record {i}")
                        for i in range(size)]
                status, _ = request(server.port, "POST", "/ingest", orjson.dumps(body), {
                    "Content-Type": "application/json", "Prefer": "return=minimal"}, connection)
                assert status == 201

        run_threads(client, [(n,) for n in range(clients)])
    with closing(sqlite3.connect(database_path)) as connection:
        found = chain.verify(connection)
        moments = connection.execute(
            "SELECT COUNT(DISTINCT received_at) FROM log_record").fetchone()
    assert found.intact, found.summary()
    assert found.records == clients * batches * size
    assert moments[0] > 1  # written in many transactions
