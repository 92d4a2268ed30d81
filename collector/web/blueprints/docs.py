"""The API's documentation: the OpenAPI document and Swagger UI, with no request to the internet."""

from flask import Blueprint, Response, current_app, jsonify, send_from_directory, url_for
from markupsafe import escape
from swagger_ui_bundle import swagger_ui_path

from ...errors import NotFound
from ..contract import contract
from ..openapi import openapi_document

bp = Blueprint("docs", __name__)

# The files of the Swagger UI dist (from swagger-ui-bundle) the page loads; the
# source maps are for a browser's developer tools.
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")
_SERVED = {*ASSETS, "swagger-ui.css.map", "swagger-ui-bundle.js.map"}

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>collector API</title>
  <link rel="stylesheet" href="{css}">
  <link rel="icon" type="image/png" href="{icon}">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{js}"></script>
  <script>
    // validatorUrl null: Swagger UI would otherwise send the document to a public validator.
    window.ui = SwaggerUIBundle({{url: "{spec}", dom_id: "#swagger-ui", deepLinking: true,
                                 validatorUrl: null}});
  </script>
</body>
</html>
"""


@bp.get("/openapi.json")
@contract(get={"tags": ["operations"], "responses": {"200": {
    "description": "This document.",
    "content": {"application/json": {"schema": {"type": "object"}}}}}})
def openapi_json():
    """The OpenAPI 3 description of this collector."""
    return jsonify(openapi_document(current_app))


@bp.get("/docs")
@contract(get={"tags": ["operations"], "responses": {"200": {
    "description": "Swagger UI for this document, served with its assets.",
    "content": {"text/html": {"schema": {"type": "string"}}}}}})
def swagger_ui():
    """Swagger UI for the OpenAPI document, its assets served by the collector."""
    page = _PAGE.format(
        css=escape(url_for("docs.asset", filename="swagger-ui.css")),
        icon=escape(url_for("docs.asset", filename="favicon-32x32.png")),
        js=escape(url_for("docs.asset", filename="swagger-ui-bundle.js")),
        spec=escape(url_for("docs.openapi_json")),
    )
    return Response(page, mimetype="text/html")


@bp.get("/docs/<filename>")
def asset(filename):
    """One file of the Swagger UI dist."""
    if filename not in _SERVED:
        raise NotFound(f"no documentation asset {filename!r}")
    return send_from_directory(swagger_ui_path, filename, max_age=24 * 3600)
