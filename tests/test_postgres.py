"""The PostgreSQL backend's own guarantees: daily partitions, full text as on SQLite, one gapless
chain under concurrent writers, idempotency and dedup across connections, prune by whole days
and in batches under one lock, and PostgreSQL's failures as the domain's answers.

Run by ``make test-postgres``; skipped where no PostgreSQL server answers.
"""

import socket
import threading

import psycopg
import pytest
from conftest import BACKEND
from helpers import record

from collector import create_app
from collector.errors import StorageBusy, StorageFull, StorageUnavailable
from collector.retention import MICROS_PER_DAY, Retention
from collector.storage.postgres import db, partitions
from collector.times import format_micros, now_micros

pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(BACKEND != "postgres",
                                 reason="PostgreSQL's own tests: run by make test-postgres")]


def post(client, records, **headers):
    return client.post("/ingest", json=records, headers=headers)


def ids(client, **query):
    response = client.get("/logs", query_string={"order": "asc", "limit": 1000, **query})
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def days_ago(days):
    return format_micros(now_micros() - int(days * MICROS_PER_DAY))


def attached(app):
    with db.transaction() as connection:
        return partitions.attached(connection)


def test_migrate_creates_the_partitions_ahead(app):
    today = now_micros() // partitions.DAY
    days = attached(app)
    assert days == list(range(today, today + app.config["POSTGRES_PARTITIONS_AHEAD"] + 1))


def test_a_record_of_a_day_without_partition_gets_one_in_its_transaction(app, client):
    old, new = days_ago(400), format_micros(now_micros() + 20 * MICROS_PER_DAY)
    answer = post(client, [record(timestamp=old, message="old"), record(message="today")])
    assert answer.status_code == 201, answer.get_json()
    assert (now_micros() - 400 * MICROS_PER_DAY) // partitions.DAY in attached(app)
    assert [item["message"] for item in client.get("/logs?order=asc").get_json()["items"]] == [
        "old", "today"]
    skewed = create_app({"TESTING": True, "DATABASE_URL": app.config["DATABASE_URL"],
                         "MAX_FUTURE_SKEW": 30 * 86_400})
    assert post(skewed.test_client(), [record(timestamp=new)]).status_code == 201
    assert client.get("/audit/verify").get_json()["intact"]


# The same q on both backends finds the same records.
MESSAGES = [
    "payment retrying for invoice 42", "Payment FAILED: card declined", "café au lait served",
    "GET /api/v1/users?id=7 200", "connection from 10.0.0.1:5432 refused",
    "user_name=alice logged in", "retry-after 30 seconds", "invoices sent in bulk",
    "naïve résumé parsing", "Пример сообщения на русском",
]
QUERIES = [
    "payment", "PAYMENT", '"payment retrying"', "retry*", "invoice*", "cafe", "café",
    "payment NOT failed", "payment OR invoices", "10.0.0.1", "users 200", '"api v1"',
    "user_name", "naive resume", "retry after", "сообщения", "declined OR served NOT café",
    "nothing", "invoice OR card NOT declined", "pars*",
]


def test_full_text_finds_what_sqlite_finds(app, client, tmp_path):
    sqlite_app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/s.db"})
    sqlite_store = sqlite_app.extensions["store"]
    with sqlite_store.session():
        sqlite_store.migrate()
    batch = [record(message=message) for message in MESSAGES]
    sqlite_client = sqlite_app.test_client()
    assert post(sqlite_client, batch).status_code == 201
    assert post(client, batch).status_code == 201
    found = {query: ids(client, q=query) for query in QUERIES}
    assert found == {query: ids(sqlite_client, q=query) for query in QUERIES}
    assert sum(map(bool, found.values())) >= len(QUERIES) - 1  # the table means something
    sqlite_store.close()


def test_attribute_filters_and_groups_read_the_json(client):
    assert post(client, [record(attributes={"code": 5, "user": {"name": "ann"}}),
                         record(attributes={"code": "5"}), record(attributes={"code": 6})]
                ).status_code == 201
    assert ids(client, **{"attr.code": "5"}) == [1, 2]
    assert ids(client, **{"attr.user.name": "ann"}) == [1]
    counts = client.get("/logs/stats?by=attr.code").get_json()["counts"]
    assert sorted(counts, key=str) == sorted(
        [{"attributes": {"code": 5}, "count": 1}, {"attributes": {"code": "5"}, "count": 1},
         {"attributes": {"code": 6}, "count": 1}], key=str)


def test_concurrent_writers_make_one_gapless_chain(app):
    def send(worker):
        client = app.test_client()
        for batch in range(5):
            answer = post(client, [record(message=f"w{worker} b{batch} r{n}") for n in range(50)])
            assert answer.status_code == 201, answer.get_json()
            app.extensions["store"].release()

    threads = [threading.Thread(target=send, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client = app.test_client()
    with psycopg.connect(db.conninfo(app.config["DATABASE_URL"])) as other:
        every = [row[0] for row in other.execute("SELECT id FROM log_record")]
    assert sorted(every) == list(range(1, 6 * 5 * 50 + 1))
    assert client.get("/audit/verify").get_json() | {"head": None} == {
        "intact": True, "records": 1500, "pruned": 0, "head": None}


def test_one_idempotency_key_sent_twice_at_once_stores_one_batch(app):
    answers = []

    def send():
        answers.append(post(app.test_client(), [record(event_id=None)] * 3,
                            **{"Idempotency-Key": "same-key"}))
        app.extensions["store"].release()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [201] * 4
    assert {answer.get_json()["first_id"] for answer in answers} == {1}
    assert ids(app.test_client()) == [1, 2, 3]


def test_an_event_id_is_stored_once_across_writers_and_again_after_its_prune(make_app):
    app = make_app(RETENTION_DAYS=1)
    answers = []

    def send():
        answers.append(post(app.test_client(), [record(event_id="e-1", timestamp=days_ago(3))]))
        app.extensions["store"].release()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answer.get_json()["accepted"] for answer in answers) == [0, 0, 0, 1]
    store = app.extensions["store"]
    with store.session():
        assert store.prune(Retention(1), now_micros()).deleted == 1
    assert post(app.test_client(), [record(event_id="e-1")]).get_json()["accepted"] == 1


def test_prune_drops_whole_days_and_deletes_the_rest_in_batches(make_app):
    app = make_app(RETENTION_DAYS=2, RETENTION_RULES="service=chatty:1")
    client = app.test_client()
    old_day = (now_micros() - 10 * MICROS_PER_DAY) // partitions.DAY
    batch = ([record(timestamp=days_ago(10), message=f"old {n}") for n in range(30)]
             + [record(service="chatty", timestamp=days_ago(1.5)) for _ in range(20)]
             + [record(timestamp=days_ago(1.5), message="kept") for _ in range(5)]
             + [record(message="new")])
    assert post(client, batch).status_code == 201
    assert old_day in attached(app)
    store = app.extensions["store"]
    with store.session():
        assert store.count_expired(app.extensions["retention"], now_micros()) == 50
        report = store.prune(app.extensions["retention"], now_micros())
    assert report.deleted == 50
    assert old_day not in attached(app)
    assert sorted({item["message"] for item in client.get("/logs").get_json()["items"]}) == [
        "kept", "new"]
    total = client.get("/logs/stats").get_json()["total"]
    assert total == 6
    assert client.get("/logs/stats?by=service&since=30d").get_json()["counts"] == [
        {"service": "billing", "count": 6}]
    verified = client.get("/audit/verify").get_json()
    assert verified["intact"] and verified["pruned"] == 50


def test_prune_refuses_to_delete_an_altered_record(make_app):
    app = make_app(RETENTION_DAYS=1)
    assert post(app.test_client(), [record(timestamp=days_ago(5))] * 2).status_code == 201
    with psycopg.connect(db.conninfo(app.config["DATABASE_URL"]), autocommit=True) as other:
        other.execute("UPDATE log_record SET message = 'edited' WHERE id = 2")
    from collector.errors import MaintenanceError

    store = app.extensions["store"]
    with store.session(), pytest.raises(MaintenanceError, match="record 2"):
        store.prune(Retention(1), now_micros())
    assert app.test_client().get("/audit/verify").get_json()["broken_at"] == 2


def test_one_prune_schedule_and_one_prune_at_a_time(app):
    from collector.errors import MaintenanceError
    from collector.storage.postgres import maintenance

    store = app.extensions["store"]
    with store.prune_schedule() as first:
        assert first is not None
        with store.prune_schedule() as second:
            assert second is None
        first.write({"started": 1.0})
        assert store.peek_prune_schedule() == {"started": 1.0}
    with maintenance._run_lock(app.config), store.session(), pytest.raises(
            MaintenanceError, match="another prune"):
        store.prune(Retention(30), now_micros())


def test_one_miner_at_a_time(app):
    store = app.extensions["store"]
    with store.pattern_miner() as ledger:
        assert ledger is not None
        with store.pattern_miner() as other:
            assert other is None


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_no_server_answers_503_with_retry_after_then_recovers(app, client):
    url = app.config["DATABASE_URL"]
    down = create_app({"TESTING": True, "POSTGRES_CONNECT_TIMEOUT": 1,
                       "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none"})
    answer = post(down.test_client(), [record()])
    assert answer.status_code == 503 and answer.get_json()["error"] == "storage_unavailable"
    assert answer.headers["Retry-After"] == "5"
    assert down.test_client().get("/readyz").status_code == 503
    # The same process, pointed back at a server that answers, recovers.
    back = create_app({"TESTING": True, "DATABASE_URL": url})
    assert post(back.test_client(), [record()]).status_code == 201


def test_connections_terminated_by_the_server_recover_without_restart(app, client):
    assert post(client, [record()]).status_code == 201
    name = app.config["DATABASE_URL"].rsplit("/", 1)[1]
    with psycopg.connect(db.conninfo(app.config["DATABASE_URL"]), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
    statuses = [post(client, [record()]).status_code for _ in range(3)]
    assert statuses[-1] == 201 and set(statuses) <= {201, 503}
    assert client.get("/audit/verify").get_json()["intact"]


@pytest.mark.parametrize("settings, code", [
    ({"WRITE_LOCK_TIMEOUT": 0.2}, "storage_busy"),  # lock_timeout
    ({"WRITE_LOCK_TIMEOUT": 30, "POSTGRES_STATEMENT_TIMEOUT": 0.3}, "storage_timeout"),
])
def test_a_write_kept_waiting_answers_503(make_app, settings, code):
    app = make_app(**settings)
    with psycopg.connect(db.conninfo(app.config["DATABASE_URL"])) as other:
        other.execute("SELECT * FROM chain_head FOR UPDATE")  # held in its transaction
        answer = post(app.test_client(), [record()])
    assert answer.status_code == 503, answer.get_json()
    assert answer.get_json()["error"] == code
    assert "Retry-After" in answer.headers
    assert post(app.test_client(), [record()]).status_code == 201


@pytest.mark.parametrize("exc, expected", [
    (psycopg.errors.DiskFull("could not extend file"), StorageFull),
    (psycopg.errors.AdminShutdown("terminating connection"), StorageUnavailable),
    (psycopg.errors.CannotConnectNow("the database system is starting up"), StorageUnavailable),
    (psycopg.errors.DeadlockDetected("deadlock detected"), StorageBusy),
    (psycopg.OperationalError("connection refused"), StorageUnavailable),
])
def test_postgres_failures_are_domain_errors(exc, expected):
    assert type(db.failure(exc)) is expected


def test_other_failures_stay_faults():
    assert db.failure(psycopg.errors.UndefinedTable("relation nowhere")) is None


def test_backup_and_restore_with_pg_dump(app, client, tmp_path, runner):
    assert post(client, [record(message=f"m{n}") for n in range(10)]).status_code == 201
    store = app.extensions["store"]
    with store.session():
        path = store.backup(tmp_path)
    assert path.suffix == ".dump" and path.stat().st_size > 0
    assert post(client, [record(message="after")]).status_code == 201
    store.close()
    store.restore(path)
    assert len(ids(client)) == 10
    assert client.get("/audit/verify").get_json()["records"] == 10
    from collector.errors import MaintenanceError

    (tmp_path / "junk.dump").write_text("not a dump")
    with pytest.raises(MaintenanceError, match="not a pg_dump archive"):
        store.restore(tmp_path / "junk.dump")


def test_migrate_to_postgres_copies_keys_and_chain(tmp_path, postgres_url):
    import subprocess

    from server import BIN, REPO

    from collector import keys

    source = tmp_path / "collector.db"
    sqlite_app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{source}",
                             "RETENTION_DAYS": 1})
    sqlite_store = sqlite_app.extensions["store"]
    with sqlite_store.session():
        sqlite_store.migrate()
        _api_key, key = keys.create_key(sqlite_store, "shipper", "ingest,read")
    sqlite_client = sqlite_app.test_client()
    batch = ([record(timestamp=days_ago(3), message="old")] * 5
             + [record(event_id=f"e{n}", attributes={"n": n, "b": [1, 2.5]}) for n in range(20)])
    assert post(sqlite_client, batch).status_code == 201
    with sqlite_store.session():
        assert sqlite_store.prune(Retention(1), now_micros()).deleted == 5
        expected = sqlite_store.verify()
    sqlite_store.close()
    assert expected.intact and expected.pruned == 5

    done = subprocess.run(
        ["make", "--no-print-directory", "migrate-to-postgres", f"DATABASE_URL={postgres_url}",
         f"FROM={source}"], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"PATH": f"{BIN}:/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "copied 20 records, 1 API keys" in done.stdout
    assert "intact, 20 records (5 pruned)" in done.stdout

    app = create_app({"TESTING": True, "DATABASE_URL": postgres_url, "AUTH": "on"})
    client = app.test_client()
    verified = client.get("/audit/verify", headers={"Authorization": f"Bearer {key}"})
    assert verified.status_code == 403  # the key came along with its scopes
    answer = post(client, [record(event_id="e3"), record(event_id="new")],
                  Authorization=f"Bearer {key}")
    assert answer.get_json()["accepted"] == 1 and answer.get_json()["first_id"] == 26
    store = app.extensions["store"]
    with store.session():
        moved = store.verify()
    assert moved.intact and (moved.records, moved.pruned) == (21, 5)
    with store.session():
        first = store.record(6)
    assert first.attributes == '{"n":0,"b":[1,2.5]}'
    store.close()


def test_nul_characters_round_trip_and_keep_the_chain(client):
    odd = "nul\x00 and \uffff0 mark"
    answer = post(client, [record(message=odd, service="s\x00", event_id="e\x00",
                                  attributes={"k": "v\x00"}), record(message="\uffff1")])
    assert answer.status_code == 201, answer.get_json()
    assert client.get("/logs/1").get_json()["message"] == odd
    assert client.get("/logs/2").get_json()["message"] == "\uffff1"
    assert ids(client, service="s\x00") == [1]
    assert ids(client, **{"attr.k": "x"}) == []  # the escape \u0000 is no fault for jsonb
    assert post(client, [record(service="s\x00", event_id="e\x00")]).get_json()["duplicates"] == 1
    assert client.get("/audit/verify").get_json()["intact"]
