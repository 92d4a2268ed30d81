"""Reading stored records: search pages, follow, counts, one record, export."""

from urllib.parse import urlencode

from flask import Blueprint, Response, jsonify, request, stream_with_context

from ..auth import protect
from ..errors import APIError
from ..export import ndjson_stream
from ..models import LogRecord
from ..query import EXPORT_SCHEMA, PAGE_SCHEMA, STATS_SCHEMA, load_params, query_fingerprint
from ..search import count, export_documents, find_page, follow

bp = Blueprint("logs", __name__)
protect(bp, "read")

# SQLite's largest rowid; a larger id in the path cannot exist.
MAX_RECORD_ID = 2**63 - 1


@bp.get("/logs")
def list_logs():
    """A page of matching records; with ``after_id`` (and ``wait``), follow new ones."""
    params = load_params(PAGE_SCHEMA, request.args)
    if "after_id" in params:
        page = follow(params)
        return jsonify(items=page.items, next_after_id=page.next_after_id,
                       stats={"took_ms": page.took_ms, "returned": len(page.items)})
    page = find_page(params, query_fingerprint(request.args))
    response = jsonify(items=page.items, next_cursor=page.next_cursor,
                       stats={"took_ms": page.took_ms, "returned": len(page.items)})
    if page.next_cursor:
        args = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
        next_url = f"{request.path}?{urlencode(args + [('cursor', page.next_cursor)])}"
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return response


@bp.get("/logs/stats")
def log_stats():
    """Counts of matching records by severity and/or service, and a time histogram."""
    return jsonify(count(load_params(STATS_SCHEMA, request.args)))


@bp.get("/logs/export")
def export_logs():
    """Stream every matching record as NDJSON, gzip-compressed when the client accepts it."""
    params = load_params(EXPORT_SCHEMA, request.args)
    compress = bool(request.accept_encodings["gzip"])
    response = Response(stream_with_context(ndjson_stream(export_documents(params), compress)),
                        mimetype="application/x-ndjson", headers={"Vary": "Accept-Encoding"})
    if compress:
        response.headers["Content-Encoding"] = "gzip"
    return response


@bp.get(f"/logs/<int(max={MAX_RECORD_ID}):record_id>")
def get_record(record_id):
    """One record by id, or 404."""
    document = LogRecord.get_document(record_id)
    if document is None:
        raise APIError(404, "not_found", f"no log record with id {record_id}")
    return jsonify(document)
