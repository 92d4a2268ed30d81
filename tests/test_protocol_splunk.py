"""Splunk's HTTP Event Collector, POST /services/collector/event: envelopes built to its docs."""

import gzip

import pytest
from wire import hec, stored

from collector.errors import StorageBusy


def send(client, body, path="/services/collector/event", **headers):
    return client.post(path, data=body, headers={"Content-Type": "application/json", **headers})


def hec_answer(response, status, code):
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["code"] == code and body["text"]
    return body


@pytest.mark.parametrize("separator", [b"", b"\n", b"\r\n", b" \n\t"])
def test_concatenated_envelopes_become_records(client, separator):
    body = hec({"time": 1_767_225_600.25, "host": "web-1", "source": "billing",
                "sourcetype": "_json", "index": "main",
                "event": {"message": "invoice 42 sent", "level": "warn", "invoice": 42},
                "fields": {"region": "eu", "tags": ["a", "b"]}},
               {"event": "a plain line", "sourcetype": "syslog"}, separator=separator)
    assert hec_answer(send(client, body), 200, 0) == {"text": "Success", "code": 0}
    first, second = stored(client)
    assert first["service"] == "billing" and first["severity"] == "WARN"
    assert first["message"] == "invoice 42 sent" and first["host"] == "web-1"
    assert first["timestamp"] == "2026-01-01T00:00:00.250000Z"
    assert first["attributes"] == {"invoice": 42, "region": "eu", "tags": ["a", "b"],
                                   "source": "billing", "sourcetype": "_json", "index": "main"}
    assert (second["service"], second["message"], second["severity"]) == (
        "syslog", "a plain line", "INFO")


def test_event_shapes(client):
    body = hec({"event": {"user": 7, "action": "login"}, "fields": {"service": "auth"}},
               {"event": 42}, {"event": "m", "time": "1767225600"},
               {"event": "m", "fields": {"severity": "error", "service.name": "pay"}})
    hec_answer(send(client, body, "/services/collector"), 200, 0)
    structured, number, text_time, named = stored(client)
    assert structured["service"] == "auth"
    assert structured["message"] == '{"user":7,"action":"login"}'  # no message field: the JSON
    assert structured["attributes"] == {"user": 7, "action": "login"}
    assert (number["message"], number["service"]) == ("42", "unknown_service")
    assert text_time["timestamp"] == "2026-01-01T00:00:00.000000Z"
    assert (named["service"], named["severity"]) == ("pay", "ERROR")


def test_the_raw_endpoint_takes_lines_and_query_metadata(client):
    response = client.post("/services/collector/raw?source=nginx&host=edge-1&channel=c-1",
                           data=b"GET / 200\nGET /cart 404\n\n", content_type="text/plain")
    hec_answer(response, 200, 0)
    assert [(r["message"], r["service"], r["host"]) for r in stored(client)] == [
        ("GET / 200", "nginx", "edge-1"), ("GET /cart 404", "nginx", "edge-1")]


def test_gzip_is_read(client):
    hec_answer(send(client, gzip.compress(hec({"event": "m"})), **{"Content-Encoding": "gzip"}),
               200, 0)
    assert len(stored(client)) == 1


def test_health_and_ack(client):
    assert hec_answer(client.get("/services/collector/health"), 200, 17)["text"] == (
        "HEC is healthy")
    hec_answer(client.post("/services/collector/ack", json={"acks": [0]}), 400, 14)


def test_a_bad_event_refuses_the_batch_and_is_numbered(client, stored_count):
    body = hec({"event": "ok"}, {"event": "ok"}, {"time": "later", "event": "m"})
    answered = hec_answer(send(client, body), 400, 6)
    assert answered["invalid-event-number"] == 2
    assert stored_count() == 0


def test_the_key_goes_in_the_splunk_scheme(make_app, stored_count):
    from test_auth import make_key

    app = make_app(AUTH_REQUIRED=True)
    key = make_key(app, "hec", "ingest")
    client = app.test_client()
    missing = send(client, hec({"event": "m"}))
    hec_answer(missing, 401, 2)
    assert missing.headers["WWW-Authenticate"].startswith("Splunk")
    hec_answer(send(client, hec({"event": "m"}), Authorization="Splunk clk_unknown"), 401, 3)
    hec_answer(send(client, hec({"event": "m"}), Authorization=f"Splunk {key}"), 200, 0)
    assert stored_count() == 1


def test_overload_is_server_busy_with_retry_after(app, client, monkeypatch):
    def busy(batch):
        raise StorageBusy()

    monkeypatch.setattr(app.extensions["writer"], "ingest", busy)
    response = send(client, hec({"event": "m"}))
    hec_answer(response, 503, 9)
    assert response.headers["Retry-After"] == "1"


# Hostile input: a 4xx in HEC's shape, nothing stored, never a 500.

def _nested(depth):
    return b'{"event":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"


WRONG_VALUES = {"a number": 7, "a boolean": True, "a list": ["x"], "an object": {"k": "v"}}
HOSTILE = [
    # (id, headers, body, status, code, invalid event number)
    ("empty body", {}, b"", 400, 5, None),
    ("whitespace", {}, b" \n ", 400, 5, None),
    ("not json", {}, b"event=m", 400, 6, 0),
    ("truncated second event", {}, hec({"event": "m"}) + b'{"event": "m', 400, 6, 1),
    ("an array of envelopes", {}, b'[{"event": "m"}]', 400, 6, 0),
    ("a string envelope", {}, b'"m"', 400, 6, 0),
    ("nested 10,000 deep", {}, _nested(10_000), 400, 6, 0),
    ("nested 10,000 deep after one", {}, hec({"event": "m"}) + _nested(10_000), 400, 6, 1),
    ("NaN time", {}, b'{"event": "m", "time": NaN}', 400, 6, 0),
    ("invalid utf-8", {}, b'{"event": "\xff"}{"event": "m"}', 400, 6, 0),
    ("no event", {}, hec({"event": "m"}, {"time": 1}), 400, 12, 1),
    ("blank event", {}, hec({"event": ""}), 400, 13, 0),
    ("empty object event", {}, hec({"event": {}}), 400, 13, 0),
    ("null event", {}, hec({"event": None}), 400, 13, 0),
    ("nested fields", {}, hec({"event": "m", "fields": {"a": {"b": 1}}}), 400, 15, 0),
    ("fields a list", {}, hec({"event": "m", "fields": ["a"]}), 400, 15, 0),
    ("field a number", {}, hec({"event": "m", "fields": {"a": 1}}), 400, 15, 0),
    ("time a word", {}, hec({"event": "m", "time": "noon"}), 400, 6, 0),
    ("time an object", {}, hec({"event": "m", "time": {}}), 400, 6, 0),
    ("time in 2999", {}, hec({"event": "m", "time": 32_503_680_000}), 400, 6, 0),
    ("time in milliseconds", {}, hec({"event": "m", "time": 1_767_225_600_000}), 400, 6, 0),
    ("trace id of 31 digits", {}, hec({"event": "m", "fields": {"trace_id": "a" * 31}}), 400,
     6, 0),
    ("span id not hex", {}, hec({"event": {"message": "m", "span_id": "z" * 16}}), 400, 6, 0),
    ("event object nested 7 deep", {}, hec({"event": {"a": {"b": {"c": {"d": {"e": {"f": {
        "g": 1}}}}}}}}), 400, 6, 0),
    ("gzip bomb", {"Content-Encoding": "gzip"},
     gzip.compress(b" " * (64 * 1024**2), compresslevel=9), 413, 6, None),
    ("truncated gzip", {"Content-Encoding": "gzip"}, gzip.compress(hec({"event": "m"}))[:15],
     400, 6, None),
    ("brotli", {"Content-Encoding": "br"}, hec({"event": "m"}), 415, 6, None),
    *((f"{field} as {kind}", {}, hec({"event": "m", field: value}), 400, 6, 0)
      for field in ("host", "source", "sourcetype", "index")
      for kind, value in WRONG_VALUES.items()),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_input_is_refused_in_hecs_shape_and_nothing_is_stored(client, stored_count,
                                                                       case):
    _name, headers, body, status, code, number = case
    answered = hec_answer(send(client, body, **headers), status, code)
    assert answered.get("invalid-event-number") == number
    assert stored_count() == 0
