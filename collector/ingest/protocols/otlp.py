"""OTLP/HTTP logs: POST /v1/logs, an ExportLogsServiceRequest in protobuf or JSON.

As the OTLP specification (opentelemetry-proto, docs/specification.md) says: the
body is binary protobuf (``application/x-protobuf``) or its JSON mapping
(``application/json``, trace and span ids in hex), optionally gzip or deflate; the
answer is in the request's own encoding: ``200`` with an ExportLogsServiceResponse
(its ``partial_success`` counting the records refused and naming why), a
``google.rpc.Status`` for a failure, ``400`` for a body that cannot be decoded, and
``429``/``503`` with ``Retry-After`` only for overload, the statuses OTLP clients retry.

A log record becomes a record: the resource's ``service.name`` its service
(``unknown_service`` when absent, as the semantic conventions say), the
``severity_number`` its level (the ``severity_text`` when the number is 0), the body
its message (a structured body as its JSON text), ``time_unix_nano`` or else
``observed_time_unix_nano`` its time; resource, scope and record attributes become
its attributes, types kept, dotted keys as paths (see ``mapping.nest``), with the
scope's name and version as ``otel.scope.name`` and ``otel.scope.version``.
"""

import base64
import binascii
import bisect
import functools
import re

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from ...apidoc import RETRY_AFTER
from ...errors import InvalidInput, UnsupportedFormat
from ...severity import CANONICAL, OTEL_NUMBERS
from ..decoding import decompress
from ..writer import Batch
from .base import Answer, Protocol, Route, reasons
from .mapping import DEFAULT_SEVERITY, nest, seconds_of_nanos

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ENCODINGS = {PROTOBUF: "protobuf", "application/protobuf": "protobuf", JSON: "json"}
UNKNOWN_SERVICE = "unknown_service"
MAX_DEPTH = 32  # nested AnyValues in an OTLP/JSON body (protobuf's parser has its own bound)
MAX_REASONS = 10  # rejected records named in a partial_success message
_HEX = re.compile(r"[0-9a-fA-F]*")
_INT = re.compile(r"-?[0-9]{1,20}")

# HTTP status -> the google.rpc.Code of the Status body (clients act on the HTTP status).
GRPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT, 401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED, 404: code_pb2.NOT_FOUND,
    408: code_pb2.DEADLINE_EXCEEDED, 413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT, 429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE, 507: code_pb2.RESOURCE_EXHAUSTED,
}


class Scopes:
    """Where each decoded record came from: (first record index, resource, scope) runs."""

    def __init__(self):
        self.starts = []
        self.places = []

    def add(self, first, resource, scope):
        self.starts.append(first)
        self.places.append((resource, scope))

    def place(self, index):
        """The JSON path of the record ``index``."""
        run = bisect.bisect_right(self.starts, index) - 1
        resource, scope = self.places[run]
        return str(Where(resource, scope, index - self.starts[run]))


def decode(body, encoding, content_encoding, max_bytes, scopes):
    """The records of an ExportLogsServiceRequest body; noting their places in ``scopes``."""
    data = decompress(body, content_encoding, max_bytes)
    if encoding == "protobuf":
        try:
            request = ExportLogsServiceRequest.FromString(data)
        except DecodeError as exc:
            raise InvalidInput("malformed_protobuf",
                               f"the body is not an ExportLogsServiceRequest: {exc}") from None
        return _protobuf_records(request, scopes)
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("malformed_json", f"the body is not valid JSON: {exc}") from None
    return _json_records(document, scopes)


def record(service, attributes, time, observed, number, text, body, trace_id, span_id,
           event_name):
    """The record of one log record; ``attributes`` already hold its resource's and scope's."""
    if event_name:
        nest(attributes, "event.name", event_name)
    if number:
        level = OTEL_NUMBERS.get(number, number)
    elif text:
        level = CANONICAL.get(text.upper(), text)
    else:
        level = DEFAULT_SEVERITY
    if body.__class__ is not str:
        body = "" if body is None else orjson.dumps(body).decode()
    moment = time or observed
    return {
        "service": service,
        "severity": level,
        "message": body or event_name,
        "timestamp": seconds_of_nanos(moment) if moment else None,
        "trace_id": trace_id,
        "span_id": span_id,
        "attributes": attributes or None,
    }


def _scope_base(resource, scope_name, scope_version, scope_pairs):
    """The service and the attributes every record of a scope starts from."""
    service, base = UNKNOWN_SERVICE, {}
    for key, value in resource:
        if key == "service.name" and value.__class__ is str and value:
            service = value
        else:
            nest(base, key, value)
    if scope_name:
        nest(base, "otel.scope.name", scope_name)
    if scope_version:
        nest(base, "otel.scope.version", scope_version)
    for key, value in scope_pairs:
        nest(base, key, value)
    return service, base


def _copy(attributes):
    """A copy of nested objects, for a record's own keys to be set in."""
    return {key: _copy(value) if value.__class__ is dict else value
            for key, value in attributes.items()}


class Where:
    """A place in the request, spelled out only for an error: (resource, scope, record)."""

    __slots__ = ("indexes",)

    def __init__(self, *indexes):
        self.indexes = indexes

    def __str__(self):
        names = ("resourceLogs", "scopeLogs", "logRecords")
        return ".".join(f"{name}[{index}]" for name, index in zip(names, self.indexes,
                                                                  strict=False))


# -- protobuf


def _protobuf_records(request, scopes):
    records = []
    append = records.append
    for r, resource_logs in enumerate(request.resource_logs):
        resource = [(kv.key, _value(kv.value)) for kv in resource_logs.resource.attributes]
        for s, scope_logs in enumerate(resource_logs.scope_logs):
            scope = scope_logs.scope
            service, base = _scope_base(resource, scope.name, scope.version,
                                        [(kv.key, _value(kv.value)) for kv in scope.attributes])
            scopes.add(len(records), r, s)
            for n, log in enumerate(scope_logs.log_records):
                attributes = _copy(base) if base else {}
                for kv in log.attributes:
                    value = kv.value
                    kind = value.WhichOneof("value")  # scalars first, without a call: the hot path
                    value = getattr(value, kind) if kind in _SCALARS else _value(value)
                    key = kv.key
                    if "." in key:
                        nest(attributes, key, value)
                    else:
                        attributes[key] = value
                append(record(
                    service, attributes, log.time_unix_nano, log.observed_time_unix_nano,
                    log.severity_number, log.severity_text,
                    _value(log.body) if log.HasField("body") else None,
                    _id_bytes(log.trace_id, 16, r, s, n, "traceId"),
                    _id_bytes(log.span_id, 8, r, s, n, "spanId"),
                    log.event_name,
                ))
    return records


_SCALARS = frozenset(("string_value", "int_value", "bool_value", "double_value"))


def _value(value):
    """An AnyValue as JSON-ready Python."""
    kind = value.WhichOneof("value")
    if kind in _SCALARS:
        return getattr(value, kind)
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None  # empty, or a profiling-only string index


def _id_bytes(raw, size, r, s, n, name):
    if not raw or not any(raw):  # absent, or all zero: not part of a trace
        return None
    if len(raw) != size:
        raise _invalid(f"{Where(r, s, n)}.{name}", f"must be {size} bytes, got {len(raw)}")
    return raw.hex()


# -- JSON (proto3's JSON mapping, ids in hex). Each check names its place only when it fails:
# ``where`` is a Where, or a (parent, ".key" or index) pair, spelled out by _spelled.


def _json_records(document, scopes):
    records = []
    append = records.append
    for r, resource_logs in enumerate(_list(document, "resourceLogs", "")):
        where = Where(r)
        resource = _object(resource_logs, "resource", where)
        resource_pairs = _pairs(resource, (where, ".resource"))
        for s, scope_logs in enumerate(_list(resource_logs, "scopeLogs", where)):
            where = Where(r, s)
            scope = _object(scope_logs, "scope", where)
            service, base = _scope_base(
                resource_pairs, _string(scope, "name", (where, ".scope")),
                _string(scope, "version", (where, ".scope")), _pairs(scope, (where, ".scope")))
            scopes.add(len(records), r, s)
            for n, log in enumerate(_list(scope_logs, "logRecords", where)):
                place = Where(r, s, n)
                if log.__class__ is not dict:
                    raise _invalid(place, "must be an object")
                attributes = _copy(base) if base else {}
                for i, kv in enumerate(_list(log, "attributes", place)):
                    key, value = _pair(kv, (place, i), 0)
                    nest(attributes, key, value)
                body = log.get("body")
                append(record(
                    service, attributes, _uint64(log, "timeUnixNano", place),
                    _uint64(log, "observedTimeUnixNano", place),
                    _severity_number(log, place), _string(log, "severityText", place),
                    None if body is None else _json_value(body, (place, ".body"), 0),
                    _hex_id(log, "traceId", 16, place), _hex_id(log, "spanId", 8, place),
                    _string(log, "eventName", place),
                ))
    return records


def _spelled(where):
    """The JSON path of a place: a Where, or (parent, ".key" or index) pairs."""
    if where.__class__ is tuple:
        parent, step = where
        return f"{_spelled(parent)}{step}" if step.__class__ is str else (
            f"{_spelled(parent)}.attributes[{step}]")
    return str(where)


def _invalid(where, problem):
    place = _spelled(where)
    return InvalidInput("invalid_otlp", f"{place} {problem}", field=place)


def _list(container, key, where):
    if container.__class__ is not dict:
        raise _invalid(where or "the body", "must be an object")
    value = container.get(key)
    if value is None:
        return ()
    if value.__class__ is not list:
        raise _invalid((where, f".{key}") if where else key, "must be an array")
    return value


def _object(container, key, where):
    value = container.get(key)
    if value is None:
        return {}
    if value.__class__ is not dict:
        raise _invalid((where, f".{key}"), "must be an object")
    return value


def _string(container, key, where):
    value = container.get(key, "")
    if value.__class__ is not str:
        raise _invalid((where, f".{key}"), "must be a string")
    return value


def _uint64(container, key, where):
    value = container.get(key, 0)
    if value.__class__ is str and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if value.__class__ is not int or not 0 <= value < 2**64:
        raise _invalid((where, f".{key}"), "must be an unsigned 64-bit integer (or its decimal"
                                           " string)")
    return value


def _severity_number(log, where):
    value = log.get("severityNumber", 0)
    if value.__class__ is not int or not 0 <= value < 2**31:
        raise _invalid((where, ".severityNumber"), "must be an integer")
    return value


def _hex_id(log, key, size, where):
    value = log.get(key, "")
    if value.__class__ is not str or not _HEX.fullmatch(value):
        raise _invalid((where, f".{key}"), "must be a string of hexadecimal digits")
    if not value or not value.strip("0"):  # absent, or all zero: not part of a trace
        return None
    if len(value) != 2 * size:
        raise _invalid((where, f".{key}"), f"must be {2 * size} hexadecimal digits, got "
                                           f"{len(value)}")
    return value.lower()


def _pairs(container, where):
    """The (key, value) pairs of a JSON object's ``attributes`` (an array of KeyValue)."""
    return [_pair(kv, (where, i), 0)
            for i, kv in enumerate(_list(container, "attributes", where))]


def _pair(kv, where, depth):
    if kv.__class__ is not dict:
        raise _invalid(where, "must be an object")
    key = kv.get("key")
    if key.__class__ is not str:
        raise _invalid((where, ".key"), "must be a string")
    value = kv.get("value")
    return key, None if value is None else _json_value(value, (where, ".value"), depth)


def _json_value(value, where, depth):
    """An AnyValue of OTLP/JSON as JSON-ready Python, its types checked."""
    if value.__class__ is not dict:
        raise _invalid(where, "must be an AnyValue object")
    if depth > MAX_DEPTH:
        raise _invalid(where, f"is nested deeper than {MAX_DEPTH} levels")
    for kind, item in value.items():
        if kind == "stringValue":
            if item.__class__ is not str:
                raise _invalid((where, f".{kind}"), "must be a string")
            return item
        if kind == "intValue":
            if item.__class__ is str and _INT.fullmatch(item):
                item = int(item)
            if item.__class__ is not int or not -(2**63) <= item < 2**63:
                raise _invalid((where, f".{kind}"), "must be a 64-bit integer (or its decimal "
                                                    "string)")
            return item
        if kind == "boolValue":
            if item.__class__ is not bool:
                raise _invalid((where, f".{kind}"), "must be a boolean")
            return item
        if kind == "doubleValue":
            if item.__class__ not in (int, float) and item not in ("NaN", "Infinity",
                                                                     "-Infinity"):
                raise _invalid((where, f".{kind}"), "must be a number")
            return item if item.__class__ is str else float(item)
        if kind == "arrayValue":
            inner = (where, ".arrayValue")
            return [_json_value(v, ((inner, ".values"), f"[{i}]"), depth + 1)
                    for i, v in enumerate(_list(item, "values", inner))]
        if kind == "kvlistValue":
            inner = (where, ".kvlistValue")
            return dict(_pair(kv, ((inner, ".values"), f"[{i}]"), depth + 1)
                        for i, kv in enumerate(_list(item, "values", inner)))
        if kind == "bytesValue":
            try:
                base64.b64decode(item, validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise _invalid((where, f".{kind}"), "must be base64") from None
            return item
    return None  # empty, or a kind this receiver ignores (unknown fields are ignored)


# -- the protocol


class Otlp(Protocol):
    """POST /v1/logs: OTLP/HTTP logs, protobuf or JSON."""

    name = "otlp"
    routes = (Route("/v1/logs", "export_logs"),)

    def batch(self, request):
        encoding = ENCODINGS.get(request.content_type)
        if encoding is None:
            raise UnsupportedFormat(
                "unsupported_media_type",
                f"Content-Type {request.content_type or '(none)'!r} is not supported; use "
                f"{PROTOBUF} or {JSON}")
        body = request.read_body()
        scopes = Scopes()
        # Valid records are stored and the others counted in partial_success, as OTLP asks.
        return Batch(
            functools.partial(decode, body, encoding, request.content_encoding,
                              request.max_body_bytes, scopes),
            partial=True, allow_empty=True, caller=request.caller, context=scopes,
        )

    def answer(self, request, batch, result):
        response = ExportLogsServiceResponse()
        if result.rejected:
            response.partial_success.rejected_log_records = len(result.rejected)
            response.partial_success.error_message = _reasons(result.rejected, batch.context)
        return _encoded(response, _reply_type(request.content_type), 200)

    def error(self, failure):
        status = status_pb2.Status(code=GRPC_CODES.get(failure.status, code_pb2.INTERNAL),
                                   message=f"{failure.code}: {failure.message}")
        field = failure.details.get("field")
        if field:
            violation = error_details_pb2.BadRequest.FieldViolation(
                field=field, description=failure.message)
            status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        answer = _encoded(status, _reply_type(failure.request_type), failure.status)
        answer.headers.update(failure.headers)
        return answer

    def format_name(self, request):
        return f"otlp_{ENCODINGS.get(request.content_type, 'other')}"

    def openapi(self, config):
        return {"export_logs": {"post": _operation()}}, {}


def _reply_type(request_type):
    return JSON if request_type == JSON else PROTOBUF


def _encoded(message, content_type, status):
    if content_type == JSON:
        body = json_format.MessageToJson(message, indent=None).encode()
    else:
        body = message.SerializeToString()
    return Answer(status, body, content_type=content_type)


def _reasons(rejected, scopes):
    """The partial_success message: each refused record's place and reasons, the first few."""
    named = sorted(rejected)[:MAX_REASONS]
    text = " | ".join(f"{scopes.place(index)}: {reasons(rejected[index])}" for index in named)
    more = len(rejected) - len(named)
    return f"{len(rejected)} log records refused: {text}" + (f" | and {more} more" if more else "")


def _operation():
    binary = {"schema": {"type": "string", "format": "binary",
                         "description": "A serialized message of opentelemetry-proto."}}
    json_body = {"schema": {"type": "object", "description": "The message in OTLP/JSON."}}
    failure = {"description": "A google.rpc.Status in the request's encoding.",
               "content": {PROTOBUF: binary, JSON: json_body}}
    return {
        "tags": ["ingest"],
        "parameters": [{"in": "header", "name": "Content-Encoding",
                        "schema": {"type": "string", "enum": ["gzip", "deflate"]}}],
        "requestBody": {"required": True,
                        "description": "An ExportLogsServiceRequest: binary protobuf or OTLP/JSON "
                                       "(trace and span ids in hex).",
                        "content": {PROTOBUF: binary, JSON: json_body}},
        "responses": {
            "200": {"description": "Stored; partial_success counts and names the records "
                                   "refused (an ExportLogsServiceResponse, in the request's "
                                   "encoding).", "content": {PROTOBUF: binary, JSON: json_body}},
            "400": {**failure, "description": "The body cannot be decoded, or a field has the "
                                              "wrong type or length: nothing was stored."},
            **{status: failure for status in ("401", "403", "408", "413", "415")},
            "429": {**failure, "headers": RETRY_AFTER},
            "503": {**failure, "headers": RETRY_AFTER},
            "507": {**failure, "headers": RETRY_AFTER},
            "500": failure,
        },
    }


PROTOCOL = Otlp()
