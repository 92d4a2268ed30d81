"""Loki's push API: POST /loki/api/v1/push, JSON or snappy-compressed protobuf.

As Loki's own push handler reads it (grafana/loki pkg/loghttp/push, pkg/push/push.proto):
``application/json`` is ``{"streams": [{"stream": {labels}, "values": [[ns, line],
[ns, line, {structured metadata}]]}]}``, with times as strings of Unix nanoseconds;
any other Content-Type is a ``logproto.PushRequest`` in snappy's block format (what
Promtail and Alloy send). ``Content-Encoding: gzip`` or ``deflate`` is undone first;
``snappy`` is tolerated, as Loki does.

The labels name the service (``service_name``, else ``service``, ``app``, ``job``;
``unknown_service`` as Loki's own default), the level (``level``, ``detected_level``,
``severity``) and the host (``host``); the other labels and the structured metadata
become attributes (``trace_id`` and ``span_id`` metadata the record's ids). Success is
``204``. As Loki does, the valid entries of a push are stored and the refused ones
named in a ``400`` answer (its text/plain error body); a body that cannot be read
stores nothing.
"""

import functools
import re

import cramjam
import orjson
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2
from google.protobuf.message import DecodeError

from ...apidoc import RETRY_AFTER
from ...errors import InvalidInput, TooLarge, UnsupportedFormat
from ...severity import CANONICAL
from ..decoding import decompress
from ..writer import Batch
from .base import Answer, Protocol, Route, reasons
from .mapping import DEFAULT_SEVERITY, nest, seconds_of_nanos

JSON = "application/json"
SERVICE_LABELS = ("service_name", "service", "app", "job")
LEVEL_LABELS = ("level", "detected_level", "severity")
UNKNOWN_SERVICE = "unknown_service"
MAX_REASONS = 10  # refused entries named in an answer
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|\})', re.S)
_ESCAPE = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.S)
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _push_request_class():
    """logproto.PushRequest, described from Loki's pkg/push/push.proto (Apache-2.0).

    Loki publishes no Python classes; describing its four small messages here lets
    protobuf's own parser read them, with no generated module to keep in step.
    """
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="collector/loki/push.proto", package="logproto", syntax="proto3",
        dependency=[timestamp_pb2.DESCRIPTOR.name])
    messages = {
        "PushRequest": [("streams", 1, ".logproto.StreamAdapter", True),
                        ("format", 2, field.TYPE_STRING, False)],
        "StreamAdapter": [("labels", 1, field.TYPE_STRING, False),
                          ("entries", 2, ".logproto.EntryAdapter", True),
                          ("hash", 3, field.TYPE_UINT64, False)],
        "LabelPairAdapter": [("name", 1, field.TYPE_STRING, False),
                             ("value", 2, field.TYPE_STRING, False)],
        "EntryAdapter": [("timestamp", 1, ".google.protobuf.Timestamp", False),
                         ("line", 2, field.TYPE_STRING, False),
                         ("structuredMetadata", 3, ".logproto.LabelPairAdapter", True),
                         ("parsed", 4, ".logproto.LabelPairAdapter", True)],
    }
    for name, fields in messages.items():
        message = file.message_type.add(name=name)
        for field_name, number, kind, repeated in fields:
            described = message.field.add(
                name=field_name, number=number,
                label=field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL)
            if isinstance(kind, str):
                described.type, described.type_name = field.TYPE_MESSAGE, kind
            else:
                described.type = kind
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(
        timestamp_pb2.DESCRIPTOR.serialized_pb))
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("logproto.PushRequest"))


PushRequest = _push_request_class()


class Streams:
    """Which stream each decoded entry came from: (first entry index, labels) runs."""

    def __init__(self):
        self.runs = []

    def add(self, first, labels):
        self.runs.append((first, labels))

    def place(self, index):
        """The stream and position of entry ``index``."""
        for first, labels in reversed(self.runs):
            if first <= index:
                return f"entry {index - first} of stream '{labels}'"
        raise IndexError(index)


def decode(body, content_type, content_encoding, max_bytes, streams):
    """The records of a push body; noting each one's stream in ``streams``."""
    if (content_encoding or "").strip().lower() == "snappy":
        content_encoding = None  # Loki ignores it: snappy belongs to the protobuf body
    data = decompress(body, content_encoding, max_bytes)
    if content_type == JSON:
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput("malformed_json", f"the body is not valid JSON: {exc}") from None
        return _json_records(document, streams)
    return _protobuf_records(_unsnappy(data, max_bytes), streams)


def _unsnappy(data, max_bytes):
    # The block format starts with the uncompressed length (a varint): check it first.
    length, shift = 0, 0
    for byte in data[:10]:
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    if length > max_bytes:
        raise TooLarge("payload_too_large", f"the decompressed body exceeds {max_bytes} bytes")
    try:
        return bytes(cramjam.snappy.decompress_raw(data))
    except cramjam.DecompressionError as exc:
        raise InvalidInput("bad_encoding", f"the body is not snappy-compressed protobuf: {exc}"
                           ) from None


def _protobuf_records(data, streams):
    try:
        request = PushRequest.FromString(data)
    except DecodeError as exc:
        raise InvalidInput("malformed_protobuf", f"the body is not a PushRequest: {exc}"
                           ) from None
    records = []
    for stream in request.streams:
        base = _stream_record(parse_labels(stream.labels), stream.labels)
        streams.add(len(records), stream.labels)
        for entry in stream.entries:
            stamp = entry.timestamp
            if not 0 <= stamp.nanos < 1_000_000_000:
                raise InvalidInput("invalid_push", f"stream '{stream.labels}' has an entry whose "
                                   f"timestamp has {stamp.nanos} nanoseconds")
            records.append(_entry(base, stamp.seconds * 1_000_000_000 + stamp.nanos, entry.line,
                                  [(pair.name, pair.value) for pair in entry.structuredMetadata]))
    return records


def _json_records(document, streams):
    if document.__class__ is not dict or document.get("streams", []).__class__ is not list:
        raise InvalidInput("invalid_push", 'the body must be {"streams": [...]}')
    records = []
    for number, stream in enumerate(document.get("streams", [])):
        labels = stream.get("stream") if stream.__class__ is dict else None
        if labels.__class__ is not dict:
            raise InvalidInput("invalid_push", f"streams[{number}].stream must be an object of "
                               "labels")
        for name, value in labels.items():
            if value.__class__ is not str:
                raise InvalidInput("invalid_push", f"streams[{number}].stream.{name} must be a "
                                   "string")
        text = "{" + ", ".join(f"{name}={orjson.dumps(value).decode()}"
                               for name, value in labels.items()) + "}"
        base = _stream_record(_checked(labels, text), text)
        streams.add(len(records), text)
        values = stream.get("values")
        if values is None:  # "values": null holds no entries, as Loki reads it
            values = []
        if values.__class__ is not list:
            raise InvalidInput("invalid_push", f"streams[{number}].values must be an array")
        for position, value in enumerate(values):
            records.append(_json_entry(base, value, f"streams[{number}].values[{position}]"))
    return records


def _json_entry(base, value, where):
    if value.__class__ is not list or len(value) not in (2, 3):
        raise InvalidInput("invalid_push", f"{where} must be [time, line] or [time, line, "
                           "{metadata}]")
    stamp, line = value[0], value[1]
    if stamp.__class__ is not str or not stamp.isascii() or not stamp.isdigit() or len(
            stamp) > 20:
        raise InvalidInput("invalid_push", f"{where}[0] must be a string of Unix nanoseconds")
    if line.__class__ is not str:
        raise InvalidInput("invalid_push", f"{where}[1] must be a string")
    metadata = value[2] if len(value) == 3 else {}
    if metadata.__class__ is not dict or any(v.__class__ is not str for v in metadata.values()):
        raise InvalidInput("invalid_push", f"{where}[2] must be an object of strings")
    return _entry(base, int(stamp), line, metadata.items())


def _stream_record(labels, text):
    """What every entry of a stream shares: its service, level, host and label attributes."""
    if not labels:
        raise InvalidInput("invalid_push", f"stream '{text}' has no labels: at least one label "
                           "pair is required per stream")
    labels = dict(labels)
    service = next((labels.pop(name) for name in SERVICE_LABELS if labels.get(name)),
                   UNKNOWN_SERVICE)
    level = next((labels.pop(name) for name in LEVEL_LABELS if labels.get(name)),
                 DEFAULT_SEVERITY)
    record = {"service": service, "severity": CANONICAL.get(level.upper(), level)}
    if labels.get("host"):
        record["host"] = labels.pop("host")
    record["attributes"] = labels
    return record


def _entry(base, nanos, line, metadata):
    record = dict(base)
    attributes = dict(base["attributes"])
    for name, value in metadata:
        if name in ("trace_id", "span_id"):
            if value:
                record[name] = value
        else:
            nest(attributes, name, value)
    record["attributes"] = attributes or None
    record["timestamp"] = seconds_of_nanos(nanos)
    record["message"] = line
    return record


def parse_labels(text):
    """The labels of a LogQL stream selector, ``{name="value", ...}``, as a dict."""
    stripped = text.strip()
    if not stripped.startswith("{"):
        raise _bad_labels(text, "a selector starts with {")
    labels, position = {}, 1
    if stripped[1:].strip() == "}":
        return labels
    while True:
        match = _LABEL.match(stripped, position)
        if match is None:
            raise _bad_labels(text, f'expected name="value" at character {position}')
        name, value, end = match.groups()
        if name in labels:
            raise _bad_labels(text, f"duplicate label name {name!r}")
        labels[name] = _ESCAPE.sub(_unescape, value)
        position = match.end()
        if end == "}":
            break
    if stripped[position:].strip():
        raise _bad_labels(text, "text after the closing }")
    return labels


def _checked(labels, text):
    for name in labels:
        if not _LABEL_NAME.fullmatch(name):
            raise _bad_labels(text, f"invalid label name {name!r}")
    return labels


def _bad_labels(text, problem):
    return InvalidInput("invalid_push", f"couldn't parse labels {text[:200]!r}: {problem}")


def _unescape(match):
    escape = match.group()[1:]
    if escape[0] in "xuU":
        return chr(int(escape[1:], 16)) if int(escape[1:], 16) < 0x110000 else escape
    if escape[0].isdigit():
        return chr(int(escape, 8))
    return _ESCAPES.get(escape, escape)


class Loki(Protocol):
    """POST /loki/api/v1/push: Loki's push API, JSON or snappy protobuf."""

    name = "loki"
    routes = (Route("/loki/api/v1/push", "push"),)

    def batch(self, request):
        if not request.content_type:
            raise UnsupportedFormat("unsupported_media_type",
                                    "a push needs a Content-Type: application/json, or "
                                    "application/x-protobuf for snappy protobuf")
        body = request.read_body()
        streams = Streams()
        return Batch(
            functools.partial(decode, body, request.content_type, request.content_encoding,
                              request.max_body_bytes, streams),
            partial=True, allow_empty=True, caller=request.caller, context=streams,
        )

    def answer(self, request, batch, result):
        if not result.rejected:
            return Answer(204, b"")
        named = sorted(result.rejected)[:MAX_REASONS]
        lines = [f"{batch.context.place(index)} refused: {reasons(result.rejected[index])}"
                 for index in named]
        more = len(result.rejected) - len(named)
        summary = (f"{len(result.rejected)} of {batch.count} entries were refused, the others "
                   "stored" + (f"; the first {len(named)}:" if more else ":"))
        return _text(400, "\n".join([summary, *lines]))

    def error(self, failure):
        answer = _text(failure.status, f"{failure.code}: {failure.message}")
        answer.headers.update(failure.headers)
        if failure.status == 401:
            answer.headers["WWW-Authenticate"] = 'Basic realm="collector"'
        return answer

    def format_name(self, request):
        return "loki_json" if request.content_type == JSON else "loki_protobuf"

    def openapi(self, config):
        text = {"text/plain": {"schema": {"type": "string"}}}
        failure = {"description": "What is wrong, as text.", "content": text}
        operation = {
            "tags": ["ingest"],
            "parameters": [{"in": "header", "name": "Content-Encoding",
                            "schema": {"type": "string", "enum": ["gzip", "deflate", "snappy"]}}],
            "requestBody": {
                "required": True,
                "description": "JSON streams, or a logproto.PushRequest compressed with snappy "
                               "(any other Content-Type).",
                "content": {JSON: {"schema": {"type": "object", "required": ["streams"]}},
                            "application/x-protobuf": {"schema": {"type": "string",
                                                                  "format": "binary"}}},
            },
            "responses": {
                "204": {"description": "Every entry was stored."},
                "400": {"description": "The body cannot be read (nothing stored), or some entries "
                                       "were refused (the others stored), each named.",
                        "content": text},
                **{status: failure for status in ("401", "403", "408", "413", "415")},
                "429": {**failure, "headers": RETRY_AFTER},
                "503": {**failure, "headers": RETRY_AFTER},
                "507": {**failure, "headers": RETRY_AFTER},
                "500": failure,
            },
        }
        return {"push": {"post": operation}}, {}


def _text(status, text):
    return Answer(status, (text + "\n").encode(), content_type="text/plain; charset=utf-8")

PROTOCOL = Loki()
