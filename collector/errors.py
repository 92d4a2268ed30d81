"""The one JSON error shape of the whole app: ``{"error": code, "message": text, ...}``."""

import logging

from flask import jsonify, request
from werkzeug.exceptions import HTTPException

from .requestid import request_id

log = logging.getLogger(__name__)

# Stable machine-readable codes for the HTTP errors Flask and werkzeug raise themselves.
HTTP_ERROR_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class APIError(Exception):
    """An error answered to the client as JSON with a stable ``error`` code."""

    def __init__(self, status, error, message, headers=None, **details):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}
        self.details = details

    def to_dict(self):
        return {"error": self.error, "message": self.message, **self.details}


class ValidationFailed(APIError):
    """Records of a batch failed validation; ``errors`` maps record index to field reasons."""

    def __init__(self, errors, count):
        super().__init__(
            422,
            "validation_failed",
            f"{len(errors)} of {count} records are invalid; nothing was stored",
            errors=errors,
        )


class StorageUnavailable(APIError):
    """The database cannot take the write now; nothing was stored, retry after Retry-After."""

    def __init__(self, status, error, message, retry_after):
        super().__init__(status, error, message, headers={"Retry-After": str(retry_after)})


class StorageBusy(StorageUnavailable):
    """The write lock could not be had in time."""

    def __init__(self):
        super().__init__(
            503, "storage_busy", "the database is busy; retry after the delay in Retry-After", 1
        )


# SQLite's words for a write it cannot do -> what the client is told.
STORAGE_FAILURES = {
    "database is locked": StorageBusy,
    "database or disk is full": lambda: StorageUnavailable(
        507, "storage_full", "the database or its disk is full; nothing was stored", 30
    ),
    "attempt to write a readonly database": lambda: StorageUnavailable(
        503, "storage_read_only", "the database is read-only; nothing was stored", 30
    ),
}


def error_code(exc):
    """The ``error`` code the client is answered with for an APIError or an HTTPException."""
    if isinstance(exc, APIError):
        return exc.error
    return HTTP_ERROR_CODES.get(exc.code, "http_error")


def _api_error(exc):
    response = jsonify(exc.to_dict())
    response.status_code = exc.status
    response.headers.update(exc.headers)
    return response


def _http_error(exc):
    if exc.code is None or exc.code < 400:  # redirects such as a missing trailing slash
        return exc
    response = jsonify(error=error_code(exc), message=exc.description)
    response.status_code = exc.code
    if exc.code == 405:
        response.headers["Allow"] = ", ".join(exc.valid_methods or ())
    return response


def _server_error(exc):
    log.exception("unhandled error", extra={"fields": {
        "method": request.method, "path": request.path, "request_id": request_id(),
    }})
    response = jsonify(error="internal_error", message="the server failed to handle the request")
    response.status_code = 500
    return response


def register_error_handlers(app):
    """Answer every error, expected or not, in the one JSON shape."""
    app.register_error_handler(APIError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _server_error)
