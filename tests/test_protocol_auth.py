"""API keys on every protocol's routes: the schemes shippers can send, scopes, services, rates."""

import base64

import orjson
import pytest
from helpers import record
from test_auth import Clock, make_key
from wire import NOW_NS, bulk, hec, loki_json, otlp_request

from collector.ingest import writer as write_path


class Wire:
    """How to send one record of ``service`` on a protocol, and how its answers look."""

    def __init__(self, path, content_type, body, ok, shape):
        self.path, self.content_type, self.body, self.ok, self.shape = (
            path, content_type, body, ok, shape)

    def send(self, client, service="billing", count=1, **headers):
        return client.post(self.path, data=self.body(service, count),
                           headers={"Content-Type": self.content_type, **headers})


def _otlp_shape(response):
    from google.rpc import status_pb2

    return response.mimetype == "application/x-protobuf" and bool(
        status_pb2.Status.FromString(response.data).message)


def _es_ok(response):
    return response.status_code == 200 and response.get_json()["errors"] is False


def _es_shape(response):
    body = response.get_json()
    return response.headers.get("X-Elastic-Product") == "Elasticsearch" and body["status"] == (
        response.status_code) and body["error"]["type"]


WIRES = {
    "otlp": Wire("/v1/logs", "application/x-protobuf",
                 lambda service, n: otlp_request([{"body": "m"}] * n,
                                                 resource={"service.name": service})
                 .SerializeToString(),
                 lambda r: r.status_code == 200, _otlp_shape),
    "loki": Wire("/loki/api/v1/push", "application/json",
                 lambda service, n: loki_json([({"service_name": service},
                                                [[str(NOW_NS), "m"]] * n)]),
                 lambda r: r.status_code == 204,
                 lambda r: r.mimetype == "text/plain" and r.data.strip()),
    "elasticsearch": Wire("/_bulk", "application/x-ndjson",
                          lambda service, n: bulk(*[("index", {"_index": service},
                                                     {"message": "m"})] * n),
                          _es_ok, _es_shape),
    "splunk": Wire("/services/collector/event", "application/json",
                   lambda service, n: hec(*[{"event": "m", "source": service}] * n),
                   lambda r: r.status_code == 200 and r.get_json()["code"] == 0,
                   lambda r: {"text", "code"} <= set(r.get_json())),
    "ingest with a mapping": Wire("/ingest?message_field=log", "application/json",
                                  lambda service, n: orjson.dumps([{"service": service,
                                                                    "log": "m"}] * n),
                                  lambda r: r.status_code == 201,
                                  lambda r: r.get_json()["error"] and r.get_json()["message"]),
}
SHIPPERS = [name for name in WIRES if name != "ingest with a mapping"]


def _basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


SCHEMES = {
    "bearer": lambda key: {"Authorization": f"Bearer {key}"},
    "apikey": lambda key: {"Authorization": f"ApiKey {key}"},
    "apikey as elasticsearch's id:key": lambda key: {
        "Authorization": "ApiKey " + base64.b64encode(f"collector:{key}".encode()).decode()},
    "basic password": lambda key: {"Authorization": _basic("rsyslog", key)},
    "basic user, no password": lambda key: {"Authorization": _basic(key, "")},
    "splunk": lambda key: {"Authorization": f"Splunk {key}"},
    "x-api-key": lambda key: {"X-API-Key": key},
}


@pytest.fixture
def secured(make_app):
    return make_app(AUTH_REQUIRED=True)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("protocol", SHIPPERS)
def test_every_scheme_presents_the_key_on_every_shippers_protocol(secured, db_path, protocol,
                                                                  scheme):
    key = make_key(secured, "shipper", "ingest")
    response = WIRES[protocol].send(secured.test_client(), **SCHEMES[scheme](key))
    assert WIRES[protocol].ok(response), response.data
    from collector.storage.sqlite.db import database

    with database.connection_context():
        (api_key_id,) = database.execute_sql("SELECT api_key_id FROM log_record").fetchone()
    assert api_key_id is not None


@pytest.mark.parametrize("protocol", SHIPPERS)
@pytest.mark.parametrize("scheme", ["bearer", "basic password", "splunk", "apikey"])
def test_an_unknown_key_is_a_401_in_the_protocols_shape(secured, stored_count, protocol,
                                                        scheme):
    response = WIRES[protocol].send(secured.test_client(),
                                    **SCHEMES[scheme]("clk_not-a-key-anyone-was-given"))
    assert response.status_code == 401
    assert WIRES[protocol].shape(response), response.data
    assert "WWW-Authenticate" in response.headers
    assert stored_count() == 0


def test_on_ingest_basic_credentials_are_a_proxys_and_splunk_is_no_scheme(secured, stored_count):
    """In front of /ingest, Basic credentials are a proxy's (README: Access control)."""
    key = make_key(secured, "shipper", "ingest")
    client = secured.test_client()
    for headers in (SCHEMES["basic password"](key), SCHEMES["splunk"](key)):
        response = client.post("/ingest", json=[record()], headers=headers)
        assert response.status_code == 401
        assert response.get_json()["error"] == "missing_api_key"
    assert client.post("/ingest", json=[record()],
                       headers=SCHEMES["apikey"](key)).status_code == 201
    assert stored_count() == 1


def test_malformed_basic_credentials_are_a_bad_key(secured):
    response = WIRES["elasticsearch"].send(secured.test_client(),
                                           Authorization="Basic !!not-base64!!")
    assert response.status_code == 401
    assert "invalid_api_key" in response.get_json()["error"]["reason"]


@pytest.mark.parametrize("protocol", [*SHIPPERS, "ingest with a mapping"])
def test_a_key_without_the_ingest_scope_is_a_403(secured, stored_count, protocol):
    key = make_key(secured, "dashboards", "read")
    response = WIRES[protocol].send(secured.test_client(), Authorization=f"Bearer {key}")
    assert response.status_code == 403
    assert WIRES[protocol].shape(response), response.data
    assert stored_count() == 0


@pytest.mark.parametrize("protocol", [*SHIPPERS, "ingest with a mapping"])
def test_a_key_pinned_to_services_writes_those_only(secured, stored_count, protocol):
    key = make_key(secured, "billing-shipper", "ingest", services="billing")
    client = secured.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    refused = WIRES[protocol].send(client, "payments", **auth)
    assert refused.status_code == 403, refused.data
    assert WIRES[protocol].shape(refused)
    assert stored_count() == 0
    assert WIRES[protocol].ok(WIRES[protocol].send(client, "billing", **auth))
    assert stored_count() == 1


@pytest.mark.parametrize("protocol", [*SHIPPERS, "ingest with a mapping"])
def test_a_keys_rate_limit_holds_on_every_protocol(secured, stored_count, monkeypatch,
                                                   protocol):
    monkeypatch.setattr(write_path, "now_micros", Clock())
    key = make_key(secured, "slow", "ingest", rate_limit=2)
    client = secured.test_client()
    auth = {"Authorization": f"Bearer {key}"}
    assert WIRES[protocol].ok(WIRES[protocol].send(client, count=6, **auth))
    limited = WIRES[protocol].send(client, **auth)
    assert limited.status_code == 429, limited.data
    assert limited.headers["Retry-After"] == "2"
    assert WIRES[protocol].shape(limited)
    assert stored_count() == 6


@pytest.mark.parametrize("path", ["/v1/logs", "/loki/api/v1/push", "/_bulk", "/{index}/_bulk",
                                  "/services/collector/event"])
def test_the_document_gives_each_protocols_refusals_in_its_own_shape(client, path):
    responses = client.get("/openapi.json").get_json()["paths"][path]["post"]["responses"]
    for status in ("401", "403", "429"):
        assert "#/components/schemas/Error" not in orjson.dumps(responses[status]).decode()
    native = client.get("/openapi.json").get_json()["paths"]["/ingest"]["post"]["responses"]
    assert native["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
