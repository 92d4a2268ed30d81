"""Documents of other shapes as the collector's records: which field holds what.

A shipper that sends JSON of its own shape (Vector's http sink, Fluent Bit, syslog-ng,
the documents of an Elasticsearch bulk) names its message, time, service and level
fields its own way. A ``FieldMap`` says where to look for each record field: a list of
candidate names, the first one present wins (a dotted name also looks into nested
objects, ``host.name``). Every other field becomes an attribute, a dotted name a path
(``http.status`` -> ``{"http": {"status": ...}}``), so that ``attr.http.status`` finds it.
Levels may be syslog's or OpenTelemetry's numbers, times epoch numbers of any unit.

What the map makes of a document is then validated by the one record schema, like a
record sent to /ingest.
"""

import re
from dataclasses import dataclass, fields, replace

from ...errors import InvalidInput
from ...severity import NUMBER_SCALES, number_level

# A record without a level is stored at this one (documents of most shippers have none).
DEFAULT_SEVERITY = "INFO"
MAX_CANDIDATES = 16
MAX_NAME = 128
_NUMBER = re.compile(r"-?[0-9]{1,30}(?:\.[0-9]{1,30})?(?:[eE][-+]?[0-9]{1,3})?")


@dataclass(frozen=True)
class FieldMap:
    """Where a document keeps each record field: candidate names, the first present wins."""

    # The names of the collector's own record, of Elastic's Common Schema (Filebeat), of
    # rsyslog's default JSON template (timereported, fromhost, priority: a severity name),
    # of syslog-ng's format-json (MESSAGE, HOST, PRIORITY) and of Fluent Bit (log, date).
    message: tuple = ("message", "msg", "log", "MESSAGE")
    timestamp: tuple = ("timestamp", "@timestamp", "time", "date", "timereported")
    service: tuple = ("service", "service.name")
    severity: tuple = ("severity", "level", "log.level", "priority", "PRIORITY")
    host: tuple = ("host", "host.name", "hostname", "fromhost", "HOST")
    trace_id: tuple = ("trace_id", "trace.id", "traceId")
    span_id: tuple = ("span_id", "span.id", "spanId")
    event_id: tuple = ("event_id",)
    default_service: str | None = None  # when the document names none
    severity_numbers: str = "syslog"  # the scale a numeric level is read on

    def record(self, document, service=None, event_id=None):
        """The record a JSON object stands for; ``document`` is consumed.

        ``service`` and ``event_id`` are the protocol's own (an Elasticsearch index, a
        bulk item's ``_id``), used when the document names none. A value that is not
        of the field's type is left as it is, for the record schema to name.
        """
        record = {}
        for name in RECORD_FIELDS:
            value = take(document, getattr(self, name))
            if value is not None:
                record[name] = value
        level = record.get("severity")
        if level is None:
            record["severity"] = DEFAULT_SEVERITY
        elif level.__class__ is not str or (len(level) <= 2 and level.isascii()
                                             and level.isdigit()):
            record["severity"] = self.level(level)
        moment = record.get("timestamp")
        if moment is not None:
            record["timestamp"] = epoch_or_text(moment)
        if "service" not in record:
            service = self.default_service or service
            if service is not None:
                record["service"] = service
        if event_id is not None:
            record["event_id"] = event_id
        attributes = document.pop("attributes", None)
        if attributes.__class__ is not dict:
            if attributes is not None:
                document["attributes"] = attributes
            attributes = {}
        for key, value in document.items():
            nest(attributes, key, value)
        if attributes:
            record["attributes"] = attributes
        return record

    def level(self, value):
        """A numeric level (or its digits) as a level name; other values as they are."""
        number = int(value) if value.__class__ is str else value  # ASCII digits, see record
        if number.__class__ is not int:
            return value
        return number_level(number, self.severity_numbers) or value


RECORD_FIELDS = ("message", "timestamp", "service", "severity", "host", "trace_id", "span_id",
                 "event_id")
DEFAULTS = FieldMap()

# Query parameter -> FieldMap attribute; each has a header too (PARAMETER_HEADERS).
PARAMETERS = {
    **{f"{name}_field": name for name in RECORD_FIELDS},
    "default_service": "default_service",
    "severity_numbers": "severity_numbers",
}
PARAMETER_HEADERS = {
    parameter: "Collector-" + "-".join(part.title() for part in parameter.split("_"))
    for parameter in PARAMETERS
}


def from_request(args, headers, base=DEFAULTS):
    """The FieldMap a request's parameters (or, failing them, headers) ask for, over ``base``.

    None when the request names none: the protocol then reads its own shape.
    """
    changes = {}
    for parameter, attribute in PARAMETERS.items():
        value = args.get(parameter)
        if value is None:
            value = headers.get(PARAMETER_HEADERS[parameter])
        if value is None:
            continue
        changes[attribute] = _parameter_value(parameter, attribute, value)
    return replace(base, **changes) if changes else None


def _parameter_value(parameter, attribute, value):
    value = value.strip()
    if attribute == "severity_numbers":
        if value not in NUMBER_SCALES:
            raise InvalidInput("invalid_parameter",
                               f"{parameter} must be one of {', '.join(NUMBER_SCALES)}",
                               parameter=parameter)
        return value
    if attribute == "default_service":
        if not 1 <= len(value) <= 128:
            raise InvalidInput("invalid_parameter", f"{parameter} must be 1 to 128 characters",
                               parameter=parameter)
        return value
    names = tuple(name.strip() for name in value.split(","))
    if not 1 <= len(names) <= MAX_CANDIDATES or not all(
            1 <= len(name) <= MAX_NAME for name in names):
        raise InvalidInput(
            "invalid_parameter",
            f"{parameter} must be 1 to {MAX_CANDIDATES} comma-separated field names of 1 to "
            f"{MAX_NAME} characters", parameter=parameter)
    return names


def mapping_parameters():
    """The OpenAPI parameters of the field mapping, query and header alike."""
    described = {f.name: f for f in fields(FieldMap)}
    parameters = []
    for parameter, attribute in PARAMETERS.items():
        if attribute in RECORD_FIELDS:
            default = ",".join(described[attribute].default)
            text = (f"The document's fields that hold the record's {attribute}, comma-separated; "
                    f"the first present wins (default: {default}).")
        elif attribute == "default_service":
            text = "The service of documents that name none."
        else:
            text = ("How numeric levels read: syslog (0 emergency ... 7 debug, the default) "
                    "or otel (SeverityNumber 1-24).")
        schema = ({"type": "string", "enum": list(NUMBER_SCALES)}
                  if attribute == "severity_numbers" else {"type": "string"})
        parameters.append({"in": "query", "name": parameter, "schema": schema,
                           "description": text})
        parameters.append({"in": "header", "name": PARAMETER_HEADERS[parameter],
                           "schema": schema, "description": f"As the {parameter} parameter."})
    return parameters


def take(document, names):
    """Remove and return the first of ``names`` that ``document`` holds as a non-empty scalar.

    A dotted name is a key of that spelling, else a path into nested objects (an emptied
    object is removed).
    """
    for name in names:
        value = document.get(name)
        if value is not None:
            if _scalar(value):
                del document[name]
                return value
            continue
        first, dot, rest = name.partition(".")
        if dot:
            node = document.get(first)
            if node.__class__ is dict:
                value = _take_path(document, first, node, rest)
                if value is not None:
                    return value
    return None


def _take_path(container, key, node, path):
    """Remove and return the scalar at ``path`` in ``node`` (``container[key]``), or None."""
    first, dot, rest = path.partition(".")
    value = node.get(first)
    if dot:
        if value.__class__ is not dict:
            return None
        value = _take_path(node, first, value, rest)
    elif value is None or not _scalar(value):
        return None
    else:
        del node[first]
    if value is not None and not node:
        del container[key]
    return value


def _scalar(value):
    return value.__class__ not in (dict, list) and value != ""


def nest(attributes, key, value):
    """Set ``key`` in ``attributes``: a dotted key as a path of nested objects.

    A key whose path is taken by a value of another kind (``http`` beside ``http.status``)
    stays as it is, at the top.
    """
    if "." not in key:
        attributes[key] = value
        return
    parts = key.split(".")
    if "" in parts:
        attributes[key] = value
        return
    node = attributes
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif child.__class__ is not dict:
            attributes[key] = value
            return
        node = child
    if node.get(parts[-1]).__class__ is dict:  # an object holds that path already
        attributes[key] = value
    else:  # a later value of the same name wins, as a later key does in JSON
        node[parts[-1]] = value


def epoch_or_text(value):
    """A time as the record schema reads it: epoch seconds from a number of any unit, else text.

    Numbers (and numeric strings) are read by magnitude, as seconds, milliseconds,
    microseconds or nanoseconds; the store keeps microseconds.
    """
    number = value
    if value.__class__ is str:
        if not _NUMBER.fullmatch(value):
            return value
        number = float(value) if any(c in value for c in ".eE") else int(value)
    elif value.__class__ not in (int, float):
        return value
    magnitude = abs(number)
    if magnitude < 1e11 or magnitude >= 1e20:  # seconds, or far beyond any time: the schema says
        return number
    unit = 1_000 if magnitude < 1e14 else 1_000_000 if magnitude < 1e17 else 1_000_000_000
    if number.__class__ is int:
        return (number * 1_000_000 // unit) / 1e6
    return number / unit


def seconds_of_nanos(nanos):
    """Epoch nanoseconds as epoch seconds, to the microsecond the store keeps."""
    return (nanos // 1000) / 1e6
