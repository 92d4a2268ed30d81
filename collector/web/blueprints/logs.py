"""Reading stored records: search pages, follow, counts, one record, export."""

from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context
from marshmallow import Schema, fields, validate

from ...apidoc import error_response, json_content
from ...read import search
from ...read.export import ndjson_stream
from ...read.params import EXPORT_SCHEMA, PAGE_SCHEMA, STATS_SCHEMA, query_fingerprint
from ...records import StoredRecordSchema
from ...severity import RANKS
from ..contract import contract

bp = Blueprint("logs", __name__)

# The largest id a record can have; a larger id in the path cannot exist.
MAX_RECORD_ID = 2**63 - 1


class PageStatsSchema(Schema):
    took_ms = fields.Float(required=True)
    returned = fields.Integer(required=True)


class LogPageAnswerSchema(Schema):
    """A page of a search; next_cursor is null on the last page."""

    items = fields.List(fields.Nested(StoredRecordSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)
    next_after_id = fields.Integer(required=True, metadata={
        "description": "The newest id the search (and its cursors) sees: follow with "
                       "after_id=next_after_id to get the records stored since."})
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
    host = fields.String(allow_none=True, metadata={"description": "null: records without one."})
    attributes = fields.Dict(keys=fields.String(), metadata={
        "description": "by=attr.<key>: the attribute's value by key (null where a record "
                       "lacks it)."})
    count = fields.Integer(required=True)


class TookSchema(Schema):
    took_ms = fields.Float(required=True)


class StatsAnswerSchema(Schema):
    """Counts of matching records, by the requested dimensions."""

    total = fields.Integer(required=True)
    counts = fields.List(fields.Nested(CountRowSchema), required=True)
    stats = fields.Nested(TookSchema, required=True)


_READ_ERRORS = {
    "400": error_response("invalid_parameter: a parameter is unknown or has a bad value; "
                          "`parameter` names it, `errors` gives the reasons of each."),
    "500": error_response("internal_error"),
}
ATTRIBUTE_FILTERS = (
    "`attr.<key>=<value>` (not listed below, its name is free): equality on a structured "
    "attribute, nested keys with dots (`attr.customer.plan=pro`); a value that spells a number "
    "also matches the number. List parameters (service, severity, by) may repeat or hold "
    "comma-separated values; every other parameter may be given once."
)


def store():
    """The app's Store."""
    return current_app.extensions["store"]


@bp.get("/logs")
@contract(
    query=PAGE_SCHEMA,
    components={"LogPage": LogPageAnswerSchema, "FollowPage": FollowAnswerSchema},
    get={"tags": ["logs"], "description": ATTRIBUTE_FILTERS, "responses": {
        "200": {"description": "A page (newest first by default), or with after_id a "
                               "follow page.",
                "headers": {"Link": {"description": '<...>; rel="next" when there are '
                                                    "more records.",
                                     "schema": {"type": "string"}}},
                "content": json_content({"oneOf": [{"$ref": "#/components/schemas/LogPage"},
                                                   {"$ref": "#/components/schemas/FollowPage"}]})},
        **_READ_ERRORS}},
)
def list_logs(params):
    """A page of matching records; with ``after_id`` (and ``wait``), follow new ones."""
    if "after_id" in params:
        page = search.follow(store(), params)
        return jsonify(items=page.items, next_after_id=page.next_after_id,
                       stats={"took_ms": page.took_ms, "returned": len(page.items)})
    page = search.find_page(store(), params, query_fingerprint(request.args))
    response = jsonify(items=page.items, next_cursor=page.next_cursor,
                       next_after_id=page.next_after_id,
                       stats={"took_ms": page.took_ms, "returned": len(page.items)})
    if page.next_cursor:
        args = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
        next_url = f"{request.path}?{urlencode(args + [('cursor', page.next_cursor)])}"
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response


@bp.get("/logs/stats")
@contract(
    query=STATS_SCHEMA,
    components={"StatsAnswer": StatsAnswerSchema},
    get={"tags": ["logs"], "description": ATTRIBUTE_FILTERS, "responses": {
        "200": {"description": "Counts.", "content": json_content("StatsAnswer")},
        **_READ_ERRORS}},
)
def log_stats(params):
    """Counts of matching records by severity, service, host or attributes, and a histogram."""
    return jsonify(search.count(store(), params))


@bp.get("/logs/export")
@contract(
    query=EXPORT_SCHEMA,
    get={"tags": ["logs"], "description": ATTRIBUTE_FILTERS, "responses": {
        "200": {"description": "Every matching record, one JSON document a line; "
                               "gzip-compressed when Accept-Encoding allows it.",
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
        **_READ_ERRORS}},
)
def export_logs(params):
    """Stream every matching record as NDJSON, gzip-compressed when the client accepts it."""
    compress = bool(request.accept_encodings["gzip"])
    documents = search.export_documents(store(), params)
    response = Response(stream_with_context(ndjson_stream(documents, compress)),
                        mimetype="application/x-ndjson", headers={"Vary": "Accept-Encoding"})
    if compress:
        response.headers["Content-Encoding"] = "gzip"
    return response


@bp.get(f"/logs/<int(max={MAX_RECORD_ID}):record_id>")
@contract(get={
    "tags": ["logs"],
    "parameters": [{"in": "path", "name": "record_id", "required": True,
                    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_RECORD_ID}}],
    "responses": {"200": {"description": "The record.", "content": json_content("StoredRecord")},
                  "404": error_response("not_found: no record with this id"),
                  "500": error_response("internal_error")}})
def get_record(record_id):
    """One record by id, or 404."""
    return jsonify(search.find_record(store(), record_id))
