"""The ingest endpoints: one blueprint per wire protocol, each feeding the one Writer.

Every protocol's view is the same few steps (``ingest_request``): the protocol
reads the request into a Batch, the Writer stores it, the protocol answers;
errors, ours or werkzeug's, are answered in the protocol's own shape. A
protocol's other routes (probes its clients make) are answered by the protocol.
"""

import time

from flask import Blueprint, current_app, request
from werkzeug.exceptions import ClientDisconnected, HTTPException

from ...errors import CollectorError, RequestTimeout
from ...ingest.protocols.base import IngestRequest
from ...metrics import count_refused, count_stored
from ..auth import authorize, current_caller
from ..contract import Contract
from ..errors import error_code, failure_of, server_fault
from ..jsonprovider import respond


def blueprint(protocol, config):
    """A blueprint serving ``protocol``'s routes, documented by the protocol itself."""
    bp = Blueprint(protocol.name, __name__)
    operations, components = protocol.openapi(config)
    for route in protocol.routes:
        if route.ingest:
            def view(protocol=protocol, **view_args):
                return ingest_request(protocol, view_args)
        else:
            def view(protocol=protocol, endpoint=route.endpoint, **view_args):
                return _respond(protocol.serve(endpoint, incoming_request(view_args)))

        view.__doc__ = protocol.__doc__
        view.contract = Contract(operations[route.endpoint], components=components)
        bp.add_url_rule(route.rule, route.endpoint, view, methods=list(route.methods))

    @bp.errorhandler(Exception)
    def error(exc):
        if isinstance(exc, HTTPException) and (exc.code is None or exc.code < 400):
            return exc
        return _error_answer(protocol, exc)

    return bp


def forward(protocol, endpoint):
    """Answer this request as ``protocol``'s route ``endpoint`` would (a route another view
    owns: the explorer's `/`): its scope and key schemes, its answer, its error shape."""
    try:
        authorize(protocol.name)
        return _respond(protocol.serve(endpoint, incoming_request({}, endpoint)))
    except Exception as exc:  # noqa: BLE001 (answered in the protocol's shape, as its own are)
        if isinstance(exc, HTTPException) and (exc.code is None or exc.code < 400):
            raise
        return _error_answer(protocol, exc)


def _error_answer(protocol, exc):
    failure = failure_of(exc) or server_fault(exc)
    failure.request_type = request.mimetype
    return _respond(protocol.error(failure))


def ingest_request(protocol, view_args):
    """Answer an ingest request of ``protocol``: read, store, answer, counted in the metrics."""
    incoming = incoming_request(view_args)
    batch = None
    try:
        batch = protocol.batch(incoming)
        result = current_app.extensions["writer"].ingest(batch)
    except (CollectorError, HTTPException) as exc:
        count_refused(error_code(exc), batch.count if batch else 0)
        raise
    count_stored(protocol.format_name(incoming), result)
    return _respond(protocol.answer(incoming, batch, result))


def incoming_request(view_args, endpoint=None):
    """What a protocol sees of this request (as its route ``endpoint``, when named)."""
    config = current_app.config
    return IngestRequest(
        content_type=request.mimetype,
        content_encoding=request.headers.get("Content-Encoding"),
        args=request.args,
        headers=request.headers,
        caller=current_caller(),
        read_body=lambda: read_body(config["BODY_READ_TIMEOUT"]),
        max_body_bytes=config["MAX_BODY_BYTES"],
        view_args=view_args,
        endpoint=endpoint or request.endpoint.partition(".")[2],
    )


def _respond(answer):
    return respond(answer.status, answer.body, answer.headers, answer.content_type)


def read_body(seconds):
    """The request body, read within ``seconds`` in all, or RequestTimeout.

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
        raise RequestTimeout("request_timeout",
                             f"the request body did not arrive within {seconds:g} s") from None
    finally:
        if sock is not None:
            sock.settimeout(None)
