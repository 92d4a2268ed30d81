"""Hostile and broken input, table-driven: the status and error code of each, nothing stored.

Inputs that are bad JSON, bad encodings, bad shapes, bad fields and bad requests. None may
give a 500 or an HTML page, and none may store anything.
"""

import gzip
import zlib

import orjson
import pytest
from helpers import record

JSON = "application/json"
NDJSON = "application/x-ndjson"


def body(*records):
    return orjson.dumps(list(records))


def with_fields(**fields):
    return body(record(**fields))


def without(name):
    fields = record()
    del fields[name]
    return body(fields)


CASES = [
    # (id, method, content type, headers, body, status, error)
    ("truncated json", "POST", JSON, {}, b'[{"service": "a", "sev', 400, "malformed_json"),
    ("not json", "POST", JSON, {}, b"service=a&severity=INFO", 400, "malformed_json"),
    ("trailing garbage", "POST", JSON, {}, body(record()) + b"]]", 400, "malformed_json"),
    ("invalid utf-8", "POST", JSON, {}, b'[{"service": "\xff\xfe", "severity": "INFO",'
     b' "message": "m"}]', 400, "malformed_json"),
    ("raw nul byte", "POST", JSON, {}, b'[{"service": "a\x00", "severity": "INFO",'
     b' "message": "m"}]', 400, "malformed_json"),
    ("lone surrogate", "POST", JSON, {}, b'[{"service": "\\udc00", "severity": "INFO",'
     b' "message": "m"}]', 400, "malformed_json"),
    ("NaN", "POST", JSON, {}, b'[{"service": "a", "severity": "INFO", "message": "m",'
     b' "timestamp": NaN}]', 400, "malformed_json"),
    ("Infinity", "POST", JSON, {}, b'[{"service": "a", "severity": "INFO", "message": "m",'
     b' "timestamp": Infinity}]', 400, "malformed_json"),
    ("number overflowing a double", "POST", JSON, {}, b'[{"service": "a", "severity": "INFO",'
     b' "message": "m", "timestamp": 1e400}]', 400, "malformed_json"),
    ("nesting 10,000 deep", "POST", JSON, {}, b"[" * 10_000 + b"]" * 10_000, 400,
     "malformed_json"),
    ("attributes nested 10,000 deep", "POST", JSON, {},
     b'[{"service": "a", "severity": "INFO", "message": "m", "attributes": '
     + b'{"a":' * 10_000 + b"1" + b"}" * 10_001 + b"]", 400, "malformed_json"),
    ("empty body", "POST", JSON, {}, b"", 400, "empty_batch"),  # as `[]` is
    ("string body", "POST", JSON, {}, b'"INFO hello"', 400, "invalid_shape"),
    ("empty array", "POST", JSON, {}, b"[]", 400, "empty_batch"),
    ("array of nulls", "POST", JSON, {}, b"[null, null]", 422, "validation_failed"),
    ("array of arrays", "POST", JSON, {}, b"[[1, 2]]", 422, "validation_failed"),
    ("bad ndjson line", "POST", NDJSON, {}, orjson.dumps(record()) + b"\n{oops}\n", 400,
     "malformed_json"),
    ("missing content type", "POST", None, {}, body(record()), 415, "unsupported_media_type"),
    ("form content type", "POST", "application/x-www-form-urlencoded", {}, body(record()), 415,
     "unsupported_media_type"),
    ("text content type", "POST", "text/plain", {}, body(record()), 415,
     "unsupported_media_type"),
    ("brotli", "POST", JSON, {"Content-Encoding": "br"}, body(record()), 415,
     "unsupported_encoding"),
    ("gzip header, plain body", "POST", JSON, {"Content-Encoding": "gzip"}, body(record()), 400,
     "bad_encoding"),
    ("truncated gzip", "POST", JSON, {"Content-Encoding": "gzip"},
     gzip.compress(body(record()))[:20], 400, "bad_encoding"),
    ("gzip bomb", "POST", JSON, {"Content-Encoding": "gzip"},
     gzip.compress(b" " * (2 * 1024**3 // 256), compresslevel=9), 413, "payload_too_large"),
    ("deflate bomb", "POST", JSON, {"Content-Encoding": "deflate"},
     zlib.compress(b"[" + b" " * 50_000_000 + b"]", 9), 413, "payload_too_large"),
    ("10 MB message", "POST", JSON, {}, with_fields(message="x" * 10_000_000), 413,
     "payload_too_large"),
    ("100,000-record batch", "POST", JSON, {}, b"[" + b",".join([b"{}"] * 100_000) + b"]", 413,
     "too_many_records"),
    ("GET", "GET", None, {}, None, 405, "method_not_allowed"),
    ("PUT", "PUT", JSON, {}, body(record()), 405, "method_not_allowed"),
    ("DELETE", "DELETE", None, {}, None, 405, "method_not_allowed"),
    ("PATCH", "PATCH", JSON, {}, body(record()), 405, "method_not_allowed"),
    ("timestamp in 1900", "POST", JSON, {}, with_fields(timestamp="1900-01-01T00:00:00Z"), 422,
     "validation_failed"),
    ("timestamp in 2999", "POST", JSON, {}, with_fields(timestamp="2999-01-01T00:00:00Z"), 422,
     "validation_failed"),
    ("timestamp in milliseconds", "POST", JSON, {}, with_fields(timestamp=1_748_772_000_000),
     422, "validation_failed"),
    ("timestamp far beyond 64 bits", "POST", JSON, {}, b'[{"service": "a", "severity": "INFO",'
     b' "message": "m", "timestamp": 1000000000000000000000000000000}]', 422,
     "validation_failed"),
    ("timestamp 1e300", "POST", JSON, {}, b'[{"service": "a", "severity": "INFO",'
     b' "message": "m", "timestamp": 1e300}]', 422, "validation_failed"),
    ("timestamp -1e300", "POST", JSON, {}, b'[{"service": "a", "severity": "INFO",'
     b' "message": "m", "timestamp": -1e300}]', 422, "validation_failed"),
    ("year 0", "POST", JSON, {}, with_fields(timestamp="0000-01-01T00:00:00Z"), 422,
     "validation_failed"),
    ("unknown field", "POST", JSON, {}, with_fields(level="INFO"), 422, "validation_failed"),
    ("missing service", "POST", JSON, {}, without("service"), 422, "validation_failed"),
    ("missing severity", "POST", JSON, {}, without("severity"), 422, "validation_failed"),
    ("missing message", "POST", JSON, {}, without("message"), 422, "validation_failed"),
    ("bad idempotency key", "POST", JSON, {"Idempotency-Key": "k" * 300}, body(record()), 400,
     "invalid_idempotency_key"),
    ("unknown query parameter", "POST", JSON, {}, body(record()), 400, "unknown_parameter"),
]

# Every field with every wrong type.
WRONG_VALUES = {"a number": 7, "a float": 1.5, "a boolean": True, "null": None, "a list": ["x"],
                "an object": {"k": "v"}, "a string": "text"}
ACCEPTS = {  # the wrong types a field does accept, as another spelling of a right one
    "timestamp": {"a number", "a float", "null"},
    "host": {"null", "a string"}, "trace_id": {"null"}, "span_id": {"null"},
    "attributes": {"null", "an object"}, "event_id": {"null", "a string"},
    "service": {"a string"}, "message": {"a string"},
}
for field in ("service", "severity", "message", "timestamp", "host", "trace_id", "span_id",
              "attributes", "event_id"):
    for kind, value in WRONG_VALUES.items():
        if kind not in ACCEPTS.get(field, set()):
            CASES.append((f"{field} as {kind}", "POST", JSON, {}, with_fields(**{field: value}),
                          422, "validation_failed"))


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_refused_and_nothing_is_stored(client, stored_count, case):
    name, method, content_type, headers, data, status, error = case
    path = "/ingest?batch=7" if name == "unknown query parameter" else "/ingest"
    if content_type:
        headers = {"Content-Type": content_type, **headers}
    response = client.open(path, method=method, data=data, headers=headers)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    assert response.get_json()["error"] == error
    assert response.get_json()["message"]
    assert stored_count() == 0


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("payload", [
    body(record(service="a", message="m"), record(service="a", message="m")),
    b'[{"service": "first", "service": "billing", "severity": "INFO", "message": "m"}]',
    with_fields(message="nul \u0000 inside, escaped"),
    b'[{"service": "a", "severity": "INFO", "message": "m",'
    b' "attributes": {"big": 1000000000000000000000000000000}}]',
])
def test_odd_but_valid_input_is_stored(client, payload):
    """Duplicate keys: the last wins, as in most JSON parsers. An escaped NUL is text. An
    integer beyond 64 bits in attributes is kept as a float, as JSON numbers are doubles."""
    response = client.post("/ingest", data=payload, content_type=JSON)
    assert response.status_code == 201, response.get_data(as_text=True)
