"""GET /audit/verify: walk the audit chain (admin scope)."""

from flask import Blueprint, current_app, jsonify
from marshmallow import Schema, fields

from ...apidoc import error_response, json_content
from ..contract import contract

bp = Blueprint("audit", __name__)


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


@bp.get("/audit/verify")
@contract(components={"AuditVerification": AuditVerificationSchema},
          get={"tags": ["operations"], "responses": {
              "200": {"description": "The chain walked: intact, or where it breaks.",
                      "content": json_content("AuditVerification")},
              "500": error_response("internal_error")}})
def verify_chain():
    """Whether every stored record is as written: intact with its count, or where it breaks."""
    return jsonify(current_app.extensions["store"].verify().to_dict())
