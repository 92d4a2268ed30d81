"""The field mapping on POST /ingest, for shippers that send JSON of their own shape."""

import orjson
import pytest
from helpers import record
from wire import stored

from collector.ingest.protocols import mapping
from collector.severity import OTEL_NUMBERS, SYSLOG_NUMBERS

NDJSON = "application/x-ndjson"
# What Fluent Bit's http output sends in json_lines: "date" (epoch seconds) and "log".
FLUENT_BIT = [{"date": 1_767_225_600.123456, "log": "GET / 200", "stream": "stdout",
               "kubernetes": {"pod_name": "web-7", "namespace_name": "prod"}}]


def ingest(client, documents, query="", content_type="application/json", **headers):
    body = documents if isinstance(documents, bytes) else orjson.dumps(documents)
    return client.post(f"/ingest{query}", data=body,
                       headers={"Content-Type": content_type, **headers})


def test_the_native_endpoint_stays_strict_without_a_mapping(client, stored_count):
    for document in ({"log": "m", "service": "a", "severity": "INFO", "message": "m"},
                     record(severity=3), record(severity="3")):
        assert ingest(client, [document]).status_code == 422
    assert stored_count() == 0


def test_a_fluent_bit_line_with_its_fields_named(client):
    response = ingest(client, FLUENT_BIT,
                      "?message_field=log&timestamp_field=date&default_service=web")
    assert response.status_code == 201, response.data
    (stored_record,) = stored(client)
    assert (stored_record["message"], stored_record["service"], stored_record["severity"]) == (
        "GET / 200", "web", "INFO")
    assert stored_record["timestamp"] == "2026-01-01T00:00:00.123456Z"
    assert stored_record["attributes"] == {
        "stream": "stdout", "kubernetes": {"pod_name": "web-7", "namespace_name": "prod"}}


def test_headers_name_the_fields_when_the_query_does_not(client):
    response = ingest(client, FLUENT_BIT, "?timestamp_field=date", **{
        "Collector-Message-Field": "log", "Collector-Timestamp-Field": "ignored",
        "Collector-Default-Service": "from-header"})
    assert response.status_code == 201, response.data
    (stored_record,) = stored(client)
    assert stored_record["service"] == "from-header"
    assert stored_record["timestamp"] == "2026-01-01T00:00:00.123456Z"  # the query wins


def test_the_first_present_candidate_wins_and_nested_names_are_paths(client):
    documents = [{"text": "", "msg": "second candidate", "app": {"name": "shop"},
                  "lvl": "warning"},
                 {"text": "first", "msg": "unused", "app": {"name": "shop", "tier": 1}}]
    response = ingest(client, documents,
                      "?message_field=text,msg&service_field=app.name&severity_field=lvl")
    assert response.status_code == 201, response.data
    first, second = stored(client)
    assert (first["message"], first["service"], first["severity"]) == (
        "second candidate", "shop", "WARN")
    assert first["attributes"] == {"text": ""}  # the emptied "app" object is gone
    assert second["attributes"] == {"msg": "unused", "app": {"tier": 1}}


@pytest.mark.parametrize("scale, numbers", [("syslog", SYSLOG_NUMBERS), ("otel", OTEL_NUMBERS)])
def test_severity_numbers_read_on_syslog_or_otel_scale(client, scale, numbers):
    documents = [{"service": "a", "message": "m", "severity": number} for number in numbers]
    documents.append({"service": "a", "message": "m", "severity": str(min(numbers))})
    assert ingest(client, documents, f"?severity_numbers={scale}").status_code == 201
    levels = [r["severity"] for r in stored(client)]
    assert levels == [*numbers.values(), numbers[min(numbers)]]


def test_syslog_names_are_levels(client):
    names = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "panic"]
    documents = [{"service": "a", "message": "m", "level": name} for name in names]
    assert ingest(client, documents, "?default_service=a").status_code == 201
    assert [r["severity"] for r in stored(client)] == [
        "FATAL", "CRITICAL", "CRITICAL", "ERROR", "WARN", "NOTICE", "INFO", "DEBUG", "FATAL"]


@pytest.mark.parametrize("value, expected", [
    (1_767_225_600, "2026-01-01T00:00:00.000000Z"),
    (1_767_225_600_123, "2026-01-01T00:00:00.123000Z"),
    (1_767_225_600_123_456, "2026-01-01T00:00:00.123456Z"),
    (1_767_225_600_123_456_789, "2026-01-01T00:00:00.123456Z"),
    ("1767225600.5", "2026-01-01T00:00:00.500000Z"),
    ("1767225600123", "2026-01-01T00:00:00.123000Z"),
    ("2026-01-01T01:00:00+01:00", "2026-01-01T00:00:00.000000Z"),
])
def test_times_of_any_unit(client, value, expected):
    response = ingest(client, [{"message": "m", "t": value}],
                      "?timestamp_field=t&default_service=a")
    assert response.status_code == 201, response.data
    assert stored(client)[0]["timestamp"] == expected


def test_ndjson_partial_mode_and_records_that_stay_invalid(client):
    lines = b"\n".join(orjson.dumps(d) for d in (
        {"log": "ok"}, {"log": ""}, {"log": "m", "lvl": 99}, ["not", "an", "object"]))
    response = ingest(client, lines, "?mode=partial&message_field=log&severity_field=lvl"
                                     "&default_service=a", NDJSON)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["accepted"], body["rejected"]) == (1, 3)
    assert set(body["errors"]) == {"1", "2", "3"}


def test_the_mapping_is_part_of_what_an_idempotency_key_stands_for(client):
    headers = {"Idempotency-Key": "batch-1"}
    assert ingest(client, FLUENT_BIT, "?message_field=log&default_service=a",
                  **headers).status_code == 201
    again = ingest(client, FLUENT_BIT, "?message_field=log&default_service=a", **headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    other = ingest(client, FLUENT_BIT, "?message_field=log&default_service=b", **headers)
    assert other.status_code == 422 and other.get_json()["error"] == "idempotency_key_reused"


@pytest.mark.parametrize("query, parameter", [
    ("?message_field=", "message_field"),
    ("?message_field=" + ",".join(["f"] * 17), "message_field"),
    ("?severity_numbers=roman", "severity_numbers"),
    ("?default_service=" + "s" * 129, "default_service"),
])
def test_bad_mapping_parameters_are_400s(client, stored_count, query, parameter):
    response = ingest(client, FLUENT_BIT, query)
    assert response.status_code == 400
    assert response.get_json() | {"message": ""} == {
        "error": "invalid_parameter", "parameter": parameter, "message": ""}
    assert stored_count() == 0


def test_an_unknown_parameter_is_still_refused(client):
    response = ingest(client, FLUENT_BIT, "?msg_field=log")
    assert response.status_code == 400 and response.get_json()["error"] == "unknown_parameter"


@pytest.mark.parametrize("pairs, expected", [
    ([("a.b", 1), ("a.c", 2)], {"a": {"b": 1, "c": 2}}),
    ([("a", 1), ("a.b", 2)], {"a": 1, "a.b": 2}),  # the path is taken: kept as it is
    ([("a.b", 1), ("a.b.c", 2)], {"a": {"b": 1}, "a.b.c": 2}),
    ([("a.b.c", 1), ("a.b", 2)], {"a": {"b": {"c": 1}}, "a.b": 2}),
    ([("a.b", 1), ("a.b", 2), ("c", 3), ("c", 4)], {"a": {"b": 2}, "c": 4}),  # the later wins
    ([("a..b", 1), (".a", 2), ("a.", 3)], {"a..b": 1, ".a": 2, "a.": 3}),
])
def test_dotted_keys_nest(pairs, expected):
    attributes = {}
    for key, value in pairs:
        mapping.nest(attributes, key, value)
    assert attributes == expected


@pytest.mark.parametrize("value", ["nan", "inf", "1e999", "-1e999", 1e30, "9" * 5000, True,
                                   "tomorrow", -1])
def test_odd_times_are_refused_by_the_schema(client, value):
    response = ingest(client, [{"message": "m", "t": value}],
                      "?timestamp_field=t&default_service=a")
    assert response.status_code == 422, response.data
    assert "timestamp" in response.get_json()["errors"]["0"]


@pytest.mark.parametrize("value", [None, [1], {"a": 1}])
def test_a_time_field_that_holds_no_scalar_is_an_attribute(client, value):
    response = ingest(client, [{"message": "m", "t": value}],
                      "?timestamp_field=t&default_service=a")
    assert response.status_code == 201, response.data
    (stored_record,) = stored(client)
    assert stored_record["timestamp"] == stored_record["received_at"]
