"""Errors to HTTP: the one table from domain errors to statuses, and the answers' shapes.

Every error, expected or not, is answered as JSON: in the collector's own shape,
``{"error": code, "message": text, ...details}``, or on a protocol's routes in
that protocol's shape (its ``error``).
"""

import logging
import time

from flask import current_app, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .. import errors
from ..ingest.protocols.base import Failure
from .jsonprovider import respond
from .requestid import request_id

log = logging.getLogger("collector.errors")  # the name operators filter on
DROP_BODY_BYTES = 256 * 1024 * 1024  # of an oversized body read and dropped, at most
DROP_IDLE_SECONDS = 1.0

# Domain error -> HTTP status; an error takes the entry of its nearest class.
STATUSES = {
    errors.InvalidInput: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.RequestTimeout: 408,
    errors.TooLarge: 413,
    errors.UnsupportedFormat: 415,
    errors.ValidationFailed: 422,
    errors.IdempotencyConflict: 422,
    errors.RateLimited: 429,
    errors.StorageUnavailable: 503,
    errors.StorageFull: 507,
}

# Stable machine-readable codes for the HTTP errors Flask and werkzeug raise themselves.
HTTP_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def status_of(exc):
    """The HTTP status a domain error is answered with."""
    for kind in type(exc).__mro__:
        if kind in STATUSES:
            return STATUSES[kind]
    return 500


def failure_of(exc):
    """The Failure an exception is answered as; None for one that is a server fault."""
    if isinstance(exc, errors.CollectorError):
        headers = {}
        if isinstance(exc, errors.Unavailable):
            headers["Retry-After"] = str(exc.retry_after)
        if isinstance(exc, errors.Unauthenticated):
            headers["WWW-Authenticate"] = 'Bearer realm="collector"'
        return Failure(status_of(exc), exc.code, exc.message, exc.details, headers)
    if isinstance(exc, RequestEntityTooLarge):  # werkzeug's, from MAX_CONTENT_LENGTH
        drop_body()
        limit = current_app.config["MAX_BODY_BYTES"]
        return Failure(413, "payload_too_large", f"the body is over the limit of {limit:,}"
                       " bytes (MAX_BODY_BYTES); send smaller batches", {"limit": limit})
    if isinstance(exc, HTTPException) and exc.code is not None and exc.code >= 400:
        headers = {"Allow": ", ".join(exc.valid_methods or ())} if exc.code == 405 else {}
        return Failure(exc.code, HTTP_ERROR_CODES.get(exc.code, "http_error"), exc.description,
                       headers=headers)
    return None


def drop_body():
    """Read the rest of an oversized body and drop it, so that the client reads our 413.

    A client still sending when the answer comes and the connection closes gets a broken
    pipe, not the answer. Bounded by DROP_BODY_BYTES and BODY_READ_TIMEOUT, and a client
    that pauses DROP_IDLE_SECONDS (one waiting for the answer first) is answered then.
    """
    stream = request.environ.get("wsgi.input")
    sock = request.environ.get("gunicorn.socket")
    if stream is None or sock is None:  # not behind gunicorn (tests): nothing is in flight
        return
    deadline = time.monotonic() + current_app.config["BODY_READ_TIMEOUT"]
    dropped = 0
    try:
        while dropped < DROP_BODY_BYTES and time.monotonic() < deadline:
            sock.settimeout(min(max(deadline - time.monotonic(), 0.01), DROP_IDLE_SECONDS))
            chunk = stream.read(64 * 1024)
            if not chunk:
                return
            dropped += len(chunk)
    except (OSError, ValueError):  # the client went, or sent a broken chunked body
        return
    finally:
        sock.settimeout(None)


def error_code(exc):
    """The ``error`` code a client is answered with for ``exc``."""
    failure = failure_of(exc)
    return "internal_error" if failure is None else failure.code


def server_fault(exc):
    """Log an unexpected exception with the request; the Failure of a 500."""
    log.exception("unhandled error", extra={"fields": {
        "method": request.method, "path": request.path, "request_id": request_id(),
    }})
    return Failure(500, "internal_error", "the server failed to handle the request")


def answer(failure):
    """A response in the collector's own error shape."""
    return respond(failure.status, failure.to_dict(), failure.headers)


def init_app(app):
    """Answer every error, expected or not, in the one JSON shape."""

    @app.errorhandler(Exception)
    def handle(exc):
        if isinstance(exc, HTTPException) and (exc.code is None or exc.code < 400):
            return exc  # redirects such as a missing trailing slash
        failure = failure_of(exc)
        return answer(server_fault(exc) if failure is None else failure)
