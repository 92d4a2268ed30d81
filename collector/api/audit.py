"""GET /audit/verify: walk the audit chain (admin scope)."""

from flask import Blueprint, jsonify

from .. import audit
from ..auth import protect
from ..db import database

bp = Blueprint("audit", __name__)
protect(bp, "admin")


@bp.get("/audit/verify")
def verify_chain():
    """Whether every stored record is as written: intact with its count, or where it breaks."""
    with database.atomic():  # one snapshot from the first record to the last
        found = audit.verify(database.connection())
    return jsonify(found.to_dict())
