"""The collector's domain errors: what went wrong, in words and a stable code, without HTTP.

Every layer below the web raises these. Each carries ``code`` (the machine-readable
``error`` a client is answered with), ``message`` for a person, and ``details``
for a machine (the record index of each fault, the parameter named, ...). The
web layer alone maps them to statuses and headers, in one table
(``collector.web.errors``), and to each protocol's own error shape.
"""

from marshmallow import INCLUDE, Schema, fields


class CollectorError(Exception):
    """Base of the domain errors: ``code``, ``message`` and ``details``."""

    def __init__(self, code, message, **details):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def to_dict(self):
        """The error in the collector's own shape: ``{"error", "message", ...details}``."""
        return {"error": self.code, "message": self.message, **self.details}


class ErrorSchema(Schema):
    """The one error shape; some errors add details such as parameter, errors, line."""

    class Meta:
        unknown = INCLUDE

    error = fields.String(required=True, metadata={"example": "invalid_parameter"})
    message = fields.String(required=True)
    parameter = fields.String()
    errors = fields.Dict(metadata={"description": "Reasons by record index or parameter name."})


class InvalidInput(CollectorError):
    """A body, parameter or header the collector cannot take as it is; nothing was stored."""


class TooLarge(CollectorError):
    """A body or batch beyond a configured limit; nothing was stored."""


class UnsupportedFormat(CollectorError):
    """A Content-Type or Content-Encoding the endpoint does not read."""


class RequestTimeout(CollectorError):
    """The request's body did not arrive in time."""


class ValidationFailed(CollectorError):
    """Records of a batch failed validation; ``errors`` maps record index to field reasons."""

    def __init__(self, errors, count):
        super().__init__(
            "validation_failed",
            f"{len(errors)} of {count} records are invalid; nothing was stored",
            errors=errors,
        )


class IdempotencyConflict(CollectorError):
    """An Idempotency-Key already stood for another request."""

    def __init__(self):
        super().__init__(
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different request body; use a new key",
        )


class NotFound(CollectorError):
    """What was asked for does not exist."""

    def __init__(self, message):
        super().__init__("not_found", message)


class Unauthenticated(CollectorError):
    """No API key, or one the collector does not know."""


class Forbidden(CollectorError):
    """The API key may not do this."""


class Unavailable(CollectorError):
    """Nothing was done now; the same request may succeed after ``retry_after`` seconds."""

    def __init__(self, code, message, retry_after, **details):
        super().__init__(code, message, **details)
        self.retry_after = retry_after


class RateLimited(Unavailable):
    """The API key's records per second are spent."""

    def __init__(self, rate, retry_after):
        super().__init__(
            "rate_limited",
            f"this API key may send {rate:g} records a second; retry after {retry_after} s",
            retry_after,
        )


class StorageUnavailable(Unavailable):
    """The database cannot take the write now; nothing was stored."""


class StorageBusy(StorageUnavailable):
    """The write lock could not be had in time."""

    def __init__(self):
        super().__init__(
            "storage_busy", "the database is busy; retry after the delay in Retry-After", 1
        )


class StorageReadOnly(StorageUnavailable):
    """The database, or the directory it lives in, cannot be written."""

    def __init__(self):
        super().__init__("storage_read_only",
                         "the database is read-only: its file or its directory cannot be written",
                         30)


class StorageFull(StorageUnavailable):
    """The disk, or the database's configured size cap, is full."""

    def __init__(self):
        super().__init__(
            "storage_full", "the database or its disk is full; nothing was stored", 30
        )


class MaintenanceError(Exception):
    """A maintenance task (prune, backup, restore) refused or failed; the message says why."""
