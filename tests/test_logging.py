"""The collector's own logs: JSON lines with a request id, echoed to the client; probes quiet."""

import logging
import re

import orjson
import pytest
from helpers import create_key, exchange, record
from server import Server

from collector.ops.logging import JsonFormatter

GENERATED = re.compile(r"[0-9a-f]{32}")


def test_a_sane_request_id_is_echoed(client):
    response = client.get("/healthz", headers={"X-Request-ID": "abc.DEF-123_x"})
    assert response.headers["X-Request-ID"] == "abc.DEF-123_x"


@pytest.mark.parametrize("given", [
    None, "", "a" * 129, "has space", 'quote"d', "new\\nline", "ünïcode", "a;b", "<script>",
])
def test_a_missing_or_hostile_request_id_is_replaced(client, given):
    headers = {} if given is None else {"X-Request-ID": given}
    response = client.get("/healthz", headers=headers)
    assert GENERATED.fullmatch(response.headers["X-Request-ID"])


def test_every_request_gets_its_own_id(client):
    ids = {client.get("/healthz").headers["X-Request-ID"] for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize("method, path, body, status", [
    ("GET", "/nowhere", None, 404),
    ("DELETE", "/ingest", None, 405),
    ("POST", "/ingest", b"[", 400),
    ("POST", "/ingest", orjson.dumps([record(severity="?")]), 422),
])
def test_error_answers_echo_the_request_id(client, method, path, body, status):
    response = client.open(path, method=method, data=body, content_type="application/json",
                           headers={"X-Request-ID": "req-1"})
    assert response.status_code == status
    assert response.headers["X-Request-ID"] == "req-1"


def test_an_unhandled_error_is_logged_as_json_with_the_request_id(make_app, caplog):
    app = make_app()

    @app.get("/boom")
    def boom():
        raise RuntimeError("kaboom")

    with caplog.at_level(logging.ERROR, logger="collector.errors"):
        response = app.test_client().get("/boom", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "req-500"
    [logged] = caplog.records
    line = orjson.loads(JsonFormatter().format(logged))
    assert line["level"] == "error"
    assert line["message"] == "unhandled error"
    assert line["request_id"] == "req-500"
    assert line["path"] == "/boom"
    assert "RuntimeError: kaboom" in line["exception"]


def send(port, method, path, body=None, headers=None):
    status, _, response_headers = exchange(port, method, path, body, headers)
    return status, response_headers.get("X-Request-ID")


@pytest.mark.e2e
def test_gunicorn_writes_json_lines_with_request_ids_and_no_probes(tmp_path):
    database = tmp_path / "collector.db"
    secret = create_key(database, "shipper", "ingest,read")
    wrong = "clk_not-a-key-but-just-as-secret"
    with Server(tmp_path, database, env={"WORKERS": "2", "ACCESS_LOG": "1"}) as server:
        given = send(server.port, "POST", "/ingest?mode=partial", orjson.dumps([record()]),
                     {"Content-Type": "application/json", "X-Request-ID": "client-id-1",
                      "Authorization": f"Bearer {secret}", "User-Agent": "shipper/1.0"})
        generated = send(server.port, "GET", "/logs/999", headers={"X-API-Key": secret})
        refused = send(server.port, "GET", "/logs/1", headers={"Authorization": f"Bearer {wrong}",
                                                                "X-Request-ID": "client-id-2"})
        for _ in range(3):
            send(server.port, "GET", "/healthz")
            send(server.port, "GET", "/readyz")
    assert given == (200, "client-id-1")
    assert generated[0] == 404 and GENERATED.fullmatch(generated[1])

    assert refused == (401, "client-id-2")
    text = server.log_path.read_text()
    assert secret not in text and wrong not in text
    assert secret[4:12] not in text and wrong[4:12] not in text  # not even part of one
    lines = [orjson.loads(line) for line in text.splitlines()]  # every line is JSON
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    # Two workers write their lines as they finish: one may land after the next request's.
    assert sorted((line["method"], line["path"], line["status"], line["request_id"])
                  for line in access) \
        == sorted([("POST", "/ingest", 200, "client-id-1"), ("GET", "/logs/999", 404,
                    generated[1]), ("GET", "/logs/1", 401, "client-id-2")])
    first = next(line for line in access if line["path"] == "/ingest")
    assert first["query"] == "mode=partial"
    assert first["user_agent"] == "shipper/1.0"
    assert first["remote"] == "127.0.0.1"
    assert first["bytes"] > 0 and first["duration_ms"] > 0
    assert {"time", "level", "pid", "message"} <= first.keys()
    assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["message"]
               for line in lines)


@pytest.mark.e2e
def test_access_log_off_writes_no_access_lines(tmp_path):
    # ACCESS_LOG=0
    with Server(tmp_path, tmp_path / "collector.db", env={"WORKERS": "1"}) as server:
        assert send(server.port, "GET", "/logs/1")[0] == 404
    lines = [orjson.loads(line) for line in server.log_path.read_text().splitlines()]
    assert lines and not [line for line in lines if line["logger"] == "gunicorn.access"]
