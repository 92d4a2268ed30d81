"""Reading stored records back."""

from flask import Blueprint, jsonify

from ..errors import APIError
from ..models import LogRecord

bp = Blueprint("logs", __name__)

# SQLite's largest rowid; a larger id in the path cannot exist.
_MAX_ID = 2**63 - 1


@bp.get(f"/logs/<int(max={_MAX_ID}):record_id>")
def get_record(record_id):
    """One record by id, or 404."""
    document = LogRecord.get_document(record_id)
    if document is None:
        raise APIError(404, "not_found", f"no log record with id {record_id}")
    return jsonify(document)
