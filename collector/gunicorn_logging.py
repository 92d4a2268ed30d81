"""gunicorn's logger, minus the access-log lines of successful health probes."""

from gunicorn.glogging import Logger

PROBE_PATHS = frozenset(("/healthz", "/readyz"))


class ProbeQuietLogger(Logger):
    """Skip access-log lines of probes that succeed; a failing probe is still logged."""

    def access(self, resp, req, environ, request_time):
        if environ.get("PATH_INFO") in PROBE_PATHS and resp.status_code < 400:
            return
        super().access(resp, req, environ, request_time)
