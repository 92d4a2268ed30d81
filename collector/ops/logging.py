"""The collector's own logs as JSON lines, one object per line with fields a machine can filter
on: the formatter, gunicorn's access logger, and the logging configuration gunicorn.conf.py
installs."""

import datetime
import logging

import orjson
from gunicorn.glogging import Logger

PROBE_PATHS = frozenset(("/healthz", "/readyz"))


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object: time, level, logger, message, its ``fields``, exception."""

    def format(self, record):
        line = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        # default=str: a field the caller passed that JSON has no type for still logs.
        return orjson.dumps(line, default=str).decode()


class ProbeQuietLogger(Logger):
    """One JSON access line per request; probes that succeed are skipped, failing ones logged.

    The line's fields are chosen here, not copied from the headers, so that
    credentials (Authorization, X-API-Key) never reach the log.
    """

    def access(self, resp, req, environ, request_time):
        if self.cfg.accesslog is None:
            return
        path = environ.get("PATH_INFO")
        if path in PROBE_PATHS and resp.status_code < 400:
            return
        method, status = environ.get("REQUEST_METHOD"), resp.status_code
        fields = {
            "method": method,
            "path": path,
            "query": environ.get("QUERY_STRING") or None,
            "status": status,
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "bytes": getattr(resp, "sent", None),
            "remote": environ.get("REMOTE_ADDR"),  # the client, through a trusted proxy too
            "scheme": environ.get("wsgi.url_scheme"),
            "request_id": _header(resp.headers, "x-request-id"),
            "user_agent": environ.get("HTTP_USER_AGENT"),
        }
        try:
            self.access_log.info("%s %s %s", method, path, status, extra={"fields": fields})
        except Exception:
            self.exception("could not write an access line")


def _header(headers, name):
    """The value of the response header ``name`` (lower case), or None."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def logging_config(level):
    """gunicorn's ``logconfig_dict``: every logger's lines as JSON on stdout at ``level``."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "json",
                       "stream": "ext://sys.stdout"},
        },
        # The app's loggers (collector.*) reach stdout through the root logger.
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        },
    }
