"""The record schema: every validation and normalization rule, table-driven."""

import time

import orjson
import pytest
from helpers import record
from marshmallow import ValidationError

from collector.ingest.schemas import record_schema
from config import Config

LIMITS = Config({}).as_dict()
SCHEMA = record_schema(LIMITS)


def load_one(fields):
    return SCHEMA.load([fields])[0]


def errors_of(fields):
    with pytest.raises(ValidationError) as caught:
        SCHEMA.load([fields])
    return caught.value.messages[0]


@pytest.mark.parametrize(
    "given, expected",
    [
        ("INFO", "INFO"),
        ("info", "INFO"),
        ("Warning", "WARN"),
        ("warn", "WARN"),
        ("ERR", "ERROR"),
        ("crit", "CRITICAL"),
        ("alert", "CRITICAL"),
        ("EMERG", "FATAL"),
        ("panic", "FATAL"),
        ("trace", "TRACE"),
        ("verbose", "TRACE"),
        ("notice", "NOTICE"),
        ("Information", "INFO"),
        ("severe", "ERROR"),
        ("fatal", "FATAL"),
    ],
)
def test_severity_is_normalized_to_its_canonical_level(given, expected):
    assert load_one(record(severity=given))["severity"] == expected


@pytest.mark.parametrize(
    "given, expected_micros",
    [
        ("2025-06-01T10:00:00Z", 1_748_772_000_000_000),
        ("2025-06-01T10:00:00.123456Z", 1_748_772_000_123_456),
        ("2025-06-01T11:00:00+01:00", 1_748_772_000_000_000),
        ("2025-06-01T05:00:00-05:00", 1_748_772_000_000_000),
        ("2025-06-01T10:00:00", 1_748_772_000_000_000),  # naive is UTC
        ("2025-06-01 10:00:00.5", 1_748_772_000_500_000),
        (1_748_772_000, 1_748_772_000_000_000),
        (1_748_772_000.25, 1_748_772_000_250_000),
        (0, 0),
    ],
)
def test_timestamp_is_stored_as_utc_microseconds(given, expected_micros):
    assert load_one(record(timestamp=given))["timestamp"] == expected_micros


def test_absent_or_null_timestamp_is_left_for_the_server_to_fill():
    assert "timestamp" not in load_one(record())
    assert load_one(record(timestamp=None))["timestamp"] is None


def test_timestamp_within_the_allowed_skew_is_accepted():
    soon = time.time() + LIMITS["MAX_FUTURE_SKEW"] - 60
    assert load_one(record(timestamp=soon))["timestamp"] == round(soon * 1_000_000)


@pytest.mark.parametrize(
    "fields, field, reason",
    [
        # service
        ({"service": None}, "service", "may not be null"),
        ({"service": ""}, "service", "between 1 and 128"),
        ({"service": "s" * 129}, "service", "between 1 and 128"),
        ({"service": 7}, "service", "Not a valid string"),
        # severity
        ({"severity": "LOUD"}, "severity", "Unknown severity"),
        ({"severity": ""}, "severity", "Unknown severity"),
        ({"severity": 3}, "severity", "Not a valid severity"),
        # message
        ({"message": ""}, "message", "Must not be empty"),
        ({"message": "x" * (64 * 1024 + 1)}, "message", "Longer than 65536 bytes"),
        ({"message": "é" * (32 * 1024 + 1)}, "message", "Longer than 65536 bytes"),
        ({"message": ["a"]}, "message", "Not a valid string"),
        # timestamp
        ({"timestamp": "yesterday"}, "timestamp", "Not an RFC 3339 timestamp"),
        ({"timestamp": "1969-12-31T23:59:59Z"}, "timestamp", "before 1970"),
        ({"timestamp": -1}, "timestamp", "before 1970"),
        ({"timestamp": 4_102_444_800}, "timestamp", "in the future"),  # 2100
        ({"timestamp": 1_748_772_000_000}, "timestamp", "not milliseconds"),
        ({"timestamp": True}, "timestamp", "Not a valid timestamp"),
        ({"timestamp": {"s": 1}}, "timestamp", "Not a valid timestamp"),
        # host, trace and span ids
        ({"host": ""}, "host", "between 1 and 255"),
        ({"host": "h" * 256}, "host", "between 1 and 255"),
        ({"trace_id": "abc"}, "trace_id", "32 hexadecimal digits"),
        ({"trace_id": "g" * 32}, "trace_id", "32 hexadecimal digits"),
        ({"trace_id": 12}, "trace_id", "Not a valid string"),
        ({"span_id": "0" * 15}, "span_id", "16 hexadecimal digits"),
        ({"span_id": "0" * 17}, "span_id", "16 hexadecimal digits"),
        # attributes
        ({"attributes": []}, "attributes", "Not a valid object"),
        ({"attributes": "k=v"}, "attributes", "Not a valid object"),
        ({"attributes": {"a": {"b": {"c": {"d": {"e": {}}}}}}}, "attributes", "deeper than 5"),
        ({"attributes": {"a": [[[[[1]]]]]}}, "attributes", "deeper than 5"),
        ({"attributes": {f"k{i}": i for i in range(65)}}, "attributes", "More than 64 keys"),
        ({"attributes": {"a": [{f"k{i}": i} for i in range(64)]}}, "attributes",
         "More than 64 keys"),
        ({"attributes": {"blob": "x" * 16 * 1024}}, "attributes", "Longer than 16384 bytes"),
        # unknown fields are named
        ({"level": "INFO"}, "level", "Unknown field"),
        ({"id": 5}, "id", "Unknown field"),
        ({"received_at": "2025-06-01T10:00:00Z"}, "received_at", "Unknown field"),
    ],
)
def test_invalid_field_is_rejected_with_its_reason(fields, field, reason):
    errors = errors_of(record(**fields))
    assert field in errors
    assert reason in " ".join(errors[field])


@pytest.mark.parametrize("missing", ["service", "severity", "message"])
def test_required_field_missing(missing):
    fields = record()
    del fields[missing]
    assert errors_of(fields) == {missing: ["Missing data for required field."]}


def test_non_object_record_is_rejected():
    with pytest.raises(ValidationError) as caught:
        SCHEMA.load(["just a string"])
    assert caught.value.messages == {0: {"_schema": ["A log record must be a JSON object."]}}


def test_optional_fields_are_normalized():
    loaded = load_one(
        record(
            host="web-1",
            trace_id="4BF92F3577B34DA6A3CE929D0E0E4736",
            span_id="00F067AA0BA902B7",
            attributes={"user": {"id": 7, "roles": ["a", "b"]}, "ok": True},
        )
    )
    assert loaded["host"] == "web-1"
    assert loaded["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert loaded["span_id"] == "00f067aa0ba902b7"
    expected = {"user": {"id": 7, "roles": ["a", "b"]}, "ok": True}
    assert orjson.loads(loaded["attributes"]) == expected


def test_attributes_at_the_limits_are_accepted():
    deepest = {"a": {"b": {"c": {"d": {"e": 1}}}}}  # five levels of objects
    many = {f"k{i}": i for i in range(64)}
    assert orjson.loads(load_one(record(attributes=deepest))["attributes"]) == deepest
    assert orjson.loads(load_one(record(attributes=many))["attributes"]) == many


def test_limits_come_from_the_configuration():
    schema = record_schema({**LIMITS, "MAX_MESSAGE_BYTES": 10, "MAX_ATTRIBUTES_KEYS": 1})
    with pytest.raises(ValidationError) as caught:
        schema.load([record(message="x" * 11, attributes={"a": 1, "b": 2})])
    assert set(caught.value.messages[0]) == {"message", "attributes"}
