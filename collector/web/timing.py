"""Request timings and overload answers, counted into the collector's metrics."""

import time

from flask import g, request

from ..metrics import OVERLOADED, REQUEST_DURATION

# Anything else a client sends as a method counts as "other": labels stay few.
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


def init_app(app):
    """Time every request by endpoint, method and status class; count 503 and 429 answers."""

    @app.before_request
    def start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def observe_request(response):
        started = g.get("started")
        if started is not None:
            REQUEST_DURATION.labels(
                request.endpoint or "unmatched",
                request.method if request.method in _METHODS else "other",
                f"{response.status_code // 100}xx",
            ).observe(time.perf_counter() - started)
        if response.status_code in (429, 503):
            OVERLOADED.labels(str(response.status_code)).inc()
        return response
