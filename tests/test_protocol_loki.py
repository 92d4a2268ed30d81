"""Loki's push API, POST /loki/api/v1/push: JSON and snappy protobuf, as Loki reads them."""

import gzip

import cramjam
import pytest
from wire import NOW_MICROS_TEXT, NOW_NS, loki_json, loki_protobuf, send_hostile, stored

from collector.errors import StorageBusy
from collector.ingest.protocols.loki import parse_labels

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
TRACE = "5b8efff798038103d269b633813fc60c"


def push(client, body, content_type=JSON, **headers):
    return client.post("/loki/api/v1/push", data=body,
                       headers={"Content-Type": content_type, **headers})


def test_a_promtail_push_becomes_records(client):
    body = loki_protobuf({
        '{service_name="checkout", level="error", host="web-1", env="prod"}': [
            (NOW_NS, "payment declined", {"trace_id": TRACE, "order": "42"}),
            (NOW_NS + 1_000, "retrying"),
        ],
        '{job="varlogs", filename="/var/log/syslog"}': [(NOW_NS, "kernel: eth0 up")],
    })
    response = push(client, body, PROTOBUF)
    assert response.status_code == 204 and response.data == b""
    first, second, third = stored(client)
    assert first["service"] == "checkout" and first["severity"] == "ERROR"
    assert first["host"] == "web-1" and first["trace_id"] == TRACE
    assert first["timestamp"] == NOW_MICROS_TEXT
    assert first["attributes"] == {"env": "prod", "order": "42"}
    assert second["message"] == "retrying" and second["attributes"] == {"env": "prod"}
    assert {third["service"], third["severity"]} == {"varlogs", "INFO"}
    assert third["attributes"] == {"filename": "/var/log/syslog"}


@pytest.mark.parametrize("labels, service, level", [
    ({"service_name": "a", "service": "b", "app": "c", "job": "d"}, "a", "INFO"),
    ({"service": "b", "app": "c"}, "b", "INFO"),
    ({"app": "c", "job": "d", "detected_level": "warn"}, "c", "WARN"),
    ({"job": "d", "severity": "critical"}, "d", "CRITICAL"),
    ({"other": "x", "level": "debug", "severity": "error"}, "unknown_service", "DEBUG"),
])
def test_labels_name_the_service_and_the_level(client, labels, service, level):
    assert push(client, loki_json([(labels, [[str(NOW_NS), "m"]])])).status_code == 204
    (stored_record,) = stored(client)
    assert (stored_record["service"], stored_record["severity"]) == (service, level)


def test_json_push_with_structured_metadata_and_compression(client):
    body = loki_json([({"app": "api", "level": "info"}, [
        [str(NOW_NS), "GET /health 200", {"trace_id": TRACE, "user": "7"}],
        [str(NOW_NS + 1), "GET /orders 200"],
    ])])
    response = push(client, gzip.compress(body), **{"Content-Encoding": "gzip"})
    assert response.status_code == 204
    first, second = stored(client)
    assert first["attributes"] == {"user": "7"} and first["trace_id"] == TRACE
    assert second["attributes"] == {}


def test_snappy_content_encoding_is_tolerated(client):
    body = loki_protobuf({'{app="a"}': [(NOW_NS, "m")]})
    assert push(client, body, PROTOBUF, **{"Content-Encoding": "snappy"}).status_code == 204


def test_refused_entries_are_named_and_the_others_stored(client):
    body = loki_json([({"app": "a"}, [[str(NOW_NS), "ok"], [str(NOW_NS), ""]]),
                      ({"app": "b", "level": "LOUD"}, [[str(NOW_NS), "bad level"]])])
    response = push(client, body)
    assert response.status_code == 400
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert text.startswith("2 of 3 entries were refused, the others stored")
    assert "entry 1 of stream '{app=\"a\"}' refused: message" in text
    assert "entry 0 of stream '{app=\"b\", level=\"LOUD\"}' refused: severity" in text
    assert [r["message"] for r in stored(client)] == ["ok"]


def test_an_empty_push_is_a_success(client, stored_count):
    assert push(client, b'{"streams": []}').status_code == 204
    assert push(client, loki_protobuf({}), PROTOBUF).status_code == 204
    assert stored_count() == 0


@pytest.mark.parametrize("text, labels", [
    ('{app="web"}', {"app": "web"}),
    ('{ app = "web" , env="prod" }', {"app": "web", "env": "prod"}),
    ('{msg="say \\"hi\\"\\n\\\\", u="\\u00e9\\x41"}', {"msg": 'say "hi"\n\\', "u": "éA"}),
    ("{}", {}),
])
def test_label_selectors_are_parsed_with_their_escapes(text, labels):
    assert parse_labels(text) == labels


def test_errors_are_text_and_overload_a_503_with_retry_after(app, client, monkeypatch):
    def busy(batch):
        raise StorageBusy()

    monkeypatch.setattr(app.extensions["writer"], "ingest", busy)
    response = push(client, loki_json([({"app": "a"}, [[str(NOW_NS), "m"]])]))
    assert response.status_code == 503
    assert response.mimetype == "text/plain"
    assert response.headers["Retry-After"] == "1"
    assert response.get_data(as_text=True).startswith("storage_busy: ")


def test_a_missing_key_is_a_401_asking_for_basic_credentials(make_app, stored_count):
    client = make_app(AUTH_REQUIRED=True).test_client()
    response = push(client, loki_json([({"app": "a"}, [[str(NOW_NS), "m"]])]))
    assert response.status_code == 401 and response.mimetype == "text/plain"
    assert response.headers["WWW-Authenticate"] == 'Basic realm="collector"'
    assert stored_count() == 0


# Hostile input: a 4xx in Loki's shape (text), nothing stored, never a 500.

def _values(*values):
    return loki_json([({"app": "a"}, list(values))])


VALID = loki_protobuf({'{app="a"}': [(NOW_NS, "m", {"trace_id": TRACE})]})
RAW = cramjam.snappy.decompress_raw(VALID)
HOSTILE = [
    # (id, content type, headers, body, status)
    ("truncated protobuf", PROTOBUF, {}, bytes(cramjam.snappy.compress_raw(bytes(RAW)[:-4])),
     400),
    ("protobuf not snappy", PROTOBUF, {}, bytes(RAW), 400),
    ("truncated snappy", PROTOBUF, {}, VALID[:-5], 400),
    ("snappy bomb", PROTOBUF, {}, bytes(cramjam.snappy.compress_raw(b"\x00" * 20_000_000)),
     413),
    ("gzip bomb", JSON, {"Content-Encoding": "gzip"},
     gzip.compress(b" " * (64 * 1024**2), compresslevel=9), 413),
    ("brotli", JSON, {"Content-Encoding": "br"}, _values([str(NOW_NS), "m"]), 415),
    ("no content type", None, {}, _values([str(NOW_NS), "m"]), 415),
    ("json nested 10,000 deep", JSON, {}, b"[" * 10_000 + b"]" * 10_000, 400),
    ("labels nested 10,000 deep", JSON, {},
     b'{"streams":[{"stream":' + b'{"a":' * 10_000 + b'"b"' + b"}" * 10_000 + b"}]}", 400),
    ("not json", JSON, {}, b"streams=1", 400),
    ("body an array", JSON, {}, b"[]", 400),
    ("streams an object", JSON, {}, b'{"streams": {}}', 400),
    ("stream a string", JSON, {}, b'{"streams": ["x"]}', 400),
    ("labels a list", JSON, {}, b'{"streams": [{"stream": ["a"], "values": []}]}', 400),
    ("label value a number", JSON, {}, b'{"streams": [{"stream": {"a": 1}, "values": []}]}',
     400),
    ("no labels", JSON, {}, loki_json([({}, [[str(NOW_NS), "m"]])]), 400),
    ("bad label name", JSON, {}, loki_json([({"a-b": "c"}, [[str(NOW_NS), "m"]])]), 400),
    ("unparsable selector", PROTOBUF, {}, loki_protobuf({"app=a": [(NOW_NS, "m")]}), 400),
    ("duplicate label", PROTOBUF, {}, loki_protobuf({'{a="1", a="2"}': [(NOW_NS, "m")]}), 400),
    ("values an object", JSON, {}, b'{"streams": [{"stream": {"a": "b"}, "values": {}}]}', 400),
    ("time a number", JSON, {}, _values([NOW_NS, "m"]), 400),
    ("time not digits", JSON, {}, _values(["2025-11-24T16:00:00Z", "m"]), 400),
    ("time beyond 64 bits", JSON, {}, _values(["9" * 40, "m"]), 400),
    ("line a number", JSON, {}, _values([str(NOW_NS), 7]), 400),
    ("entry of one", JSON, {}, _values([str(NOW_NS)]), 400),
    ("metadata a list", JSON, {}, _values([str(NOW_NS), "m", ["x"]]), 400),
    ("metadata value a number", JSON, {}, _values([str(NOW_NS), "m", {"k": 1}]), 400),
    ("trace id of 31 digits", JSON, {}, _values([str(NOW_NS), "m", {"trace_id": TRACE[:31]}]),
     400),
    ("span id not hex", PROTOBUF, {}, loki_protobuf({'{a="b"}': [
        (NOW_NS, "m", {"span_id": "zz" * 8})]}), 400),
    ("empty line", JSON, {}, _values([str(NOW_NS), ""]), 400),
    ("time in 2999", JSON, {}, _values([str(32_503_680_000 * 10**9), "m"]), 400),
    ("nanos out of range", PROTOBUF, {}, b"", 400),  # filled below
]


def _bad_nanos():
    from collector.ingest.protocols.loki import PushRequest

    request = PushRequest()
    stream = request.streams.add()
    stream.labels = '{a="b"}'
    entry = stream.entries.add()
    entry.timestamp.seconds, entry.timestamp.nanos, entry.line = 1, -5, "m"
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


HOSTILE[-1] = (*HOSTILE[-1][:3], _bad_nanos(), 400)


@pytest.mark.parametrize("case", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_input_is_refused_in_lokis_shape_and_nothing_is_stored(client, stored_count,
                                                                        case):
    response = send_hostile(client, "/loki/api/v1/push", case)
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True).strip()
    assert stored_count() == 0
