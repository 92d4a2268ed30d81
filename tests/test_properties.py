"""Property-based tests (hypothesis): whatever arrives, the answer is a 2xx or a JSON 4xx.

The schema either loads a record or names what is wrong with it; a loaded record keeps
what was sent, normalized; no body, however odd, gets a 500.
"""

import datetime as dt
import string

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from collector.errors import CollectorError
from collector.ingest.protocols.native import decode_records
from collector.ingest.schemas import record_schema
from collector.severity import CANONICAL
from collector.times import to_micros
from collector.web.errors import status_of
from config import Config

SCHEMA = record_schema(Config({}).as_dict())
UTC = dt.UTC

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(
    allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                      children, max_size=4),
    max_leaves=12,
)
moments = st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2025, 12, 31),
                       timezones=st.sampled_from([UTC, dt.timezone(dt.timedelta(hours=-5)),
                                                  dt.timezone(dt.timedelta(hours=5, minutes=30))]))
valid_records = st.fixed_dictionaries(
    {
        "service": st.text(min_size=1, max_size=128),
        "severity": st.sampled_from(sorted(CANONICAL)).flatmap(
            lambda level: st.sampled_from([level, level.lower(), level.title()])),
        "message": st.text(min_size=1, max_size=200),
    },
    optional={
        "timestamp": moments,
        "host": st.text(min_size=1, max_size=255),
        "trace_id": st.text(alphabet="0123456789abcdefABCDEF", min_size=32, max_size=32),
        "span_id": st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
        "attributes": st.dictionaries(st.text(max_size=10), json_scalars, max_size=10),
        "event_id": st.text(min_size=1, max_size=128),
    },
)


@given(valid_records)
def test_a_valid_record_loads_and_keeps_what_was_sent(fields):
    sent = dict(fields)
    if "timestamp" in sent:
        sent["timestamp"] = fields["timestamp"].isoformat()
    loaded = SCHEMA.load([sent])[0]
    assert loaded["service"] == fields["service"]
    assert loaded["message"] == fields["message"]
    assert loaded["severity"] == CANONICAL[fields["severity"].upper()]
    if "timestamp" in fields:
        assert loaded["timestamp"] == to_micros(fields["timestamp"])
    if "trace_id" in fields:
        assert loaded["trace_id"] == fields["trace_id"].lower()
    if "attributes" in fields:
        sent_attributes = orjson.loads(orjson.dumps(fields["attributes"]))
        assert orjson.loads(loaded["attributes"]) == sent_attributes


@given(st.dictionaries(st.sampled_from(["service", "severity", "message", "timestamp", "host",
                                        "trace_id", "span_id", "attributes", "event_id", "x"]),
                       json_values))
def test_any_object_loads_or_names_its_faults(fields):
    try:
        loaded = SCHEMA.load([fields])[0]
    except ValidationError as exc:
        assert set(exc.messages[0]) <= set(fields) | {"service", "severity", "message"}
    else:
        assert set(loaded) <= set(fields)
        assert loaded["severity"] in CANONICAL.values()


@given(st.binary(max_size=300) | json_values.map(orjson.dumps),
       st.sampled_from(["application/json", "application/x-ndjson"]),
       st.sampled_from([None, "gzip", "deflate", "identity"]))
def test_any_body_decodes_or_is_a_client_error(body, content_type, encoding):
    try:
        records = decode_records(body, content_type, encoding, 1024 * 1024)
    except CollectorError as exc:
        assert 400 <= status_of(exc) < 500
    else:
        assert isinstance(records, list)


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values.map(orjson.dumps) | st.binary(max_size=200),
       query=st.sampled_from(["", "?mode=partial", "?mode=" + string.ascii_letters]))
def test_no_body_gets_a_500(client, body, query):
    response = client.post(f"/ingest{query}", data=body, content_type="application/json")
    assert response.status_code in (200, 201, 400, 413, 422), response.get_data(as_text=True)
    assert response.is_json
