"""API keys: scopes, 401 and 403 answers, service restrictions, rate limits and the CLI."""

import hashlib
import http.client
import os
import sqlite3
import time
from contextlib import closing

import orjson
import pytest
from helpers import create_key, record, request, run_threads
from server import Server

from collector import keys as api_keys
from collector.ingest import writer
from config import Config

OPEN_ENDPOINTS = ["/healthz", "/readyz", "/openapi.json", "/docs"]
PROTECTED = [  # (method, path, scope)
    ("POST", "/ingest", "ingest"),
    ("GET", "/logs", "read"),
    ("GET", "/logs/stats", "read"),
    ("GET", "/logs/export", "read"),
    ("GET", "/logs/1", "read"),
    ("GET", "/metrics", "read"),
    ("GET", "/audit/verify", "admin"),
]


@pytest.fixture
def secured(make_app):
    """An app that requires API keys, as one listening beyond loopback does."""
    return make_app(AUTH_REQUIRED=True)


@pytest.fixture
def keys(secured):
    """A key for each scope, and one for billing's records only."""
    made = {scope: make_key(secured, scope, scope) for scope in api_keys.SCOPES}
    made["billing"] = make_key(secured, "billing", "ingest", services="billing")
    return made


def make_key(app, name, scopes, **options):
    """Create a key in ``app``'s store; the key."""
    store = app.extensions["store"]
    with store.session():
        return api_keys.create_key(store, name, scopes, **options)[1]


def call(client, method, path, key=None, header="Authorization", **kwargs):
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers[header] = f"Bearer {key}" if header == "Authorization" else key
    if method == "POST" and "json" not in kwargs and "data" not in kwargs:
        kwargs["json"] = [record()]
    return client.open(path, method=method, headers=headers, **kwargs)


def assert_error(response, status, error):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json and response.get_json()["error"] == error
    assert response.get_json()["message"]


@pytest.mark.parametrize("method, path, scope", PROTECTED)
def test_no_key_is_a_401_with_a_json_body(secured, stored_count, method, path, scope):
    response = call(secured.test_client(), method, path)
    assert_error(response, 401, "missing_api_key")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="collector"'
    assert stored_count() == 0


@pytest.mark.parametrize("path", OPEN_ENDPOINTS)
def test_health_and_docs_need_no_key(secured, path):
    assert secured.test_client().get(path).status_code == 200


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer clk_not-a-key-anyone-was-given"},
    {"authorization": "bearer clk_not-a-key-anyone-was-given"},
    {"X-API-Key": "clk_not-a-key-anyone-was-given"},
    {"Authorization": "Bearer "},
    {"X-API-Key": " "},
], ids=["unknown bearer", "lower case", "unknown x-api-key", "empty bearer", "empty x-api-key"])
def test_a_bad_key_is_a_401(secured, keys, headers):
    assert_error(secured.test_client().get("/logs", headers=headers), 401, "invalid_api_key")


def test_another_authorization_scheme_is_no_key(secured, keys):
    """A proxy's Basic credentials are not for the collector: no key, not a bad one."""
    basic = {"Authorization": "Basic dXNlcjpwYXNz"}
    assert_error(secured.test_client().get("/logs", headers=basic), 401, "missing_api_key")
    with_key = {**basic, "X-API-Key": keys["read"]}
    assert secured.test_client().get("/logs", headers=with_key).status_code == 200


@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
@pytest.mark.parametrize("method, path, scope", PROTECTED)
def test_each_scope_opens_its_endpoints_and_no_other(secured, keys, header, method, path,
                                                     scope):
    client = secured.test_client()
    for key_scope in ("ingest", "read"):
        response = call(client, method, path, keys[key_scope], header)
        if key_scope == scope:
            assert response.status_code in (200, 201, 404), response.get_data(as_text=True)
        else:
            assert_error(response, 403, "insufficient_scope")
            assert response.get_json()["required_scope"] == scope
    # admin has every scope
    assert call(client, method, path, keys["admin"], header).status_code in (200, 201, 404)


def test_keys_are_stored_as_hashes_only(secured, keys, db_path):
    with closing(sqlite3.connect(db_path)) as connection:
        stored = dict(connection.execute("SELECT name, key_hash FROM api_key").fetchall())
        dump = "\n".join(connection.iterdump())
    for name, key in keys.items():
        assert key not in dump
        assert stored[name] == hashlib.sha256(key.encode()).hexdigest()
    assert all(key.startswith("clk_") and len(key) >= 40 for key in keys.values())
    assert len(set(keys.values())) == len(keys)


def test_a_revoked_key_stops_working_at_once(secured, keys):
    client = secured.test_client()
    assert call(client, "GET", "/logs", keys["read"]).status_code == 200
    store = secured.extensions["store"]
    with store.session():
        store.revoke_key("read", 0)
    assert_error(call(client, "GET", "/logs", keys["read"]), 401, "invalid_api_key")


def test_each_record_remembers_its_key(secured, keys, db_path):
    client = secured.test_client()
    answer = call(client, "POST", "/ingest", keys["ingest"],
                  headers={"Prefer": "return=representation"}).get_json()
    assert answer["items"][0]["api_key_id"] == key_id(db_path, "ingest")
    document = call(client, "GET", f"/logs/{answer['first_id']}", keys["read"]).get_json()
    assert document["api_key_id"] == key_id(db_path, "ingest")


def test_records_can_be_found_by_the_key_that_sent_them(secured, keys, db_path):
    client = secured.test_client()
    call(client, "POST", "/ingest", keys["ingest"], json=[record(message="by ingest")] * 2)
    call(client, "POST", "/ingest", keys["admin"], json=[record(message="by admin")])
    for name, messages in (("ingest", ["by ingest"] * 2), ("admin", ["by admin"])):
        url = f"/logs?api_key_id={key_id(db_path, name)}"
        items = call(client, "GET", url, keys["read"]).get_json()["items"]
        assert [item["message"] for item in items] == messages
        stats = call(client, "GET", f"/logs/stats?api_key_id={key_id(db_path, name)}",
                     keys["read"]).get_json()
        assert stats["total"] == len(messages)
    assert_error(call(client, "GET", "/logs?api_key_id=x", keys["read"]), 400,
                 "invalid_parameter")


def key_id(db_path, name):
    with closing(sqlite3.connect(db_path)) as connection:
        return connection.execute("SELECT id FROM api_key WHERE name = ?", (name,)).fetchone()[0]


@pytest.mark.parametrize("mode", ["atomic", "partial"])
def test_a_key_restricted_to_services_cannot_write_another(secured, keys, stored_count, mode):
    client = secured.test_client()
    forged = [record(service="billing"), record(service="payments")]
    response = call(client, "POST", f"/ingest?mode={mode}", keys["billing"], json=forged)
    assert_error(response, 403, "service_not_allowed")
    assert "payments" in response.get_json()["message"]
    assert stored_count() == 0
    own = call(client, "POST", "/ingest", keys["billing"], json=[record(service="billing")])
    assert own.status_code == 201 and stored_count() == 1


def test_without_required_keys_anyone_may_call_but_a_presented_key_is_checked(app, client):
    assert client.post("/ingest", json=[record()]).status_code == 201
    assert client.get("/audit/verify").status_code == 200
    response = client.get("/logs", headers={"X-API-Key": "clk_made-up"})
    assert_error(response, 401, "invalid_api_key")
    assert client.get("/logs/1").get_json()["api_key_id"] is None


def test_a_presented_key_keeps_its_restrictions_without_required_keys(app, client):
    key = make_key(app, "reader", "read")
    response = call(client, "POST", "/ingest", key)
    assert_error(response, 403, "insufficient_scope")


@pytest.mark.parametrize("env, required", [
    ({}, False),
    ({"HOST": "127.0.0.1"}, False),
    ({"HOST": "localhost"}, False),
    ({"HOST": "::1"}, False),
    ({"HOST": "0.0.0.0"}, True),
    ({"HOST": "192.168.1.20"}, True),
    ({"HOST": "0.0.0.0", "AUTH": "off"}, False),
    ({"HOST": "127.0.0.1", "AUTH": "on"}, True),
    ({"HOST": "0.0.0.0", "AUTH": "auto"}, True),
    ({"HOST": "[::1]"}, False),
    ({"HOST": "127.0.0.2"}, False),
    ({"HOST": "127.attacker.example"}, True),
    ({"HOST": "::"}, True),
])
def test_keys_are_required_unless_loopback_only_or_turned_off(env, required):
    assert Config(env).AUTH_REQUIRED is required


def test_idempotency_keys_belong_to_their_api_key(secured, keys, stored_count):
    client = secured.test_client()
    for name in ("ingest", "admin"):
        response = call(client, "POST", "/ingest", keys[name],
                        headers={"Idempotency-Key": "batch-1"}, json=[record()])
        assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    assert stored_count() == 2


def test_last_use_is_recorded(secured, keys, db_path, monkeypatch):
    call(secured.test_client(), "GET", "/logs", keys["read"])
    with closing(sqlite3.connect(db_path)) as connection:
        used = dict(connection.execute("SELECT name, last_used_at FROM api_key").fetchall())
    assert used["read"] is not None and used["ingest"] is None


# Rate limits

class Clock:
    def __init__(self):
        self.now = 1_800_000_000_000_000

    def __call__(self):
        return self.now


def test_a_rate_limited_key_gets_429_with_retry_after(secured, stored_count, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(writer, "now_micros", clock)
    key = make_key(secured, "slow", "ingest", rate_limit=5)
    client = secured.test_client()
    batch = [record(message=f"m{i}") for i in range(20)]
    assert call(client, "POST", "/ingest", key, json=batch).status_code == 201  # 15 in debt
    response = call(client, "POST", "/ingest", key, json=[record()])
    assert_error(response, 429, "rate_limited")
    assert response.headers["Retry-After"] == "3"
    assert stored_count() == 20
    clock.now += 2_900_000  # not quite paid back
    assert call(client, "POST", "/ingest", key, json=[record()]).status_code == 429
    clock.now += 200_000
    assert call(client, "POST", "/ingest", key, json=[record()]).status_code == 201
    assert stored_count() == 21


def test_a_clock_stepped_back_does_not_lock_a_key_out(secured, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(writer, "now_micros", clock)
    key = make_key(secured, "slow", "ingest", rate_limit=10)
    client = secured.test_client()
    assert call(client, "POST", "/ingest", key, json=[record()] * 5).status_code == 201
    clock.now -= 60_000_000  # NTP steps the clock back a minute
    assert call(client, "POST", "/ingest", key, json=[record()] * 5).status_code == 201


def test_skipped_duplicates_are_not_charged(secured, monkeypatch):
    monkeypatch.setattr(writer, "now_micros", Clock())
    key = make_key(secured, "slow", "ingest", rate_limit=3)
    client = secured.test_client()
    batch = [record(event_id=f"e{i}") for i in range(3)]
    assert call(client, "POST", "/ingest", key, json=batch).status_code == 201  # bucket empty
    again = call(client, "POST", "/ingest", key, json=batch)  # a shipper's retry
    assert again.status_code == 201 and again.get_json()["duplicates"] == 3
    assert call(client, "POST", "/ingest", key).status_code == 429  # a new record is charged


def test_a_rate_limit_holds_one_key_only(secured, keys, monkeypatch):
    monkeypatch.setattr(writer, "now_micros", Clock())
    key = make_key(secured, "slow", "ingest", rate_limit=1)
    client = secured.test_client()
    call(client, "POST", "/ingest", key, json=[record()] * 3)
    assert call(client, "POST", "/ingest", key).status_code == 429
    assert call(client, "POST", "/ingest", keys["ingest"]).status_code == 201


@pytest.mark.e2e
def test_a_rate_limit_holds_across_workers(tmp_path):
    database_path = tmp_path / "collector.db"
    rate, batch = 100, 10
    key = create_key(database_path, "limited", "ingest", rate_limit=rate)
    body = orjson.dumps([record(message=f"m{i}") for i in range(batch)])
    statuses = []
    with Server(tmp_path, database_path, env={"WORKERS": "2"}) as server:
        started = time.monotonic()

        def client():
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            for _ in range(30):
                status, _ = request(server.port, "POST", "/ingest", body, {
                    "Content-Type": "application/json", "X-API-Key": key,
                    "Prefer": "return=minimal"}, connection)
                statuses.append(status)
            connection.close()

        run_threads(client, [()] * 4)
        elapsed = time.monotonic() - started
    accepted = statuses.count(201) * batch
    assert set(statuses) == {201, 429}
    # One bucket for both workers: one second's worth up front, then the rate, plus the
    # one batch a non-empty bucket lets through into debt.
    assert accepted <= rate * (1 + elapsed) + batch, (accepted, elapsed)


# The command line

def test_key_commands_create_list_and_revoke(runner, db_path):
    created = runner.invoke(args=["keys", "create", "billing", "--scopes", "ingest",
                                  "--services", "billing,invoices", "--rate-limit", "500"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert key.startswith("clk_") and "\n" not in key  # stdout holds the key alone
    assert "shown only this once" in created.stderr

    listed = runner.invoke(args=["keys", "list"])
    assert listed.exit_code == 0
    assert "billing" in listed.output and "invoices" in listed.output and "500/s" in listed.output
    assert "active" in listed.output
    assert key not in listed.output and key[4:12] not in listed.output

    again = runner.invoke(args=["keys", "create", "billing", "--scopes", "read"])
    assert again.exit_code != 0 and "already named" in again.output
    assert runner.invoke(args=["keys", "revoke", "billing"]).exit_code == 0
    assert "revoked" in runner.invoke(args=["keys", "list"]).output
    assert runner.invoke(args=["keys", "revoke", "billing"]).exit_code != 0
    # the name is free again once revoked
    assert runner.invoke(args=["keys", "create", "billing", "--scopes", "ingest"]).exit_code == 0


@pytest.mark.parametrize("args, problem", [
    (["--scopes", "write"], "scopes among ingest, read, admin"),
    (["--scopes", ""], "scopes among ingest, read, admin"),
    (["--scopes", "read", "--rate-limit", "0"], "records a second, a number from"),
    (["--scopes", "read", "--rate-limit", "1e-310"], "records a second, a number from"),
    (["--scopes", "read", "--rate-limit", "inf"], "records a second, a number from"),
    (["--scopes", "read", "--rate-limit", "2e6"], "records a second, a number from"),
    (["--scopes", "read", "--services", " , "], "leave it out for any service"),
])
def test_bad_key_requests_are_refused(runner, args, problem):
    result = runner.invoke(args=["keys", "create", "someone", *args])
    assert result.exit_code != 0 and problem in result.output


def test_the_first_start_with_required_keys_writes_an_admin_key_for_the_operator(
        make_app, db_path):
    app = make_app(AUTH_REQUIRED=True)
    result = app.test_cli_runner().invoke(args=["migrate"])
    key_file = db_path.with_name("admin.key")
    assert result.exit_code == 0 and str(key_file) in result.output
    key = key_file.read_text().strip()
    assert key not in result.output
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    response = app.test_client().get("/audit/verify", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    key_file.unlink()
    app.test_cli_runner().invoke(args=["migrate"])
    assert not key_file.exists()  # only when no key was ever created


def test_no_first_key_when_keys_are_not_required(runner, db_path):
    assert runner.invoke(args=["migrate"]).exit_code == 0
    assert not db_path.with_name("admin.key").exists()


@pytest.mark.e2e
@pytest.mark.sqlite_only("the first admin key is written beside the SQLite file (on PostgreSQL"
                         " to the working directory's data/, here the checkout's)")
def test_a_collector_requiring_keys_serves_with_the_first_key(tmp_path):
    database_path = tmp_path / "collector.db"
    with Server(tmp_path, database_path, env={"AUTH": "on", "WORKERS": "1"}) as server:
        key = database_path.with_name("admin.key").read_text().strip()
        for headers, status in (({}, 401), ({"Authorization": f"Bearer {key}"}, 201)):
            assert request(server.port, "POST", "/ingest", orjson.dumps([record()]),
                           {"Content-Type": "application/json", **headers})[0] == status
        assert request(server.port, "GET", "/healthz")[0] == 200
