"""The OpenAPI document at /openapi.json and Swagger UI at /docs."""

import json
import re

import pytest
from flask import Blueprint
from helpers import record
from marshmallow import ValidationError
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from collector.web.openapi import UNDOCUMENTED, build_spec


@pytest.fixture
def document(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def routed_operations(app):
    """(OpenAPI path, method) of every routed endpoint, as the document should name them."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED:
            continue
        path = re.sub(r"<(?:[^<>:]+:)?([^<>]+)>", r"{\1}", rule.rule)
        operations.update((path, method.lower()) for method in rule.methods - {"OPTIONS", "HEAD"})
    return operations


def test_document_is_valid_openapi_3(document):
    validate(document)
    assert document["openapi"].startswith("3.")


def test_document_lists_every_routed_endpoint_and_method(app, document):
    documented = {(path, method) for path, item in document["paths"].items()
                  for method in item if method != "head"}
    assert documented == routed_operations(app)
    assert {"/ingest", "/logs", "/logs/stats", "/logs/export", "/logs/{record_id}",
            "/healthz", "/readyz", "/metrics"} <= set(document["paths"])
    # The probes answer HEAD too, and say so.
    assert "head" in document["paths"]["/healthz"] and "head" in document["paths"]["/readyz"]


def test_an_endpoint_without_documentation_stops_the_build(make_app):
    app = make_app()
    extra = Blueprint("extra", __name__)
    extra.add_url_rule("/extra", "extra", lambda: "")
    app.register_blueprint(extra)
    with pytest.raises(LookupError, match="extra.extra"):
        build_spec(app)


def test_document_is_built_once_per_app(app, client):
    client.get("/openapi.json")
    built = app.extensions["openapi"]
    client.get("/openapi.json")
    assert app.extensions["openapi"] is built


def test_operations_answer_the_error_shape(document):
    ingest = document["paths"]["/ingest"]["post"]["responses"]
    assert {"201", "200", "400", "408", "413", "415", "422", "503", "507", "500"} <= set(ingest)
    for status in ("400", "413", "422", "503", "507"):
        assert ingest[status]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"}
    assert "Retry-After" in ingest["503"]["headers"]
    assert document["components"]["schemas"]["Error"]["required"] == ["error", "message"]
    for path in ("/logs", "/logs/stats", "/logs/export", "/logs/patterns"):
        assert "400" in document["paths"][path]["get"]["responses"]
    assert "404" in document["paths"]["/logs/{record_id}"]["get"]["responses"]


def test_query_parameters_come_from_the_query_schemas(document):
    names = {path: {p["name"] for p in document["paths"][path]["get"]["parameters"]}
             for path in ("/logs", "/logs/stats", "/logs/export", "/logs/patterns")}
    filters = {"service", "severity", "min_severity", "since", "until", "host", "trace_id",
               "api_key_id", "q", "pattern"}
    assert names["/logs"] == filters | {"order", "limit", "cursor", "after_id", "wait"}
    assert names["/logs/stats"] == filters | {"by", "interval", "fill"}
    assert names["/logs/export"] == filters | {"order"}
    assert names["/logs/patterns"] == filters | {"new_since", "limit", "buckets"}
    limit = next(p for p in document["paths"]["/logs"]["get"]["parameters"]
                 if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "default": 100, "minimum": 1, "maximum": 1000}
    assert "attr.<key>" in document["paths"]["/logs"]["get"]["description"]


# The record: what the document's schema accepts is what the validating schema loads.

RECORDS = [
    record(),
    record(severity="info"),
    record(severity="WaRnInG"),
    record(severity="emerg"),
    record(severity="Panic"),
    record(severity="LOUD"),
    record(severity="WARNN"),
    record(severity=""),
    record(severity=3),
    record(service="s" * 128),
    record(service="s" * 129),
    record(service=""),
    record(message=""),
    record(host=None),
    record(trace_id="4BF92F3577B34DA6A3CE929D0E0E4736"),
    record(trace_id="4bf92f3577b34da6a3ce929d0e0e473"),
    record(trace_id="4bf92f3577b34da6a3ce929d0e0e473g"),
    record(span_id="00f067aa0ba902b7"),
    record(span_id="00f067aa0ba902b"),
    record(attributes={"a": {"b": 1}}),
    record(attributes=[1, 2]),
    record(event_id="e" * 129),
    record(timestamp=1_700_000_000.5),
    record(timestamp=-1),
    record(timestamp=True),
    record(colour="blue"),
    {"service": "billing", "message": "no severity"},
    {"severity": "INFO", "message": "no service"},
]


@pytest.mark.parametrize("candidate", RECORDS, ids=lambda r: repr(r)[:60])
def test_the_documented_record_accepts_what_the_schema_loads(app, document, candidate):
    spec_accepts = OAS30Validator(document["components"]["schemas"]["LogRecord"]).is_valid(
        candidate)
    try:
        app.extensions["record_schema"].load([candidate])
        loads = True
    except ValidationError:
        loads = False
    assert spec_accepts == loads


def test_the_documented_record_follows_the_configured_limits(make_app):
    app = make_app(MAX_MESSAGE_BYTES=100, MAX_ATTRIBUTES_KEYS=7, MAX_BATCH_RECORDS=50)
    document = app.test_client().get("/openapi.json").get_json()
    record_schema = document["components"]["schemas"]["LogRecord"]
    assert record_schema["properties"]["message"]["maxLength"] == 100
    assert record_schema["properties"]["attributes"]["maxProperties"] == 7
    assert sorted(record_schema["required"]) == sorted(
        name for name, field in app.extensions["record_schema"].fields.items() if field.required)
    assert record_schema["additionalProperties"] is False
    body = document["paths"]["/ingest"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["oneOf"][0]["maxItems"] == 50
    assert "application/x-ndjson" in body


# Swagger UI

def test_docs_page_loads_only_local_assets(client):
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert not re.search(r"https?://", html)
    assert "validatorUrl: null" in html  # no request to the public validator
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 2
    for url in assets:
        assert url.startswith("/docs/"), url
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert answer.data
    assert '"/openapi.json"' in html


def test_docs_assets_are_only_the_swagger_ui_files(client):
    assert client.get("/docs/index.html").status_code == 404
    assert client.get("/docs/..%2Fopenapi.py").status_code == 404
    assert client.get("/docs/swagger-ui-bundle.js").mimetype in (
        "text/javascript", "application/javascript")


def test_docs_group_send_and_read_first_and_show_code_as_markdown(client):
    document = client.get("/openapi.json").json
    assert [tag["name"] for tag in document["tags"]][:2] == ["ingest", "logs"]
    used = {tag for path in document["paths"].values() for op in path.values()
            for tag in op.get("tags", [])}
    assert used <= {tag["name"] for tag in document["tags"]}
    assert "``" not in json.dumps(document)
    assert "`after_id`" in json.dumps(document) and "`attr.<key>=<value>`" in json.dumps(document)
