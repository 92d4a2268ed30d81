"""The log record as the collector stores it: one named row type, its columns, its document.

Every layer speaks of a stored record through ``Row``: the write path builds
them, the storage inserts them in ``COLUMNS`` order, the audit chain hashes
them, the read path turns them into documents. Times are integer microseconds
since the epoch, UTC; ``attributes`` is the JSON text of an object.
"""

from collections import namedtuple
from typing import NamedTuple

import orjson
from marshmallow import Schema, fields, validate

from .severity import RANKS
from .times import format_micros


class Row(NamedTuple):
    """A record's stored columns (every one covered by its audit link), without its id."""

    received_at: int
    timestamp: int
    service: str
    severity: str
    severity_rank: int
    message: str
    host: str | None
    trace_id: str | None
    span_id: str | None
    attributes: str | None  # a JSON object, serialized
    event_id: str | None  # the client's id, unique per service
    api_key_id: int | None  # the key that sent it; None: no key was needed


COLUMNS = Row._fields

# A stored record as a backend reads it back: its id, its columns, then its pattern's id
# (the canonical one, see collector.patterns; None until the miner has reached it).
Stored = namedtuple("Stored", ["id", *COLUMNS, "pattern_id"], defaults=[None])


def document(record_id, row, pattern_id=None):
    """The JSON document of the record ``record_id``, its columns ``row`` in ``COLUMNS`` order."""
    (received_at, timestamp, service, severity, _rank, message, host, trace_id, span_id,
     attributes, event_id, api_key_id) = row[:len(COLUMNS)]
    return {
        "id": record_id,
        "received_at": format_micros(received_at),
        "timestamp": format_micros(timestamp),
        "service": service,
        "severity": severity,
        "message": message,
        "host": host,
        "trace_id": trace_id,
        "span_id": span_id,
        # Stored serialized: embed the text as it is instead of parsing it again.
        "attributes": orjson.Fragment(attributes or "{}"),
        "event_id": event_id,
        "api_key_id": api_key_id,
        "pattern_id": pattern_id,
    }


class StoredRecordSchema(Schema):
    """A stored record's document, as ingest echoes it and the read endpoints answer it.

    It describes what ``document`` builds (a test holds the two together); the
    answers are built directly, a schema dump per record would double their cost.
    """

    id = fields.Integer(required=True, metadata={"minimum": 1})
    received_at = fields.DateTime(required=True)
    timestamp = fields.DateTime(required=True)
    service = fields.String(required=True)
    severity = fields.String(required=True, validate=validate.OneOf(list(RANKS)))
    message = fields.String(required=True)
    host = fields.String(required=True, allow_none=True)
    trace_id = fields.String(required=True, allow_none=True, metadata={"pattern": "^[0-9a-f]{32}$"})
    span_id = fields.String(required=True, allow_none=True, metadata={"pattern": "^[0-9a-f]{16}$"})
    attributes = fields.Dict(required=True)
    event_id = fields.String(required=True, allow_none=True)
    api_key_id = fields.Integer(required=True, allow_none=True,
                                metadata={"description": "The API key that sent it; null when "
                                                         "none was needed."})
    pattern_id = fields.Integer(required=True, allow_none=True,
                                metadata={"description": "Its pattern (GET /logs/patterns): the "
                                                         "id that stands for it now; null until "
                                                         "the miner has reached the record."})
