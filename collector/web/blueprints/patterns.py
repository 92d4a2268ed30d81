"""GET /logs/patterns: what the logs are saying, grouped by pattern, without writing a query."""

from flask import Blueprint, jsonify
from marshmallow import Schema, fields

from ...apidoc import error_response, json_content
from ...read import search
from ...read.params import PATTERNS_SCHEMA
from ..contract import contract
from .logs import ATTRIBUTE_FILTERS, store

bp = Blueprint("patterns", __name__)


class PatternSchema(Schema):
    id = fields.Integer(required=True, metadata={"description": "Filter by it: /logs?pattern=."})
    service = fields.String(required=True)
    template = fields.String(required=True, metadata={
        "description": "Its words; variables as <*> or by kind (<NUM>, <IP>, <PATH>, ...)."})
    count = fields.Integer(required=True, metadata={"description": "Matching records."})
    first_seen = fields.DateTime(required=True, metadata={
        "description": "The earliest timestamp among the matching records."})
    last_seen = fields.DateTime(required=True)
    first_seen_ever = fields.DateTime(required=True, allow_none=True, metadata={
        "description": "The earliest timestamp of any record of it (what new_since compares)."})
    sample_id = fields.Integer(required=True, metadata={"description": "The newest of them."})
    counts = fields.List(fields.Integer(), required=True, metadata={
        "description": "Matching records in each bucket of span: a sparkline."})


class SpanSchema(Schema):
    start = fields.DateTime(required=True)
    interval_seconds = fields.Float(required=True)
    buckets = fields.Integer(required=True)


class MiningSchema(Schema):
    mined_id = fields.Integer(required=True, metadata={
        "description": "Every record up to this id has its pattern."})
    pending_records = fields.Integer(required=True, metadata={
        "description": "Records not mined yet: not in these counts."})
    lag_seconds = fields.Float(required=True, metadata={
        "description": "Since the oldest record without a pattern was received."})


class PatternsAnswerSchema(Schema):
    """The patterns of the matching records, most records first."""

    patterns = fields.List(fields.Nested(PatternSchema), required=True)
    span = fields.Nested(SpanSchema, required=True, allow_none=True)
    mining = fields.Nested(MiningSchema, required=True)
    stats = fields.Dict(required=True)


@bp.get("/logs/patterns")
@contract(
    query=PATTERNS_SCHEMA,
    components={"PatternsAnswer": PatternsAnswerSchema},
    get={"tags": ["logs"], "description": ATTRIBUTE_FILTERS, "responses": {
        "200": {"description": "Patterns.", "content": json_content("PatternsAnswer")},
        "400": error_response("invalid_parameter: a parameter is unknown or has a bad value; "
                              "`parameter` names it, `errors` gives the reasons of each."),
        "500": error_response("internal_error")}},
)
def list_patterns(params):
    """The patterns of the matching records with their counts, sorted by count."""
    return jsonify(search.find_patterns(store(), params))
