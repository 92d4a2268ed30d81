"""gunicorn's logger: access lines as JSON, minus those of successful health probes."""

from gunicorn.glogging import Logger

PROBE_PATHS = frozenset(("/healthz", "/readyz"))


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
            "remote": environ.get("REMOTE_ADDR"),
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
