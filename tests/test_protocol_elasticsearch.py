"""Elasticsearch's bulk API, POST /_bulk and /<index>/_bulk, and the probes clients make."""

import base64
import gzip

import pytest
from wire import bulk, stored

from collector.errors import StorageBusy

NDJSON = "application/x-ndjson"
RSYSLOG_TYPE = "application/json; charset=utf-8"
TRACE = "5b8efff798038103d269b633813fc60c"

# What rsyslog 8.2302's omelasticsearch sends with its default template (StdJSONFmt).
RSYSLOG = (b'{"index":{"_index": "system","_type":"events"}}\n'
           b'{"message":" disk full","fromhost":"h1","facility":"user","priority":"err",'
           b'"timereported":"2026-01-02T03:04:05.123456+01:00",'
           b'"timegenerated":"2026-01-02T03:04:05.200000+01:00"}\n')
# What Filebeat 8 sends: create actions into a data stream, ECS documents.
FILEBEAT = {"@timestamp": "2026-01-02T02:04:05.123Z", "message": "GET /cart 200",
            "log": {"level": "warn", "file": {"path": "/var/log/app.log"}, "offset": 12},
            "host": {"name": "web-2"}, "service": {"name": "cart"},
            "trace": {"id": TRACE}, "agent": {"type": "filebeat"}}
# What Fluent Bit's es output sends from tail: _type _doc, @timestamp, log.
FLUENT_BIT = {"@timestamp": "2026-01-02T02:04:05.123456Z", "log": "kernel: eth0 up",
              "stream": "stdout"}


def send(client, body, path="/_bulk", content_type=NDJSON, **headers):
    return client.post(path, data=body, headers={"Content-Type": content_type, **headers})


def answer(response):
    assert response.status_code == 200, response.data
    assert response.mimetype == "application/json"
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    return response.get_json()


def test_an_rsyslog_bulk_is_stored_and_answered_as_elasticsearch_does(client):
    body = answer(send(client, RSYSLOG, content_type=RSYSLOG_TYPE))
    assert body["errors"] is False and isinstance(body["took"], int)
    (item,) = body["items"]
    assert item["index"]["status"] == 201 and item["index"]["result"] == "created"
    (record,) = stored(client)
    assert item["index"]["_id"] == str(record["id"])
    assert record["service"] == "system"  # the index
    assert record["severity"] == "ERROR"
    assert record["message"] == " disk full"
    assert record["host"] == "h1"
    assert record["timestamp"] == "2026-01-02T02:04:05.123456Z"
    assert record["attributes"] == {"facility": "user",
                                    "timegenerated": "2026-01-02T03:04:05.200000+01:00"}


def test_a_filebeat_document_keeps_its_nested_fields(client):
    body = answer(send(client, bulk(("create", {"_index": "logs-app-default"}, FILEBEAT))))
    assert body["items"][0]["create"]["status"] == 201
    (record,) = stored(client)
    assert (record["service"], record["severity"], record["host"]) == ("cart", "WARN", "web-2")
    assert record["trace_id"] == TRACE
    assert record["timestamp"] == "2026-01-02T02:04:05.123000Z"
    assert record["attributes"] == {"log": {"file": {"path": "/var/log/app.log"}, "offset": 12},
                                    "agent": {"type": "filebeat"}}


def test_a_fluent_bit_document_with_type_and_gzip(client):
    payload = bulk(("create", {"_index": "fluent-bit", "_type": "_doc"}, FLUENT_BIT))
    body = answer(send(client, gzip.compress(payload), **{"Content-Encoding": "gzip"}))
    assert body["items"][0]["create"]["status"] == 201
    (record,) = stored(client)
    assert (record["service"], record["message"], record["severity"]) == (
        "fluent-bit", "kernel: eth0 up", "INFO")
    assert record["attributes"] == {"stream": "stdout"}


def test_the_index_in_the_path_is_the_default(client):
    answer(send(client, bulk(("index", {}, {"message": "m"}),
                             ("index", {"_index": "own"}, {"message": "m"}),
                             ("index", {}, {"message": "m", "service": "named"})),
                path="/web/_bulk"))
    assert [r["service"] for r in stored(client)] == ["web", "own", "named"]


def test_a_resent_bulk_stores_nothing_twice(client, stored_count):
    payload = bulk(("create", {"_index": "app", "_id": "evt-1"}, {"message": "one"}),
                   ("index", {"_index": "app", "_id": 2}, {"message": "two"}),
                   ("index", {"_index": "app"}, {"message": "no id"}))
    first = answer(send(client, payload))
    assert [item[action]["status"] for item, action in
            zip(first["items"], ("create", "index", "index"), strict=True)] == [201, 201, 201]
    again = answer(send(client, payload))
    assert again["errors"] is False
    assert again["items"][0]["create"] == {
        "_index": "app", "_id": "evt-1", "status": 200, "_version": 1, "result": "noop",
        "_shards": {"total": 0, "successful": 0, "failed": 0}}
    assert again["items"][1]["index"]["result"] == "noop"
    assert again["items"][2]["index"]["status"] == 201  # no _id: a new document each time
    assert stored_count() == 4
    assert {r["event_id"] for r in stored(client)} == {"evt-1", "2", None}


def test_each_item_has_its_own_status(client):
    payload = bulk(("index", {"_index": "a"}, {"message": "ok"}),
                   ("index", {"_index": "a"}, {"message": "bad", "level": "LOUD"}),
                   ("delete", {"_index": "a", "_id": "1"}, None),
                   ("update", {"_index": "a", "_id": "1"}, {"doc": {"message": "x"}}),
                   ("index", {"_index": "a"}, b"{not json"),
                   ("index", {"_index": "a"}, b"[1, 2]"),
                   ("index", {}, {"message": "no index, no service"}),
                   ("create", {"_index": "a"}, {"message": "ok too"}))
    body = answer(send(client, payload))
    assert body["errors"] is True
    statuses = [next(iter(item.values()))["status"] for item in body["items"]]
    assert statuses == [201, 400, 400, 400, 400, 400, 400, 201]
    assert list(body["items"][2]) == ["delete"] and list(body["items"][3]) == ["update"]
    bad_level = body["items"][1]["index"]["error"]
    assert bad_level["type"] == "document_parsing_exception" and "LOUD" in bad_level["reason"]
    assert "append-only" in body["items"][2]["delete"]["error"]["reason"]
    assert "service" in body["items"][6]["index"]["error"]["reason"]
    assert [r["message"] for r in stored(client)] == ["ok", "ok too"]


def test_blank_lines_and_carriage_returns_are_tolerated(client):
    payload = b'\r\n{"index":{"_index":"a"}}\r\n{"message":"m"}\r\n\n'
    assert answer(send(client, payload))["items"][0]["index"]["status"] == 201


def test_the_field_mapping_applies_to_bulk_documents(client):
    payload = bulk(("index", {"_index": "a"}, {"text": "hello", "sev": 3, "ts": 1_767_225_600}))
    answer(send(client, payload, path="/_bulk?message_field=text&severity_field=sev"
                                       "&timestamp_field=ts&pipeline=ignored&timeout=1m"))
    (record,) = stored(client)
    assert (record["message"], record["severity"]) == ("hello", "ERROR")
    assert record["timestamp"] == "2026-01-01T00:00:00.000000Z"


def test_probes_are_answered_as_elasticsearch_answers_them(client):
    info = client.get("/")
    assert info.status_code == 200 and info.headers["X-Elastic-Product"] == "Elasticsearch"
    body = info.get_json()
    assert body["version"]["number"].startswith("8.")
    assert body["version"]["build_flavor"] == "default"
    assert body["tagline"] == "You Know, for Search"
    head = client.head("/")
    assert head.status_code == 200 and head.data == b""
    cat = client.get("/_cat/health")
    assert cat.status_code == 200 and cat.mimetype == "text/plain"
    assert cat.get_data(as_text=True).split()[3] == "green"
    assert client.get("/_cat/health?v").get_data(as_text=True).startswith("epoch timestamp")
    assert client.get("/_cat/health?format=json").get_json()[0]["status"] == "green"
    assert client.get("/_cluster/health").get_json()["status"] == "green"


def test_a_missing_key_is_an_elasticsearch_401(make_app, stored_count):
    client = make_app(AUTH_REQUIRED=True).test_client()
    response = send(client, RSYSLOG)
    assert response.status_code == 401
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    body = response.get_json()
    assert body["status"] == 401 and body["error"]["type"] == "security_exception"
    assert body["error"]["root_cause"][0]["type"] == "security_exception"
    assert client.get("/").status_code == 401  # the probes need the key too
    assert stored_count() == 0


def test_rsyslog_sends_its_key_as_the_basic_password(make_app, stored_count):
    from test_auth import make_key

    app = make_app(AUTH_REQUIRED=True)
    key = make_key(app, "rsyslog", "ingest")
    basic = base64.b64encode(f"rsyslog:{key}".encode()).decode()
    body = answer(send(app.test_client(), RSYSLOG, Authorization=f"Basic {basic}"))
    assert body["errors"] is False
    assert stored_count() == 1


def test_too_large_and_overload_are_elasticsearch_errors(make_app, monkeypatch):
    app = make_app(MAX_BODY_BYTES=1000)
    client = app.test_client()
    large = send(client, bulk(("index", {"_index": "a"}, {"message": "x" * 2000})))
    assert large.status_code == 413 and large.get_json()["status"] == 413
    assert large.headers["X-Elastic-Product"] == "Elasticsearch"

    def busy(batch):
        raise StorageBusy()

    monkeypatch.setattr(app.extensions["writer"], "ingest", busy)
    response = send(client, RSYSLOG)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json()["error"]["type"] == "es_rejected_execution_exception"


# Hostile input: a 4xx in Elasticsearch's shape, nothing stored, never a 500. "items" means
# the bulk is answered 200 with every item refused, as Elasticsearch refuses a document.

def _document(**fields):
    return bulk(("index", {"_index": "a"}, {"message": "m", **fields}))


WRONG_VALUES = {"a number": 7, "a boolean": True, "a list": ["x"], "an object": {"k": "v"}}
HOSTILE = [
    # (id, headers, body, status)
    ("not ndjson", {}, b"hello\n", 400),
    ("action not an object", {}, b'"index"\n{"message":"m"}\n', 400),
    ("unknown action", {}, b'{"upsert":{}}\n{"message":"m"}\n', 400),
    ("two actions on a line", {}, b'{"index":{},"create":{}}\n{"message":"m"}\n', 400),
    ("meta not an object", {}, b'{"index":"a"}\n{"message":"m"}\n', 400),
    ("index a number", {}, b'{"index":{"_index":7}}\n{"message":"m"}\n', 400),
    ("id an object", {}, b'{"index":{"_index":"a","_id":{}}}\n{"message":"m"}\n', 400),
    ("no document line", {}, b'{"index":{"_index":"a"}}\n', 400),
    ("action nested 10,000 deep", {}, b'{"index":' + b"[" * 10_000 + b"]" * 10_000 + b"}\n",
     400),
    ("gzip bomb", {"Content-Encoding": "gzip"},
     gzip.compress(b"\n" * (64 * 1024**2), compresslevel=9), 413),
    ("truncated gzip", {"Content-Encoding": "gzip"}, gzip.compress(RSYSLOG)[:20], 400),
    ("brotli", {"Content-Encoding": "br"}, RSYSLOG, 415),
    ("document nested 10,000 deep", {},
     b'{"index":{"_index":"a"}}\n' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"\n", "items"),
    ("attributes nested 7 deep", {}, _document(a={"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}),
     "items"),
    ("truncated document", {}, b'{"index":{"_index":"a"}}\n{"message":"m\n', "items"),
    ("document a string", {}, b'{"index":{"_index":"a"}}\n"message"\n', "items"),
    ("only deletes", {}, bulk(("delete", {"_index": "a", "_id": "1"}, None)), "items"),
    ("trace id of 31 digits", {}, _document(trace_id=TRACE[:31]), "items"),
    ("span id of 17 digits", {}, _document(span_id="a" * 17), "items"),
    ("event id of 200 characters", {}, bulk(("index", {"_index": "a", "_id": "x" * 200},
                                             {"message": "m"})), "items"),
    ("timestamp in 2999", {}, _document(**{"@timestamp": "2999-01-01T00:00:00Z"}), "items"),
    ("timestamp not a time", {}, _document(**{"@timestamp": "yesterday"}), "items"),
    ("severity number 9 on syslog's scale", {}, _document(level=9), "items"),
    *((f"{field} as {kind}", {}, _document(**{field: value}), "items")
      for field in ("message", "service", "host", "severity", "timestamp", "trace_id")
      for kind, value in WRONG_VALUES.items()
      if not (kind in ("a list", "an object") and field != "message")  # those are attributes
      and not (kind == "a number" and field in ("severity", "timestamp"))),  # numbers are those
]


@pytest.mark.parametrize("case", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_hostile_input_is_refused_in_elasticsearchs_shape_and_nothing_is_stored(
        client, stored_count, case):
    _name, headers, body, status = case
    response = send(client, body, **headers)
    assert response.mimetype == "application/json"
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    answered = response.get_json()
    if status == "items":
        assert response.status_code == 200, answered
        assert answered["errors"] is True
        for item in answered["items"]:
            (outcome,) = item.values()
            assert 400 <= outcome["status"] < 500 and outcome["error"]["reason"], item
    else:
        assert response.status_code == status, answered
        assert answered["status"] == status and answered["error"]["reason"]
    assert stored_count() == 0

