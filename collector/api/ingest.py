"""POST /ingest: batches of log records as JSON or NDJSON, optionally compressed."""

import functools

from flask import Blueprint, current_app, jsonify, request

from . import reject_unknown_params
from ..decoding import decode_records
from ..errors import APIError
from ..ingestion import ingest

bp = Blueprint("ingest", __name__)


@bp.post("/ingest")
def post_ingest():
    """Store a batch: 201 (atomic, the default) or 200 listing rejects (``mode=partial``)."""
    partial = _partial_mode()
    # The body is read here, since clients may be slow, but decoded in the
    # worker's write queue, possibly by another thread: bind its inputs now.
    read_records = functools.partial(
        decode_records,
        request.get_data(cache=False),
        request.mimetype,
        request.headers.get("Content-Encoding"),
        current_app.config["MAX_BODY_BYTES"],
    )
    result = ingest(read_records, partial=partial)

    body = {"accepted": len(result.rows), "first_id": result.first_id, "last_id": result.last_id}
    if partial:
        body["rejected"] = len(result.rejected)
        body["errors"] = result.rejected
    minimal = _prefers_minimal()
    if not minimal:
        body["items"] = result.documents()
    response = jsonify(body)
    response.status_code = 200 if partial else 201
    if minimal:
        response.headers["Preference-Applied"] = "return=minimal"
    return response


def _partial_mode():
    reject_unknown_params("mode")
    mode = request.args.get("mode", "atomic")
    if mode not in ("atomic", "partial"):
        raise APIError(
            400, "invalid_parameter", "mode must be 'atomic' or 'partial'", parameter="mode"
        )
    return mode == "partial"


def _prefers_minimal():
    preferences = request.headers.get("Prefer", "").replace(";", ",").split(",")
    return "return=minimal" in (p.strip().lower() for p in preferences)
