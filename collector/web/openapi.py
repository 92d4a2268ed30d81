"""The OpenAPI 3 description of the collector, built from the views' contracts.

Each view declares its operations beside itself (``contract``), and the record
and the query parameters are the marshmallow schemas that validate them
(``ingest.schemas.record_schema(config)`` and ``read.params``), so their fields,
required names and limits cannot drift from the validation. Paths are built
from the app's URL map: a routed endpoint without a contract stops the build,
so a new view cannot go undocumented.
"""

import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from ..apidoc import RETRY_AFTER, error_response
from ..errors import ErrorSchema
from ..fields import BoundedString, HexId, Severity
from ..ingest import schemas
from ..read import params
from ..records import StoredRecordSchema
from ..severity import CANONICAL, RANKS

OPENAPI_VERSION = "3.0.3"

# The groups of /docs, in the order a reader needs them: send, then read.
TAGS = (
    ("ingest", "Send logs: the collector's own format and the shippers' protocols."),
    ("logs", "Search, count, export the stored logs and their patterns."),
    ("health", "Probes for load balancers and orchestrators."),
    ("operations", "Metrics, the audit chain, this document."),
    ("explorer", "The log explorer, a page for people."),
)

# Assets of the documentation and of the explorer, or Flask's own: not part of the API.
UNDOCUMENTED = {"static", "docs.asset", "explorer.static"}


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
    if isinstance(field, BoundedString):
        return {"type": "string", "minLength": field.min_length, "maxLength": field.max_length}
    if isinstance(field, schemas.Message):
        # maxLength counts characters, the limit bytes: it is the bound for ASCII text.
        return {"type": "string", "minLength": 1, "maxLength": field.max_bytes,
                "description": f"Non-empty, at most {field.max_bytes} bytes of UTF-8."}
    if isinstance(field, Severity):
        return {"type": "string", "pattern": SEVERITY_PATTERN, "example": "INFO",
                "description": f"Any case: {', '.join(RANKS)}, or an alias "
                               f"({', '.join(sorted(set(CANONICAL) - set(RANKS)))})."}
    if isinstance(field, schemas.Timestamp):
        return {"oneOf": [{"type": "string", "format": "date-time"},
                          {"type": "number", "minimum": 0}],
                "description": "RFC 3339 / ISO 8601 (no offset means UTC) or epoch seconds; "
                               f"at most {field.max_future_skew} s ahead of the server clock; "
                               "defaults to the time received."}
    if isinstance(field, HexId):
        return {"type": "string", "pattern": f"^[0-9a-fA-F]{{{field.length}}}$",
                "minLength": field.length, "maxLength": field.length}
    if isinstance(field, schemas.Attributes):
        return {"type": "object", "additionalProperties": True,
                "maxProperties": field.max_keys,
                "description": f"Structured fields: nested at most {field.max_depth} levels, "
                               f"at most {field.max_keys} keys in all, at most "
                               f"{field.max_bytes} bytes serialized."}
    if isinstance(field, params.TimeBound):
        return {"anyOf": [{"type": "string", "format": "date-time"},
                          {"type": "string", "pattern": RELATIVE_TIME_PATTERN}],
                "description": "RFC 3339, or relative to now: 30s, 15m, 2h, 7d, 2w."}
    if isinstance(field, params.FullTextQuery):
        return {"type": "string", "description": 'Words (all must match), "a phrase", '
                                                 "prefix*, OR, NOT."}
    if isinstance(field, params.Cursor):
        return {"type": "string", "description": "The next_cursor of the previous page."}
    return {}


def _secured(operation, scope):
    """``operation`` behind an API key with ``scope``."""
    note = (f"Needs an API key with the `{scope}` scope (`admin` has every scope), sent as "
            "`Authorization: Bearer <key>` or `X-API-Key`, unless the collector runs without "
            "keys (AUTH).")
    return {
        **operation,
        "description": f"{operation.get('description', '')}\n\n{note}".strip(),
        "security": [{"bearer": []}, {"apiKey": []}],
        # A protocol that answers these in its own shape declares them itself.
        "responses": {
            "401": error_response("missing_api_key, invalid_api_key (unknown or revoked)"),
            "403": error_response(
                "insufficient_scope"
                + (", service_not_allowed: the key may not write a service of the "
                   "batch; nothing was stored" if scope == "ingest" else "")),
            **({"429": {**error_response("rate_limited: the key's records per second are "
                                         "spent; nothing was stored"), "headers": RETRY_AFTER}}
               if scope == "ingest" else {}),
            **operation["responses"],
        },
    }


def _openapi_path(rule):
    """A werkzeug rule's path in OpenAPI's form: /logs/<int(...):record_id> -> /logs/{record_id}."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)


def _query_parameters(schema):
    # attr.<key> parameters are gathered by the schema's pre_load: documented in prose.
    return [{"in": "query", "schema": type(schema)(exclude=("attr",))}]


def build_spec(app):
    """The OpenAPI document of ``app`` as a dict, from its URL map and its views' contracts."""
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
    }
    scopes = app.extensions["scopes"]
    paths = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED:
            continue
        view = app.view_functions[rule.endpoint]
        found = getattr(view, "contract", None)
        if found is None:
            raise LookupError(f"{rule.endpoint} ({rule.rule}) has no contract")
        components.update(found.components)
        summary, _, description = (view.__doc__ or "").strip().partition("\n")
        path = paths.setdefault(_openapi_path(rule), {})
        for method, declared in found.operations.items():
            operation = {"operationId": rule.endpoint, "summary": summary.strip(), **declared}
            if method == "head":
                operation["operationId"] += ".head"
            operation["description"] = "\n\n".join(
                part for part in (description.strip(), declared.get("description", "")) if part)
            if not operation["description"]:
                del operation["description"]
            if found.query is not None:
                operation["parameters"] = (_query_parameters(found.query)
                                           + declared.get("parameters", []))
            scope = scopes.get(rule.endpoint.partition(".")[0])
            if scope:
                operation = _secured(operation, scope)
            path[method] = operation
    for name, schema in components.items():
        spec.components.schema(name, schema=schema)
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme("apiKey", {"type": "apiKey", "in": "header",
                                               "name": "X-API-Key"})
    for name, description in TAGS:  # declared in order: Swagger UI shows them so
        spec.tag({"name": name, "description": description})
    for path, operations in sorted(paths.items()):
        spec.path(path=path, operations=operations)
    return _markdown(spec.to_dict())


def _markdown(node):
    """``node`` with the docstrings' reStructuredText ``code`` as Markdown's `code`.

    OpenAPI's descriptions are CommonMark, where double backticks show as they are.
    """
    if isinstance(node, dict):
        return {key: (_RST_CODE.sub(r"`\1`", value) if key in _PROSE and isinstance(value, str)
                      else _markdown(value)) for key, value in node.items()}
    if isinstance(node, list):
        return [_markdown(value) for value in node]
    return node


_RST_CODE = re.compile(r"``(.+?)``", re.DOTALL)
_PROSE = {"description", "summary"}


def openapi_document(app):
    """The app's OpenAPI document, built on first use and kept for the app's life."""
    document = app.extensions.get("openapi")
    if document is None:
        document = app.extensions["openapi"] = build_spec(app)
    return document
