"""Splunk's HTTP Event Collector: POST /services/collector/event (and /services/collector, /raw).

As Splunk documents it ("Format events for HTTP Event Collector", "HTTP Event
Collector REST API endpoints"): the event endpoint takes event envelopes, one JSON
object after another (not an array), each with ``event`` (a string or an object)
and optionally ``time`` (epoch seconds), ``host``, ``source``, ``sourcetype``,
``index`` and ``fields`` (a flat object of strings); the raw endpoint takes text,
one event a line, its metadata in the query string. The key comes as
``Authorization: Splunk <key>`` (or Basic, the key as password). Answers are
``{"text": ..., "code": N}`` with HEC's own codes: ``0`` Success, ``5`` No data,
``6`` Invalid data format, ``12`` Event field is required, ``13`` Event field
cannot be blank, ``15`` Error in handling indexed fields, with the
``invalid-event-number`` of the first bad event; a batch with a bad event stores
nothing.

An event becomes a record: its message is the event's text (an object event's
``message``/``msg``/``log`` field, else the whole object as JSON), its level and
service come from ``fields`` or the event object (``severity``/``level``,
``service``), else the service is the ``source``, then the ``sourcetype``; ``source``,
``sourcetype``, ``index`` and the other fields become attributes.
"""

import functools
import json
import math

import orjson

from ...apidoc import RETRY_AFTER
from ...errors import InvalidInput
from ..decoding import decompress
from ..writer import Batch
from . import mapping
from .base import Answer, Protocol, Route

UNKNOWN_SERVICE = "unknown_service"
METADATA = ("source", "sourcetype", "index")

# HEC's codes and their texts, as Splunk answers them.
TEXTS = {
    0: "Success", 2: "Token is required", 3: "Invalid authorization", 4: "Invalid token",
    5: "No data", 6: "Invalid data format", 8: "Internal server error", 9: "Server is busy",
    12: "Event field is required", 13: "Event field cannot be blank", 14: "ACK is disabled",
    15: "Error in handling indexed fields", 17: "HEC is healthy",
}
# The collector's error codes -> HEC's.
CODES = {
    "missing_api_key": 2, "invalid_api_key": 3, "insufficient_scope": 4,
    "service_not_allowed": 4, "empty_batch": 5, "storage_busy": 9, "storage_read_only": 9,
    "storage_full": 9, "rate_limited": 9, "internal_error": 8,
}
# A record field's problem -> the HEC code of the event's fault.
FIELD_CODES = {"message": 13}

# An event's own fields, read through the one mapping (no time: the envelope has it).
EVENT_FIELDS = mapping.FieldMap(timestamp=(), host=())


class HecError(InvalidInput):
    """An event HEC's own rules refuse: its code and number."""

    def __init__(self, code, number, reason):
        super().__init__("invalid_event", f"event {number}: {reason}", hec_code=code,
                         invalid_event_number=number)


def decode_events(body, content_encoding, max_bytes):
    """The envelopes of an event body: JSON objects one after another."""
    data = decompress(body, content_encoding, max_bytes)
    if not data.strip():
        return []
    try:  # the usual shape, one envelope a line, read fast
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]
    except orjson.JSONDecodeError:
        pass
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise HecError(6, 0, f"the body is not UTF-8: {exc}") from None
    decoder = json.JSONDecoder(parse_constant=_no_constant)
    envelopes, position = [], 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return envelopes
        try:
            envelope, position = decoder.raw_decode(text, position)
        except (ValueError, RecursionError) as exc:
            raise HecError(6, len(envelopes), f"not JSON: {exc}") from None
        envelopes.append(envelope)


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def event_record(envelope, number):
    """The record of one envelope."""
    if envelope.__class__ is not dict:
        raise HecError(6, number, "an event envelope must be a JSON object")
    if "event" not in envelope:
        raise HecError(12, number, "the event field is required")
    event = envelope["event"]
    if event in ("", {}, None, []):
        raise HecError(13, number, "the event field cannot be blank")
    for name in ("host", *METADATA):
        if envelope.get(name, "").__class__ is not str:
            raise HecError(6, number, f"{name} must be a string")
    fields = envelope.get("fields", {})
    if fields.__class__ is not dict or any(
            value.__class__ not in (str, list) or (value.__class__ is list and any(
                item.__class__ is not str for item in value)) for value in fields.values()):
        raise HecError(15, number, "fields must be a flat object of strings or arrays of strings")
    document = dict(fields)
    if event.__class__ is dict:
        document.update(event)
        record = EVENT_FIELDS.record(document)
        if "message" not in record:
            record["message"] = orjson.dumps(event).decode()
    else:
        record = EVENT_FIELDS.record(document)
        record["message"] = event if event.__class__ is str else orjson.dumps(event).decode()
    attributes = record.setdefault("attributes", {})
    for name in METADATA:
        if envelope.get(name):
            mapping.nest(attributes, name, envelope[name])
    if not attributes:
        del record["attributes"]
    if "service" not in record:
        record["service"] = next((value for value in (envelope.get("source"),
                                                      envelope.get("sourcetype"))
                                  if value.__class__ is str and value), UNKNOWN_SERVICE)
    host = envelope.get("host")
    if host is not None:
        record["host"] = host
    moment = envelope.get("time")
    if moment is not None:
        record["timestamp"] = _seconds(moment, number)
    return record


def _seconds(value, number):
    if value.__class__ is str:
        try:
            value = float(value)
        except ValueError:
            raise HecError(6, number, "time must be epoch seconds") from None
    if value.__class__ not in (int, float) or not math.isfinite(value):
        raise HecError(6, number, "time must be epoch seconds")
    return value


def decode(body, content_encoding, max_bytes):
    """The records of an event body, or HecError naming the first bad event."""
    return [event_record(envelope, number)
            for number, envelope in enumerate(decode_events(body, content_encoding, max_bytes))]


def decode_raw(body, content_encoding, max_bytes, query):
    """The records of a raw body: one event a line, the metadata in ``query``."""
    data = decompress(body, content_encoding, max_bytes)
    try:
        lines = data.decode().splitlines()
    except UnicodeDecodeError as exc:
        raise HecError(6, 0, f"the body is not UTF-8: {exc}") from None
    envelope = {name: query[name] for name in ("host", "time", *METADATA) if name in query}
    return [event_record({**envelope, "event": line}, number)
            for number, line in enumerate(line for line in lines if line.strip())]


class Splunk(Protocol):
    """POST /services/collector/event: Splunk's HTTP Event Collector."""

    name = "splunk"
    routes = (
        Route("/services/collector", "collector"),
        Route("/services/collector/event", "event"),
        Route("/services/collector/event/1.0", "event_1_0"),
        Route("/services/collector/raw", "raw"),
        Route("/services/collector/raw/1.0", "raw_1_0"),
        Route("/services/collector/health", "health", ("GET",), ingest=False),
        Route("/services/collector/health/1.0", "health_1_0", ("GET",), ingest=False),
        Route("/services/collector/ack", "ack", ingest=False),
    )

    def batch(self, request):
        body = request.read_body()
        if request.endpoint.startswith("raw"):
            read = functools.partial(decode_raw, body, request.content_encoding,
                                     request.max_body_bytes, request.args.to_dict())
        else:
            read = functools.partial(decode, body, request.content_encoding,
                                     request.max_body_bytes)
        # One bad event refuses the batch, as its number is all HEC can say of it.
        return Batch(read, caller=request.caller)

    def answer(self, request, batch, result):
        return _hec(200, 0)

    def error(self, failure):
        if failure.code == "validation_failed":
            number = min(failure.details["errors"])
            fields = failure.details["errors"][number]
            code = next((FIELD_CODES[name] for name in fields if name in FIELD_CODES), 6)
            answer = _hec(400, code, number)
        elif failure.code == "invalid_event":
            answer = _hec(400, failure.details["hec_code"], failure.details[
                "invalid_event_number"])
        else:
            answer = _hec(failure.status, CODES.get(failure.code, 6))
        answer.headers.update(failure.headers)
        if failure.status == 401:
            answer.headers["WWW-Authenticate"] = 'Splunk realm="collector"'
        if failure.code not in ("validation_failed", "invalid_event"):
            answer.body["message"] = failure.message
        return answer

    def serve(self, endpoint, request):
        if endpoint == "ack":
            return _hec(400, 14)
        return _hec(200, 17)

    def format_name(self, request):
        return "splunk_hec"

    def openapi(self, config):
        answer = {"application/json": {"schema": {
            "type": "object", "required": ["text", "code"],
            "properties": {"text": {"type": "string"}, "code": {"type": "integer"},
                           "invalid-event-number": {"type": "integer"},
                           "message": {"type": "string"}}}}}
        failure = {"description": "HEC's answer: text and code.", "content": answer}
        event = {
            "tags": ["ingest"],
            "parameters": [{"in": "header", "name": "Content-Encoding",
                            "schema": {"type": "string", "enum": ["gzip", "deflate"]}}],
            "requestBody": {"required": True,
                            "description": "Event envelopes, one JSON object after another.",
                            "content": {"application/json": {"schema": {"type": "string"}}}},
            "responses": {"200": {"description": "Every event was stored (code 0).",
                                  "content": answer},
                          "400": {**failure, "description": "An event is refused (its code and "
                                                            "invalid-event-number): nothing "
                                                            "was stored."},
                          **{status: failure for status in ("401", "403", "408", "413",
                                                            "415", "500")},
                          "429": {**failure, "headers": RETRY_AFTER},
                          "503": {**failure, "headers": RETRY_AFTER}},
        }
        raw = {**event, "parameters": [
            *event["parameters"],
            *({"in": "query", "name": name, "schema": {"type": "string"}}
              for name in ("host", "source", "sourcetype", "index", "time", "channel"))],
               "requestBody": {"required": True, "description": "Text, one event a line.",
                               "content": {"text/plain": {"schema": {"type": "string"}}}}}
        refused = {status: failure for status in ("401", "403")}
        probe = {"tags": ["ingest"], "responses": {"200": {"description": "HEC is healthy "
                                                                          "(code 17).",
                                                           "content": answer}, **refused}}
        ack = {"tags": ["ingest"], "responses": {"400": {"description": "ACK is disabled "
                                                                        "(code 14): a 200 means "
                                                                        "stored.",
                                                         "content": answer}, **refused}}
        operations = {name: {"post": event} for name in ("collector", "event", "event_1_0")}
        operations.update({name: {"post": raw} for name in ("raw", "raw_1_0")})
        operations.update({"health": {"get": probe}, "health_1_0": {"get": probe},
                           "ack": {"post": ack}})
        return operations, {}


def _hec(status, code, number=None):
    body = {"text": TEXTS.get(code, "Invalid data format"), "code": code}
    if number is not None:
        body["invalid-event-number"] = number
    return Answer(status, body)


PROTOCOL = Splunk()
