"""The log explorer at /: a page of plain JavaScript modules over the read API, no build step.

The page and its assets need no key: the API calls the page makes carry the
reader's key (asked for when the API answers 401, kept in the tab's session
storage). Log text is shown as text, never as markup, and the page's Content
Security Policy allows its own scripts and styles alone.

`/` is also where Elasticsearch clients (Filebeat, newer rsyslog) ask for the
server's version: a request that does not ask for HTML gets the Elasticsearch
protocol's answer, behind its key, in its shape.
"""

from flask import Blueprint, make_response, render_template, request

from ...ingest.protocols import elasticsearch
from ..contract import contract
from .ingest import forward

bp = Blueprint("explorer", __name__, static_folder="../static/explorer",
               static_url_path="/explorer", template_folder="../templates")

# Scripts, styles, requests: this collector's own, nothing inline, nothing framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@bp.get("/")
@contract(get={"tags": ["explorer"], "responses": {"200": {
    "description": "To a browser (Accept: text/html) the explorer's page, its scripts and "
                   "styles under /explorer/; to any other client the Elasticsearch "
                   "protocol's answer (the cluster's name and version), with the ingest scope.",
    "content": {"text/html": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "object"}}}}}})
def explorer():
    """The log explorer: search, histogram, facets, live tail and each record's detail."""
    if not _asks_for_html():
        return forward(elasticsearch.PROTOCOL, "info")
    response = make_response(render_template("explorer.html"))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def _asks_for_html():
    # Named outright: curl's */* and an Elasticsearch client's silence are no browser.
    return any(mimetype == "text/html" and quality > 0
               for mimetype, quality in request.accept_mimetypes)
