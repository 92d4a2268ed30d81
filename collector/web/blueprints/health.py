"""Probes for load balancers and orchestrators: liveness and readiness."""

import os

from flask import Blueprint, current_app, jsonify
from marshmallow import Schema, fields, validate

from ...apidoc import json_content
from ..contract import contract

bp = Blueprint("health", __name__)


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


class ReadinessSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "draining", "fail"]),
                           metadata={"description": '"draining": the drain alone fails.'})
    checks = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                         metadata={"description": '"ok", or what is wrong.'})


@bp.get("/healthz")
@contract(
    components={"Health": HealthSchema},
    get={"tags": ["health"],
         "responses": {"200": {"description": "Alive.", "content": json_content("Health")}}},
    head={"tags": ["health"], "responses": {"200": {"description": "Alive."}}},
)
def healthz():
    """Liveness: the process answers. Touches no database."""
    return jsonify(status="ok")


@bp.get("/readyz")
@contract(
    components={"Readiness": ReadinessSchema},
    get={"tags": ["health"], "responses": {
        "200": {"description": "Every check passes.", "content": json_content("Readiness")},
        "503": {"description": "A check fails, or the instance is drained (`make drain`);"
                               " `checks` names it.",
                "content": json_content("Readiness")}}},
    head={"tags": ["health"], "responses": {"200": {"description": "Ready."},
                                            "503": {"description": "Not ready."}}},
)
def readyz():
    """Readiness: 200 when every check passes, else 503 naming the failing ones."""
    config = current_app.config
    checks = {"drain": _drained(config["DRAIN_FILE"]),
              **current_app.extensions["store"].readiness(config["READY_MIN_FREE_MB"])}
    failing = {name: problem for name, problem in checks.items() if problem}
    status = "ok" if not failing else "draining" if failing.keys() == {"drain"} else "fail"
    response = jsonify(
        status=status,
        checks={name: problem or "ok" for name, problem in checks.items()},
    )
    response.status_code = 503 if failing else 200
    return response


def _drained(path):
    """What the drain check says: None, or that DRAIN_FILE exists."""
    if os.path.exists(path):
        return f"draining: {path} exists (make undrain)"
    return None
