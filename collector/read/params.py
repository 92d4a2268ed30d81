"""Query parameters of the read endpoints, validated by marshmallow schemas.

Every bad parameter is an InvalidInput that names it. What they load is neutral
(times in microseconds, a full-text query as its terms), for the storage to
turn into its own SQL with bound parameters.
"""

import base64
import hashlib
import re

import orjson
from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)

from ..errors import InvalidInput
from ..fields import BoundedString, HexId, RecordField, Severity, parse_rfc3339
from ..storage.base import OPERATORS, Term

_RELATIVE = re.compile(r"(\d{1,9})([smhdw])")
_MAX_AGO = 2**62  # microseconds, about 146,000 years
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_ATTRIBUTE_KEY = re.compile(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*\Z")
_WORD = re.compile(r"\w")

# Widths of a histogram's buckets, from which a chart picks one for its range.
INTERVALS = {"1s": 1, "5s": 5, "10s": 10, "30s": 30, "1m": 60, "5m": 300, "10m": 600,
             "15m": 900, "30m": 1800, "1h": 3600, "3h": 10800, "6h": 21600, "12h": 43200,
             "1d": 86400}
# What counts may be grouped by: a column, or an attribute key as the attr. filters name it.
# (?![\s\S]) ends the text in both Python's and OpenAPI's (ECMA 262) regular expressions.
_GROUPING = re.compile(r"^(severity|service|host|attr(\.[A-Za-z0-9_\-]+)+)(?![\s\S])")


class Ago(int):
    """A time relative to the query's "now", in microseconds before it."""


def resolve_time(bound, now):
    """Epoch microseconds of a TimeBound value, taking ``now`` for relative ones."""
    return now - bound if isinstance(bound, Ago) else bound


class TimeBound(RecordField):
    """An RFC 3339 time, or a time relative to now such as 15m, 2h, 7d.

    Loads as epoch microseconds, or as ``Ago`` for a relative time: a query that
    pages keeps the "now" of its first page, so its window does not slide.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        relative = _RELATIVE.fullmatch(value)
        if relative:
            amount, unit = relative.groups()
            # Clamped so that now minus it still fits SQLite's 64-bit integers
            # (999999999w is some 1.9e7 years): it means "from the beginning".
            return Ago(min(int(amount) * _UNIT_SECONDS[unit] * 1_000_000, _MAX_AGO))
        try:
            return parse_rfc3339(value)
        except ValidationError:
            # A '+' of an offset sent unencoded in a URL arrives as a space.
            hint = (" A '+' in a URL's query is a space: send the offset's '+' as %2B."
                    if re.search(r"\d \d\d:?\d\d$", value) else "")
            raise ValidationError(
                f"Not a time: {value[:40]!r}; use RFC 3339 or a relative time such as 15m, 2h,"
                f" 7d.{hint}"
            ) from None


class FullTextQuery(RecordField):
    """Words, "quoted phrases", prefix* terms, OR and NOT; loads as a tuple of Terms and operators.

    Every word and phrase is a Term, so punctuation in log text (IPs, paths,
    ids) is searched as text, never read as the storage's query syntax.
    """

    def _deserialize(self, value, attr, data, **kwargs):
        # A NUL separates words in the indexed text, as a space does (and SQLite's
        # full-text engine would read it as the end of the query).
        value = value.replace("\0", " ")
        if value.count('"') % 2:
            raise ValidationError("Unbalanced double quote.")
        terms = []
        for phrase, word in re.findall(r'"([^"]*)"|(\S+)', value):
            if word in OPERATORS:
                if not terms or terms[-1] in OPERATORS:
                    raise ValidationError(f"{word} must stand between two terms.")
                terms.append(word)
                continue
            text = phrase or word
            prefix = not phrase and text.endswith("*")
            text = text.rstrip("*") if prefix else text
            if not _WORD.search(text):
                continue  # nothing searchable: punctuation only
            terms.append(Term(text, prefix))
        if not terms:
            raise ValidationError("No word to search for.")
        if terms[-1] in OPERATORS:
            raise ValidationError(f"{terms[-1]} must stand between two terms.")
        return tuple(terms)


# A cursor holds where the previous page ended, the snapshot paging started
# from (newest id and "now"), and the fingerprint of the query it belongs to.
_CURSOR_KEYS = ("timestamp", "id", "max_id", "now")
# Each is an id or a time in microseconds, from 0 to SQLite's largest integer:
# beyond, a tampered cursor would reach SQLite as a number it cannot bind.
_CURSOR_MAX = 2**63 - 1


class Cursor(RecordField):
    """The opaque position a previous page ended at."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            position = orjson.loads(base64.urlsafe_b64decode(value.encode() + b"=="))
            if not (
                type(position) is dict
                and all(type(position.get(key)) is int and 0 <= position[key] <= _CURSOR_MAX
                        for key in _CURSOR_KEYS)
                and type(position.get("fingerprint")) is str
            ):
                raise ValueError
        except (ValueError, TypeError, orjson.JSONDecodeError):
            raise ValidationError("Not a cursor returned by this collector.") from None
        return position


def encode_cursor(**position):
    """The opaque cursor for a position (the keys ``Cursor`` expects)."""
    return base64.urlsafe_b64encode(orjson.dumps(position)).rstrip(b"=").decode()


def query_fingerprint(args):
    """A short digest of a query's parameters other than its position and page size."""
    items = sorted((k, v) for k, v in args.items(multi=True) if k not in ("cursor", "limit"))
    return hashlib.blake2b(orjson.dumps(items), digest_size=6).hexdigest()


UNKNOWN = "Unknown parameter."


class LogFilterSchema(Schema):
    """Filters shared by every read endpoint; all of them combine with AND."""

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": UNKNOWN}

    service = fields.List(BoundedString(128))
    severity = fields.List(Severity())
    min_severity = Severity()
    since = TimeBound()
    until = TimeBound()
    host = BoundedString(255)
    trace_id = HexId(32)
    api_key_id = fields.Integer(validate=validate.Range(min=0, max=2**63 - 1))
    q = FullTextQuery()
    pattern = fields.Integer(validate=validate.Range(min=1, max=2**63 - 1),
                             metadata={"description": "A pattern's id (GET /logs/patterns): the "
                                                      "records of its pattern as it stands now, "
                                                      "an old id of a merged pattern included."})
    attr = fields.Dict(
        keys=fields.String(validate=validate.Regexp(
            _ATTRIBUTE_KEY, error="Attribute keys are letters, digits, _ and -, nested with dots."
        )),
        values=fields.String(),
    )

    @pre_load
    def gather_attributes(self, data, **kwargs):
        """Move ``attr.<key>`` parameters into one ``attr`` mapping."""
        attributes = {key[5:]: value for key, value in data.items() if key.startswith("attr.")}
        if attributes:
            data = {key: value for key, value in data.items() if not key.startswith("attr.")}
            data["attr"] = attributes
        return data


class LogPageSchema(LogFilterSchema):
    """GET /logs: filters, order, page size, and either a cursor or a follow position."""

    order = fields.String(load_default="desc", validate=validate.OneOf(["desc", "asc"]))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    cursor = Cursor()
    after_id = fields.Integer(validate=validate.Range(min=0, max=2**63 - 1))
    wait = fields.Float(validate=validate.Range(0, 30))

    @validates_schema
    def check_combinations(self, data, **kwargs):
        if "wait" in data and "after_id" not in data:
            raise ValidationError("wait needs after_id: it follows records newer than it.", "wait")
        if "after_id" in data and "cursor" in data:
            raise ValidationError("Use after_id or cursor, not both.", "after_id")


class LogStatsSchema(LogFilterSchema):
    """GET /logs/stats: counts grouped by severity, service, host or an attribute, and by time
    bucket, the empty buckets filled on request."""

    by = fields.List(fields.String(validate=validate.Regexp(
        _GROUPING, error="One of severity, service, host, or attr.<key> (an attribute key: "
                         "letters, digits, _ and -, nested with dots).")))
    interval = fields.String(validate=validate.OneOf(list(INTERVALS)))
    fill = fields.Boolean(load_default=False, metadata={
        "description": "With interval: every bucket from since (or the first one counted) to "
                       "until (or now) is answered, an empty one as a row of count 0."})

    @validates_schema
    def check_fill(self, data, **kwargs):
        if data.get("fill") and "interval" not in data:
            raise ValidationError("fill needs interval: it fills the empty time buckets.",
                                  "fill")


class LogExportSchema(LogFilterSchema):
    """GET /logs/export: filters and the order of the stream."""

    order = fields.String(load_default="asc", validate=validate.OneOf(["asc", "desc"]))


class LogPatternsSchema(LogFilterSchema):
    """GET /logs/patterns: filters, patterns first seen since a time, and the sparkline."""

    new_since = TimeBound(metadata={"description": "Only the patterns whose first record ever "
                                                   "is this recent (RFC 3339 or relative)."})
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    buckets = fields.Integer(load_default=24, validate=validate.Range(1, 200),
                             metadata={"description": "Time buckets of each pattern's counts, "
                                                      "over since..until (default: the first "
                                                      "matching record..now)."})


_LIST_PARAMETERS = {"service", "severity", "by"}

PAGE_SCHEMA = LogPageSchema()
STATS_SCHEMA = LogStatsSchema()
EXPORT_SCHEMA = LogExportSchema()
PATTERNS_SCHEMA = LogPatternsSchema()


def load_params(schema, args):
    """Validate query parameters (a werkzeug MultiDict) with ``schema``, or answer 400.

    List parameters may repeat or hold comma-separated values; any other
    parameter given twice is an error.
    """
    data, errors = {}, {}
    for name in args:
        values = args.getlist(name)
        if name in _LIST_PARAMETERS:
            data[name] = [item for value in values for item in value.split(",") if item]
        elif len(values) > 1:
            errors[name] = ["Given more than once."]
        else:
            data[name] = values[0]
    try:
        params = schema.load(data)
    except ValidationError as exc:
        errors.update(exc.messages)
        valid = ", ".join(sorted(field.data_key or name for name, field in schema.fields.items()
                                 if not field.dump_only))
        for name, reasons in errors.items():
            if reasons == [UNKNOWN]:
                errors[name] = [f"{UNKNOWN} The valid ones are: {valid}."]
    if errors:
        raise InvalidInput(
            "invalid_parameter",
            "; ".join(f"{name}: {reasons_text(reasons)}" for name, reasons in errors.items()),
            parameter=next(iter(errors)),
            errors=errors,
        )
    return params


def reasons_text(reasons):
    """A parameter's reasons (marshmallow's nested lists and dicts) as one sentence."""
    return " ".join(map(str, _flatten(reasons)))


def _flatten(reasons):
    if isinstance(reasons, dict):
        for value in reasons.values():
            yield from _flatten(value)
    elif isinstance(reasons, list):
        for value in reasons:
            yield from _flatten(value)
    else:
        yield reasons
