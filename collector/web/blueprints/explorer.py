"""The log explorer at /: a page of plain JavaScript modules over the read API, no build step.

The page and its assets need no key: the API calls the page makes carry the
reader's key (asked for when the API answers 401, kept in the tab's session
storage). Log text is shown as text, never as markup, and the page's Content
Security Policy allows its own scripts and styles alone.
"""

from flask import Blueprint, make_response, render_template

from ..contract import contract

bp = Blueprint("explorer", __name__, static_folder="../static/explorer",
               static_url_path="/explorer", template_folder="../templates")

# Scripts, styles, requests: this collector's own, nothing inline, nothing framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@bp.get("/")
@contract(get={"tags": ["explorer"], "responses": {"200": {
    "description": "The explorer's page; its scripts and styles are under /explorer/.",
    "content": {"text/html": {"schema": {"type": "string"}}}}}})
def explorer():
    """The log explorer: search, histogram, facets, live tail and each record's detail."""
    response = make_response(render_template("explorer.html"))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response
