"""A request id for every request: the client's X-Request-ID when sane, else a new one."""

import re
import uuid

from flask import g, request

HEADER = "X-Request-ID"
# Anything else (control characters, quotes, huge values) would end up in log lines verbatim.
_SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")


def request_id():
    """The current request's id, chosen on first use."""
    if "request_id" not in g:
        given = request.headers.get(HEADER, "")
        g.request_id = given if _SANE.fullmatch(given) else uuid.uuid4().hex
    return g.request_id


def init_app(app):
    """Echo the request id on every response, errors included."""

    @app.after_request
    def echo_request_id(response):
        response.headers[HEADER] = request_id()
        return response
