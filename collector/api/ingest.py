"""POST /ingest: batches of log records as JSON or NDJSON, optionally compressed."""

import functools
import hashlib
import time

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import ClientDisconnected, HTTPException

from ..auth import current_caller, protect
from ..decoding import decode_records, format_name
from ..errors import APIError, error_code
from ..ingestion import Batch, ingest
from ..metrics import count_refused, count_stored
from . import reject_unknown_params

bp = Blueprint("ingest", __name__)
protect(bp, "ingest")

MAX_IDEMPOTENCY_KEY = 255


@bp.post("/ingest")
def post_ingest():
    """Store a batch: 201 (atomic, the default) or 200 listing rejects (``mode=partial``)."""
    return ingest_request(decode_records)


def ingest_request(decoder):
    """Answer an ingest request whose body ``decoder`` turns into records.

    Every ingest format's view calls this with its decoder, which takes the
    body, Content-Type, Content-Encoding and the size limit: the mode, the
    Idempotency-Key, the answer and the metrics are the same for all of them.
    """
    batch = None
    try:
        batch = _batch(decoder)
        result = ingest(batch)
    except (APIError, HTTPException) as exc:
        count_refused(error_code(exc), batch.count if batch else 0)
        raise
    count_stored(format_name(request.mimetype) or "other", result)
    return _answer(result, batch.partial)


def _batch(decoder):
    partial = _partial_mode()
    body = read_body(current_app.config["BODY_READ_TIMEOUT"])
    # The body is read here, since clients may be slow, but decoded in the
    # worker's write queue, possibly by another thread: bind its inputs now.
    caller = current_caller()
    batch = Batch(
        functools.partial(
            decoder,
            body,
            request.mimetype,
            request.headers.get("Content-Encoding"),
            current_app.config["MAX_BODY_BYTES"],
        ),
        partial=partial,
        idempotency_key=_idempotency_key(caller),
        caller=caller,
    )
    if batch.idempotency_key:
        batch.request_hash = _request_hash(body, partial)
    return batch


def _answer(result, partial):
    answer = {
        "accepted": len(result.rows),
        "duplicates": result.duplicates,
        "first_id": result.first_id,
        "last_id": result.last_id,
    }
    if partial:
        answer["rejected"] = len(result.rejected)
        answer["errors"] = result.rejected
    minimal = _prefers_minimal()
    if not minimal:
        answer["items"] = result.documents()
    response = jsonify(answer)
    response.status_code = 200 if partial else 201
    if minimal:
        response.headers["Preference-Applied"] = "return=minimal"
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def read_body(seconds):
    """The request body, read within ``seconds`` in all, or a 408.

    A client that sends its body slowly, or not at all, would otherwise hold a
    worker thread for as long as it likes. gunicorn hands the client's socket
    over in the environ; its timeout bounds each wait for more bytes.
    """
    sock = request.environ.get("gunicorn.socket")
    deadline = time.monotonic() + seconds
    chunks = []
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if sock is not None:
                sock.settimeout(remaining)
            chunk = request.stream.read(64 * 1024)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except (TimeoutError, OSError, ClientDisconnected):  # werkzeug's word for a failed read
        raise APIError(408, "request_timeout",
                       f"the request body did not arrive within {seconds:g} s") from None
    finally:
        if sock is not None:
            sock.settimeout(None)


def _partial_mode():
    reject_unknown_params("mode")
    mode = request.args.get("mode", "atomic")
    if mode not in ("atomic", "partial"):
        raise APIError(
            400, "invalid_parameter", "mode must be 'atomic' or 'partial'", parameter="mode"
        )
    return mode == "partial"


def _idempotency_key(caller):
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise APIError(
            400,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
        )
    # Each API key has its own idempotency keys: no client sees another's outcomes.
    return key if caller.key_id is None else f"{caller.key_id}:{key}"


def _request_hash(body, partial):
    """What an idempotency key stands for: the body as sent, and how it is to be stored."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (request.mimetype, request.headers.get("Content-Encoding", ""),
                 "partial" if partial else "atomic"):
        digest.update(part.encode() + b"\0")
    digest.update(body)
    return digest.hexdigest()


def _prefers_minimal():
    preferences = request.headers.get("Prefer", "").replace(";", ",").split(",")
    return "return=minimal" in (p.strip().lower() for p in preferences)
