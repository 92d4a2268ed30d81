"""The OpenAPI 3 description of the collector, generated from the schemas that validate requests.

The record and the query parameters come from the marshmallow schemas the views
load with (``record_schema(config)`` and ``collector.query``), so their fields,
required names and limits cannot drift from the validation. Paths are built from
the app's URL map: a routed endpoint with no entry in ``OPERATIONS`` stops the
build, so a new view cannot go undocumented.
"""

import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import INCLUDE, Schema, fields, validate

from . import query, schemas
from .api.ingest import MAX_IDEMPOTENCY_KEY
from .api.logs import MAX_RECORD_ID
from .auth import REQUIRED_SCOPES
from .decoding import DECODERS
from .severity import CANONICAL, RANKS

OPENAPI_VERSION = "3.0.3"

# Served by the docs blueprint itself, or Flask's own: not part of the API.
UNDOCUMENTED = {"static", "docs.asset"}


def _any_case(word):
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


# Severity accepts any case: an enum would list only some spellings, a pattern
# states exactly what the field accepts.
SEVERITY_PATTERN = "^(?:" + "|".join(_any_case(name) for name in CANONICAL) + ")$"
RELATIVE_TIME_PATTERN = r"^\d{1,9}[smhdw]$"


def collector_field_properties(self, field, ret=None, **kwargs):
    """OpenAPI properties of the collector's own fields, read from their configured limits.

    An apispec attribute function: apispec knows only marshmallow's built-in
    fields, and these check their values in ``_deserialize`` instead of with
    validators it could read.
    """
    if isinstance(field, schemas.BoundedString):
        return {"type": "string", "minLength": field.min_length, "maxLength": field.max_length}
    if isinstance(field, schemas.Message):
        # maxLength counts characters, the limit bytes: it is the bound for ASCII text.
        return {"type": "string", "minLength": 1, "maxLength": field.max_bytes,
                "description": f"Non-empty, at most {field.max_bytes} bytes of UTF-8."}
    if isinstance(field, schemas.Severity):
        return {"type": "string", "pattern": SEVERITY_PATTERN, "example": "INFO",
                "description": f"Any case: {', '.join(RANKS)}, or an alias "
                               f"({', '.join(sorted(set(CANONICAL) - set(RANKS)))})."}
    if isinstance(field, schemas.Timestamp):
        return {"oneOf": [{"type": "string", "format": "date-time"},
                          {"type": "number", "minimum": 0}],
                "description": "RFC 3339 / ISO 8601 (no offset means UTC) or epoch seconds; "
                               f"at most {field.max_future_skew} s ahead of the server clock; "
                               "defaults to the time received."}
    if isinstance(field, schemas.HexId):
        return {"type": "string", "pattern": f"^[0-9a-fA-F]{{{field.length}}}$",
                "minLength": field.length, "maxLength": field.length}
    if isinstance(field, schemas.Attributes):
        return {"type": "object", "additionalProperties": True,
                "maxProperties": field.max_keys,
                "description": f"Structured fields: nested at most {field.max_depth} levels, "
                               f"at most {field.max_keys} keys in all, at most "
                               f"{field.max_bytes} bytes serialized."}
    if isinstance(field, query.TimeBound):
        return {"anyOf": [{"type": "string", "format": "date-time"},
                          {"type": "string", "pattern": RELATIVE_TIME_PATTERN}],
                "description": "RFC 3339, or relative to now: 30s, 15m, 2h, 7d, 2w."}
    if isinstance(field, query.FullTextQuery):
        return {"type": "string", "description": 'Words (all must match), "a phrase", '
                                                 "prefix*, OR, NOT."}
    if isinstance(field, query.Cursor):
        return {"type": "string", "description": "The next_cursor of the previous page."}
    return {}


# Answers: no schema loads them, so these schemas exist for the document alone.

class StoredRecordSchema(Schema):
    """A stored record, as ingest echoes it and the read endpoints answer it."""

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


class ErrorSchema(Schema):
    """The one error shape; some errors add details such as parameter, errors, line."""

    class Meta:
        unknown = INCLUDE

    error = fields.String(required=True, metadata={"example": "invalid_parameter"})
    message = fields.String(required=True)
    parameter = fields.String()
    errors = fields.Dict(metadata={"description": "Reasons by record index or parameter name."})


class IngestAnswerSchema(Schema):
    """What a stored batch answers."""

    accepted = fields.Integer(required=True)
    duplicates = fields.Integer(required=True)
    first_id = fields.Integer(required=True, allow_none=True)
    last_id = fields.Integer(required=True, allow_none=True)
    rejected = fields.Integer(metadata={"description": "mode=partial only."})
    errors = fields.Dict(metadata={"description": "mode=partial only: record index to reasons."})
    items = fields.List(fields.Nested(StoredRecordSchema),
                        metadata={"description": "Absent with Prefer: return=minimal."})


class PageStatsSchema(Schema):
    took_ms = fields.Float(required=True)
    returned = fields.Integer(required=True)


class LogPageAnswerSchema(Schema):
    """A page of a search; next_cursor is null on the last page."""

    items = fields.List(fields.Nested(StoredRecordSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)
    stats = fields.Nested(PageStatsSchema, required=True)


class FollowAnswerSchema(Schema):
    """A page of a follow (after_id): continue from next_after_id."""

    items = fields.List(fields.Nested(StoredRecordSchema), required=True)
    next_after_id = fields.Integer(required=True)
    stats = fields.Nested(PageStatsSchema, required=True)


class CountRowSchema(Schema):
    start = fields.DateTime()
    severity = fields.String(validate=validate.OneOf(list(RANKS)))
    service = fields.String()
    count = fields.Integer(required=True)


class TookSchema(Schema):
    took_ms = fields.Float(required=True)


class StatsAnswerSchema(Schema):
    """Counts of matching records, by the requested dimensions."""

    total = fields.Integer(required=True)
    counts = fields.List(fields.Nested(CountRowSchema), required=True)
    stats = fields.Nested(TookSchema, required=True)


class HeadSchema(Schema):
    id = fields.Integer(required=True)
    link = fields.String(required=True, metadata={"pattern": "^[0-9a-f]{64}$"})


class AuditVerificationSchema(Schema):
    """The audit chain walked: intact, or the first record where it breaks."""

    intact = fields.Boolean(required=True)
    records = fields.Integer(required=True, metadata={"description": "Records checked."})
    pruned = fields.Integer(metadata={"description": "Intact: ids removed by retention."})
    head = fields.Nested(HeadSchema, metadata={"description": "Intact: the newest link; keep it "
                                                               "elsewhere to detect rewrites."})
    broken_at = fields.Integer(allow_none=True, metadata={"description": "Broken: the record."})
    reason = fields.String(metadata={"description": "Broken: what does not match."})


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


class ReadinessSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "fail"]))
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                         metadata={"description": '"ok", or what is wrong.'})


def _json(schema):
    return {"application/json": {"schema": schema}}


def _error(description):
    return {"description": description, "content": _json("Error")}


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                "schema": {"type": "integer"}}}
_READ_ERRORS = {
    "400": _error("invalid_parameter: a parameter is unknown or has a bad value; "
                  "`parameter` names it, `errors` gives the reasons of each."),
    "500": _error("internal_error"),
}
_ATTR_NOTE = (
    "\n\n`attr.<key>=<value>` (not listed below, its name is free): equality on a structured "
    "attribute, nested keys with dots (`attr.customer.plan=pro`); a value that spells a number "
    "also matches the number. List parameters (service, severity, by) may repeat or hold "
    "comma-separated values; every other parameter may be given once."
)


def _query(schema):
    # attr.<key> parameters are gathered by the schema's pre_load: documented in prose.
    return [{"in": "query", "schema": type(schema)(exclude=("attr",))}]


def operations(config):
    """OpenAPI operations by Flask endpoint, then by method."""
    probe = {"200": {"description": "Alive.", "content": _json("Health")}}
    ready = {"200": {"description": "Every check passes.", "content": _json("Readiness")},
             "503": {"description": "A check fails; `checks` names it.",
                     "content": _json("Readiness")}}
    ingest_body = {
        "required": True,
        "description": "A JSON array of records (a single object is a batch of one), or NDJSON: "
                       "one record object a line. Compressed with gzip or deflate when "
                       "Content-Encoding says so.",
        "content": {
            "application/json": {"schema": {"oneOf": [
                {"type": "array", "items": {"$ref": "#/components/schemas/LogRecord"},
                 "minItems": 1, "maxItems": config["MAX_BATCH_RECORDS"]},
                {"$ref": "#/components/schemas/LogRecord"},
            ]}},
            **{mimetype: {"schema": {"type": "string", "description": "One record a line."}}
               for mimetype in DECODERS if mimetype != "application/json"},
        },
    }
    stored_headers = {
        "Idempotent-Replayed": {"description": "true: the original answer to this key.",
                                "schema": {"type": "string", "enum": ["true"]}},
        "Preference-Applied": {"description": "return=minimal: the answer has no items.",
                               "schema": {"type": "string"}},
    }
    ingest = {
        "parameters": [
            {"in": "query", "name": "mode", "schema": {"type": "string", "default": "atomic",
                                                       "enum": ["atomic", "partial"]},
             "description": "atomic: any invalid record refuses the batch (422); partial: "
                            "the valid ones are stored and the rest listed (200)."},
            {"in": "header", "name": "Content-Encoding",
             "schema": {"type": "string", "enum": ["gzip", "deflate"]}},
            {"in": "header", "name": "Prefer", "schema": {"type": "string",
                                                          "enum": ["return=minimal"]},
             "description": "return=minimal: answer the counts without the stored records."},
            {"in": "header", "name": "Idempotency-Key",
             "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
             "description": "The same key and body within IDEMPOTENCY_TTL store nothing and "
                            "get the original answer back."},
        ],
        "requestBody": ingest_body,
        "responses": {
            "201": {"description": "Stored (atomic).", "headers": stored_headers,
                    "content": _json("IngestAnswer")},
            "200": {"description": "mode=partial: the valid records stored, the rest listed.",
                    "headers": stored_headers, "content": _json("IngestAnswer")},
            "400": _error("malformed_json, invalid_shape, empty_batch, bad_encoding, "
                          "unknown_parameter, invalid_parameter, invalid_idempotency_key"),
            "408": _error("request_timeout: the body did not arrive within BODY_READ_TIMEOUT"),
            "413": _error("payload_too_large (the body, or decompressed, over MAX_BODY_BYTES), "
                          "too_many_records (over MAX_BATCH_RECORDS)"),
            "415": _error("unsupported_media_type, unsupported_encoding"),
            "422": _error("validation_failed: `errors` maps record index to field to reasons; "
                          "idempotency_key_reused"),
            "503": {**_error("storage_busy, storage_read_only: nothing was stored"),
                    "headers": _RETRY_AFTER},
            "507": {**_error("storage_full: nothing was stored"), "headers": _RETRY_AFTER},
            "500": _error("internal_error: nothing of the batch was stored"),
        },
    }
    page = {
        "parameters": _query(query.PAGE_SCHEMA),
        "responses": {
            "200": {"description": "A page (newest first by default), or with after_id a "
                                   "follow page.",
                    "headers": {"Link": {"description": '<...>; rel="next" when there are '
                                                        "more records.",
                                         "schema": {"type": "string"}}},
                    "content": _json({"oneOf": [{"$ref": "#/components/schemas/LogPage"},
                                                {"$ref": "#/components/schemas/FollowPage"}]})},
            **_READ_ERRORS,
        },
    }
    return {
        "health.healthz": {"get": {"tags": ["health"], "responses": probe},
                           "head": {"tags": ["health"], "responses": {"200": {
                               "description": "Alive."}}}},
        "health.readyz": {"get": {"tags": ["health"], "responses": ready},
                          "head": {"tags": ["health"], "responses": {
                              "200": {"description": "Ready."},
                              "503": {"description": "Not ready."}}}},
        "ingest.post_ingest": {"post": {"tags": ["ingest"], **ingest}},
        "logs.list_logs": {"get": {"tags": ["logs"], **page}},
        "logs.log_stats": {"get": {"tags": ["logs"], "parameters": _query(query.STATS_SCHEMA),
                                   "responses": {"200": {"description": "Counts.",
                                                         "content": _json("StatsAnswer")},
                                                 **_READ_ERRORS}}},
        "logs.export_logs": {"get": {"tags": ["logs"], "parameters": _query(query.EXPORT_SCHEMA),
                                     "responses": {"200": {
                                         "description": "Every matching record, one JSON "
                                                        "document a line; gzip-compressed when "
                                                        "Accept-Encoding allows it.",
                                         "content": {"application/x-ndjson": {
                                             "schema": {"type": "string"}}}},
                                         **_READ_ERRORS}}},
        "logs.get_record": {"get": {
            "tags": ["logs"],
            "parameters": [{"in": "path", "name": "record_id", "required": True,
                            "schema": {"type": "integer", "minimum": 0,
                                       "maximum": MAX_RECORD_ID}}],
            "responses": {"200": {"description": "The record.", "content": _json("StoredRecord")},
                          "404": _error("not_found: no record with this id"),
                          "500": _error("internal_error")}}},
        "audit.verify_chain": {"get": {"tags": ["operations"], "responses": {
            "200": {"description": "The chain walked: intact, or where it breaks.",
                    "content": _json("AuditVerification")},
            "500": _error("internal_error")}}},
        "metrics.metrics": {"get": {"tags": ["operations"], "responses": {"200": {
            "description": "Prometheus' text exposition format.",
            "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "docs.openapi_json": {"get": {"tags": ["operations"], "responses": {"200": {
            "description": "This document.",
            "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "docs.swagger_ui": {"get": {"tags": ["operations"], "responses": {"200": {
            "description": "Swagger UI for this document, served with its assets.",
            "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    }


def _secured(operation, scope):
    """``operation`` behind an API key with ``scope``."""
    note = (f"Needs an API key with the `{scope}` scope (`admin` has every scope), sent as "
            "`Authorization: Bearer <key>` or `X-API-Key`, unless the collector runs without "
            "keys (AUTH).")
    return {
        **operation,
        "description": f"{operation.get('description', '')}\n\n{note}".strip(),
        "security": [{"bearer": []}, {"apiKey": []}],
        "responses": {
            **operation["responses"],
            "401": _error("missing_api_key, invalid_api_key (unknown or revoked)"),
            "403": _error("insufficient_scope"
                          + (", service_not_allowed: the key may not write a service of the "
                             "batch; nothing was stored" if scope == "ingest" else "")),
            **({"429": {**_error("rate_limited: the key's records per second are spent; "
                                 "nothing was stored"), "headers": _RETRY_AFTER}}
               if scope == "ingest" else {}),
        },
    }


def _openapi_path(rule):
    """A werkzeug rule's path in OpenAPI's form: /logs/<int(...):record_id> -> /logs/{record_id}."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)


def build_spec(app):
    """The OpenAPI document of ``app`` as a dict, from its URL map and validating schemas."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="collector",
        version="1",
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={"description": "An HTTP log collector: send batches of log records, search "
                             "them, count them, export them. Every error is JSON: "
                             '`{"error": code, "message": text, ...}`.'},
    )
    plugin.converter.add_attribute_function(collector_field_properties)
    components = {
        # The class the app validates ingest with, built under this app's limits.
        "LogRecord": type(app.extensions["record_schema"]),
        "StoredRecord": StoredRecordSchema,
        "Error": ErrorSchema,
        "IngestAnswer": IngestAnswerSchema,
        "LogPage": LogPageAnswerSchema,
        "FollowPage": FollowAnswerSchema,
        "StatsAnswer": StatsAnswerSchema,
        "Health": HealthSchema,
        "Readiness": ReadinessSchema,
        "AuditVerification": AuditVerificationSchema,
    }
    for name, schema in components.items():
        spec.components.schema(name, schema=schema)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme("apiKey", {"type": "apiKey", "in": "header",
                                               "name": "X-API-Key"})

    documented = operations(app.config)
    paths = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED:
            continue
        if rule.endpoint not in documented:
            raise LookupError(f"{rule.endpoint} ({rule.rule}) has no entry in OPERATIONS")
        view = app.view_functions[rule.endpoint]
        summary, _, description = (view.__doc__ or "").strip().partition("\n")
        path = paths.setdefault(_openapi_path(rule), {})
        for method, operation in documented[rule.endpoint].items():
            operation = {"operationId": rule.endpoint, "summary": summary.strip(), **operation}
            if method == "head":
                operation["operationId"] += ".head"
            if rule.endpoint in ("logs.list_logs", "logs.log_stats", "logs.export_logs"):
                operation["description"] = description.strip() + _ATTR_NOTE
            scope = REQUIRED_SCOPES.get(rule.endpoint.partition(".")[0])
            if scope:
                operation = _secured(operation, scope)
            path[method] = operation
    for path, operations_ in sorted(paths.items()):
        spec.path(path=path, operations=operations_)
    return spec.to_dict()


def openapi_document(app):
    """The app's OpenAPI document, built on first use and kept for the app's life."""
    document = app.extensions.get("openapi")
    if document is None:
        document = app.extensions["openapi"] = build_spec(app)
    return document
