"""OTLP/HTTP logs, POST /v1/logs: bodies built to the specification, protobuf and JSON."""

import base64
import gzip
import zlib

import orjson
import pytest
from google.rpc import status_pb2
from helpers import record
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from wire import NOW_MICROS_TEXT, NOW_NS, otlp_json, otlp_request, send_hostile, stored

from collector.errors import StorageBusy
from collector.ingest import writer as write_path

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")
SPAN = bytes.fromhex("eee19b7ec3c1b174")


def export(client, body, content_type=PROTOBUF, **headers):
    if not isinstance(body, bytes):
        body = body.SerializeToString()
    return client.post("/v1/logs", data=body, headers={"Content-Type": content_type, **headers})


def response_of(response):
    assert response.status_code == 200, response.data
    assert response.mimetype == PROTOBUF
    return ExportLogsServiceResponse.FromString(response.data)


def status_of(response, status):
    """The google.rpc.Status of a failure answered in protobuf."""
    assert response.status_code == status, response.data
    assert response.mimetype == PROTOBUF
    return status_pb2.Status.FromString(response.data)


def test_a_python_sdk_record_becomes_a_record(client):
    request = otlp_request([{
        "time_unix_nano": NOW_NS, "observed_time_unix_nano": NOW_NS + 5_000_000,
        "severity_number": 13, "severity_text": "WARN", "body": "disk 91% full",
        "attributes": {"code.file.path": "/app/disk.py", "code.line.number": 42, "ratio": 0.91,
                       "ok": False, "tags": ["a", 1], "ctx": {"user": {"id": 7}}, "raw": b"\x01"},
        "trace_id": TRACE, "span_id": SPAN, "flags": 1,
    }], resource={"service.name": "billing", "telemetry.sdk.name": "opentelemetry",
                  "host.name": "web-1"})
    response = response_of(export(client, request))
    assert not response.HasField("partial_success")
    (stored_record,) = stored(client)
    assert stored_record["service"] == "billing"
    assert stored_record["severity"] == "WARN"
    assert stored_record["message"] == "disk 91% full"
    assert stored_record["timestamp"] == NOW_MICROS_TEXT
    assert stored_record["trace_id"] == TRACE.hex() and stored_record["span_id"] == SPAN.hex()
    assert stored_record["attributes"] == {
        "code": {"file": {"path": "/app/disk.py"}, "line": {"number": 42}},
        "ratio": 0.91, "ok": False, "tags": ["a", 1], "ctx": {"user": {"id": 7}},
        "raw": base64.b64encode(b"\x01").decode(),
        "telemetry": {"sdk": {"name": "opentelemetry"}}, "host": {"name": "web-1"},
        "otel": {"scope": {"name": "app.module", "version": "1.0"}},
    }


@pytest.mark.parametrize("number, text, level", [
    (1, "", "TRACE"), (4, "", "TRACE"), (5, "", "DEBUG"), (9, "INFO", "INFO"),
    (10, "", "NOTICE"), (13, "", "WARN"), (16, "", "WARN"), (17, "ERROR", "ERROR"),
    (18, "", "CRITICAL"), (21, "CRITICAL", "FATAL"), (24, "", "FATAL"),
    (9, "ERROR", "INFO"),  # the number decides
    (0, "Warning", "WARN"), (0, "err", "ERROR"), (0, "", "INFO"),
])
def test_the_severity_number_decides_the_level(client, number, text, level):
    export(client, otlp_request([{"severity_number": number, "severity_text": text,
                                  "body": "m"}]))
    assert stored(client)[0]["severity"] == level


def test_observed_time_stands_in_for_a_missing_time_and_ids_of_zeros_are_none(client):
    export(client, otlp_request([{"observed_time_unix_nano": NOW_NS, "body": "m",
                                  "trace_id": bytes(16), "span_id": bytes(8)},
                                 {"body": "no time at all"}]))
    first, second = stored(client)
    assert first["timestamp"] == NOW_MICROS_TEXT
    assert first["trace_id"] is None and first["span_id"] is None
    assert second["timestamp"] == second["received_at"]


def test_a_structured_body_is_its_json_text_and_no_service_is_unknown_service(client):
    export(client, otlp_request([{"body": {"event": "login", "user": 7}}], resource={}))
    (stored_record,) = stored(client)
    assert orjson.loads(stored_record["message"]) == {"event": "login", "user": 7}
    assert stored_record["service"] == "unknown_service"


def test_json_encoding_with_hex_ids_and_string_integers(client):
    body = otlp_json([{
        "timeUnixNano": str(NOW_NS), "severityNumber": 10, "severityText": "Information",
        "traceId": TRACE.hex().upper(), "spanId": SPAN.hex().upper(),
        "body": {"stringValue": "Example log record"},
        "attributes": [{"key": "int.attribute", "value": {"intValue": "10"}},
                       {"key": "double.attribute", "value": {"doubleValue": 637.704}},
                       {"key": "array.attribute", "value": {"arrayValue": {"values": [
                           {"stringValue": "many"}, {"stringValue": "values"}]}}},
                       {"key": "map.attribute", "value": {"kvlistValue": {"values": [
                           {"key": "some.map.key", "value": {"stringValue": "some value"}}]}}}],
        "unknownField": "ignored, as the specification says",
    }], service="my.service")
    response = export(client, body, JSON)
    assert response.status_code == 200
    assert response.mimetype == JSON
    assert response.get_json() == {}
    (stored_record,) = stored(client)
    assert stored_record["service"] == "my.service"
    assert stored_record["severity"] == "NOTICE"
    assert stored_record["trace_id"] == TRACE.hex() and stored_record["span_id"] == SPAN.hex()
    assert stored_record["attributes"]["int"] == {"attribute": 10}
    assert stored_record["attributes"]["double"] == {"attribute": 637.704}
    assert stored_record["attributes"]["array"] == {"attribute": ["many", "values"]}
    assert stored_record["attributes"]["map"] == {"attribute": {"some.map.key": "some value"}}


@pytest.mark.parametrize("encoding, compress", [("gzip", gzip.compress),
                                                ("deflate", zlib.compress)])
def test_compressed_bodies(client, encoding, compress):
    body = compress(otlp_request([{"body": "m"}] * 3).SerializeToString())
    response_of(export(client, body, **{"Content-Encoding": encoding}))
    assert len(stored(client)) == 3


@pytest.mark.parametrize("content_type, empty", [(PROTOBUF, b""), (JSON, b"{}")])
def test_an_empty_request_is_a_success(client, stored_count, content_type, empty):
    response = export(client, empty, content_type)
    assert response.status_code == 200
    assert response.data == empty
    assert stored_count() == 0


def test_refused_records_are_counted_and_named_in_partial_success(client):
    request = otlp_request([{"body": "ok"}, {"body": "", "severity_number": 9},
                            {"body": "bad level", "severity_text": "LOUD"}])
    partial = response_of(export(client, request)).partial_success
    assert partial.rejected_log_records == 2
    assert "resourceLogs[0].scopeLogs[0].logRecords[1]: message" in partial.error_message
    assert "logRecords[2]: severity: Unknown severity 'LOUD'" in partial.error_message
    assert [r["message"] for r in stored(client)] == ["ok"]


def test_partial_success_in_json(client):
    body = otlp_json([{"body": {"stringValue": "ok"}}, {"severityText": "LOUD",
                                                        "body": {"stringValue": "m"}}])
    response = export(client, body, JSON)
    assert response.status_code == 200
    partial = response.get_json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1"
    assert "LOUD" in partial["errorMessage"]


def test_an_undecodable_body_is_a_400_status_in_the_requests_encoding(client):
    status = status_of(export(client, b"\x0a\x05trunc"), 400)
    assert status.code == 3 and "malformed_protobuf" in status.message
    response = export(client, b"{not json", JSON)
    assert response.status_code == 400 and response.mimetype == JSON
    assert response.get_json()["code"] == 3


def test_a_field_violation_names_the_field(client):
    body = otlp_json([{"traceId": "abcd"}])
    failure = export(client, body, JSON).get_json()
    (detail,) = failure["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert detail["fieldViolations"][0]["field"] == (
        "resourceLogs[0].scopeLogs[0].logRecords[0].traceId")


def test_an_unsupported_content_type_is_a_415(client):
    response = export(client, b"hello", "text/plain")
    assert response.status_code == 415
    assert "unsupported_media_type" in status_pb2.Status.FromString(response.data).message


def test_overload_is_a_503_with_retry_after(app, client, monkeypatch):
    def busy(batch):
        raise StorageBusy()

    monkeypatch.setattr(app.extensions["writer"], "ingest", busy)
    response = export(client, otlp_request([{"body": "m"}]))
    status = status_of(response, 503)
    assert response.headers["Retry-After"] == "1"
    assert status.code == 14  # UNAVAILABLE


def test_a_rate_limited_key_gets_a_429_with_retry_after(make_app, monkeypatch):
    from test_auth import Clock, make_key

    clock = Clock()
    monkeypatch.setattr(write_path, "now_micros", clock)
    app = make_app(AUTH_REQUIRED=True)
    key = make_key(app, "sdk", "ingest", rate_limit=1)
    client = app.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    response_of(export(client, otlp_request([{"body": "m"}] * 5), **auth))
    response = export(client, otlp_request([{"body": "m"}]), **auth)
    assert status_of(response, 429).code == 8  # RESOURCE_EXHAUSTED
    assert response.headers["Retry-After"] == "4"


def test_a_missing_key_is_a_401_status(make_app, stored_count):
    client = make_app(AUTH_REQUIRED=True).test_client()
    response = export(client, otlp_request([{"body": "m"}]))
    assert status_of(response, 401).code == 16  # UNAUTHENTICATED
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert stored_count() == 0


def test_a_body_over_the_limit_is_a_413_status(make_app):
    client = make_app(MAX_BODY_BYTES=1000).test_client()
    big = otlp_request([{"body": "x" * 2000}])
    assert status_of(export(client, big), 413).code == 8
    bomb = gzip.compress(otlp_request([{"body": "x" * 200_000}]).SerializeToString())
    assert len(bomb) < 1000
    assert status_of(export(client, bomb, **{"Content-Encoding": "gzip"}), 413).code == 8


def test_the_native_endpoint_is_unchanged_beside(client):
    assert client.post("/ingest", json=[record()]).status_code == 201


# Hostile input: a 4xx Status in the request's encoding, nothing stored, never a 500.

def _nested(depth):
    value = {"stringValue": "deep"}
    for _ in range(depth):
        value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


def _protobuf_nested(depth):
    # AnyValue{kvlist_value: KeyValueList{values: KeyValue{key, value: AnyValue{...}}}}
    value = b"\x0a\x04deep"
    for _ in range(depth):
        pair = b"\x0a\x01k" + b"\x12" + _varint(len(value)) + value
        kvlist = b"\x0a" + _varint(len(pair)) + pair
        value = b"\x32" + _varint(len(kvlist)) + kvlist
    log = b"\x2a" + _varint(len(value)) + value
    scope = b"\x12" + _varint(len(log)) + log
    resource = b"\x12" + _varint(len(scope)) + scope
    return b"\x0a" + _varint(len(resource)) + resource


def _varint(number):
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


VALID = otlp_request([{"time_unix_nano": NOW_NS, "body": "m", "attributes": {"k": "v"},
                       "trace_id": TRACE, "span_id": SPAN}]).SerializeToString()
WRONG_TYPES = {  # logRecords field -> a value of the wrong type
    "timeUnixNano": {"n": 1}, "observedTimeUnixNano": [1], "severityNumber": "9",
    "severityText": 9, "body": "not an AnyValue", "attributes": {"k": "v"}, "traceId": 7,
    "spanId": ["a"], "eventName": 1,
}
HOSTILE = [
    # (id, content type, headers, body, status)
    ("truncated protobuf", PROTOBUF, {}, VALID[:-3], 400),
    ("protobuf of the wrong message", PROTOBUF, {}, b"\x0a\x02\x08\x01\x12\x00\xff", 400),
    ("random bytes", PROTOBUF, {}, bytes(range(256)), 400),
    ("protobuf nested 10,000 deep", PROTOBUF, {}, _protobuf_nested(10_000), 400),
    ("json nested 10,000 deep", JSON, {}, b"[" * 10_000 + b"]" * 10_000, 400),
    ("anyvalue nested 40 deep", JSON, {}, otlp_json([{"body": _nested(40)}]), 400),
    ("gzip bomb", PROTOBUF, {"Content-Encoding": "gzip"},
     gzip.compress(b"\x00" * (64 * 1024**2), compresslevel=9), 413),
    ("truncated gzip", PROTOBUF, {"Content-Encoding": "gzip"}, gzip.compress(VALID)[:20], 400),
    ("brotli", PROTOBUF, {"Content-Encoding": "br"}, VALID, 415),
    ("no content type", None, {}, VALID, 415),
    ("trace id of 15 bytes", PROTOBUF, {}, otlp_request([{"body": "m", "trace_id": TRACE[:15]}])
     .SerializeToString(), 400),
    ("span id of 9 bytes", PROTOBUF, {}, otlp_request([{"body": "m", "span_id": SPAN + b"\x01"}])
     .SerializeToString(), 400),
    ("json trace id of 31 digits", JSON, {}, otlp_json([{"traceId": TRACE.hex()[:31]}]), 400),
    ("json span id not hex", JSON, {}, otlp_json([{"spanId": "zz" * 8}]), 400),
    ("json body an array", JSON, {}, b"[]", 400),
    ("json resourceLogs an object", JSON, {}, b'{"resourceLogs": {}}', 400),
    ("json time beyond 64 bits", JSON, {}, otlp_json([{"timeUnixNano": str(2**64)}]), 400),
    ("json intValue beyond 64 bits", JSON, {}, otlp_json([{"attributes": [
        {"key": "k", "value": {"intValue": str(2**63)}}]}]), 400),
    ("json bytesValue not base64", JSON, {}, otlp_json([{"body": {"bytesValue": "@@"}}]), 400),
    ("json NaN", JSON, {}, b'{"resourceLogs": NaN}', 400),
    *((f"json {field} of the wrong type", JSON, {}, otlp_json([{field: value}]), 400)
      for field, value in WRONG_TYPES.items()),
]


@pytest.mark.parametrize("case", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_input_is_refused_in_otlps_shape_and_nothing_is_stored(client, stored_count,
                                                                        case):
    response = send_hostile(client, "/v1/logs", case)
    if response.mimetype == JSON:
        assert response.get_json()["message"]
    else:
        assert response.mimetype == PROTOBUF
        assert status_pb2.Status.FromString(response.data).message
    assert stored_count() == 0
