"""Elasticsearch's bulk API: POST /_bulk and /<index>/_bulk, as log shippers use it.

As Elasticsearch reads a bulk (docs/reference/docs/bulk, BulkRequestParser): NDJSON
pairs of an action line and a document, ``index`` or ``create`` (``_type`` tolerated,
as rsyslog and Fluent Bit still send it; ``update`` and ``delete`` are refused per
item: records are append-only). The answer is ``200`` with one item per action, in
order, each with its status, and ``errors: true`` when any failed. An item's ``_id``
is the record's ``event_id``, so a bulk sent again stores nothing twice; a document
whose ``_id`` is already stored is answered ``200`` ``noop`` (not Elasticsearch's 409 for
``create``: Fluent Bit resends a bulk whose items all failed, rsyslog counts a 409 as
a failed batch). A document is read through ``mapping.DEFAULTS`` (``@timestamp`` with
any offset, ``message``/``log``/``msg``, ``host``, ``level``/``severity``, nested
objects as attributes), or through the field mapping the request names; its index
is its service when it names none.

Every answer on these routes is Elasticsearch-shaped JSON with ``X-Elastic-Product``,
errors included, and ``GET /``, ``HEAD /``, ``GET /_cat/health`` and
``GET /_cluster/health`` answer the probes clients make before they send.
"""

import functools
import time

import orjson

from ...errors import InvalidInput
from ..decoding import decompress
from ..writer import Batch
from . import mapping
from .base import Answer, Protocol, Route, reasons

VERSION = "8.19.0"  # what GET / reports: clients choose their request shapes by it
CLUSTER = "collector"
PRODUCT = {"X-Elastic-Product": "Elasticsearch"}
ACTIONS = ("create", "delete", "index", "update")

# The collector's error codes -> Elasticsearch's exception types.
EXCEPTIONS = {
    "missing_api_key": "security_exception",
    "invalid_api_key": "security_exception",
    "insufficient_scope": "security_exception",
    "service_not_allowed": "security_exception",
    "rate_limited": "es_rejected_execution_exception",
    "storage_busy": "es_rejected_execution_exception",
    "storage_read_only": "cluster_block_exception",
    "storage_full": "cluster_block_exception",
    "payload_too_large": "content_too_long_exception",
    "too_many_records": "content_too_long_exception",
    "request_timeout": "timeout_exception",
    "unsupported_media_type": "media_type_header_exception",
    "unsupported_encoding": "illegal_argument_exception",
    "bad_encoding": "parse_exception",
    "malformed_action": "illegal_argument_exception",
    "invalid_parameter": "illegal_argument_exception",
    "internal_error": "exception",
}


class Items:
    """The bulk's actions in order, for the answer: each one's record, or its own error."""

    def __init__(self):
        self.started = time.monotonic()
        self.actions = []  # (action, index, id, record position or None, error or None)


def decode(body, content_encoding, max_bytes, default_index, fieldmap, items):
    """The records of a bulk body's index and create actions; every action noted in ``items``."""
    lines = decompress(body, content_encoding, max_bytes).split(b"\n")
    records = []
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        if not line.strip():
            continue
        action, meta = _action(line, number)
        index = meta.get("_index", default_index)
        identity = meta.get("_id")
        if action == "delete":
            items.actions.append((action, index, identity, None, _refused(action)))
            continue
        if number >= len(lines) or not lines[number].strip():
            raise InvalidInput("malformed_action",
                               f"the {action} action of line [{number}] has no document line "
                               "after it; the bulk request must be terminated by a newline [\\n]")
        source = lines[number]
        number += 1
        if action == "update":
            items.actions.append((action, index, identity, None, _refused(action)))
            continue
        try:
            document = orjson.loads(source)
        except orjson.JSONDecodeError as exc:
            items.actions.append((action, index, identity, None, (
                400, "document_parsing_exception", f"[{number}:{exc.colno}] failed to parse: "
                                                   f"{exc.msg}")))
            continue
        if document.__class__ is not dict:
            items.actions.append((action, index, identity, None, (
                400, "document_parsing_exception", f"line [{number}]: the document must be an "
                                                   "object")))
            continue
        items.actions.append((action, index, identity, len(records), None))
        records.append(fieldmap.record(document, service=index, event_id=identity))
    return records


def _action(line, number):
    try:
        action = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("malformed_action", f"Malformed action/metadata line [{number}]: "
                           f"{exc.msg}") from None
    if action.__class__ is not dict or len(action) != 1:
        raise InvalidInput("malformed_action", f"Malformed action/metadata line [{number}], "
                           "expected an object of one action")
    (name, meta), = action.items()
    if name not in ACTIONS:
        raise InvalidInput("malformed_action", f"Malformed action/metadata line [{number}], "
                           f"expected field [{', '.join(ACTIONS)}] but found [{name[:40]}]")
    if meta.__class__ is not dict:
        raise InvalidInput("malformed_action", f"Malformed action/metadata line [{number}], "
                           "expected START_OBJECT")
    # Elasticsearch reads a numeric _id as its text.
    for key, kinds in (("_index", (str,)), ("_id", (str, int))):
        value = meta.get(key)
        if value is not None and (value.__class__ not in kinds or value == ""):
            raise InvalidInput("malformed_action", f"Action/metadata line [{number}]: {key} "
                               "must be a non-empty string")
    if meta.get("_id").__class__ is int:
        meta["_id"] = str(meta["_id"])
    return name, meta


def _refused(action):
    return (400, "illegal_argument_exception",
            f"the collector is append-only: the {action} action is not supported")


def _item(action, index, identity, status, **outcome):
    return {action: {"_index": index, "_id": identity, "status": status, **outcome}}


def _created(action, index, identity, record_id):
    return _item(action, index, identity, 201, _version=1, result="created",
                 _shards={"total": 1, "successful": 1, "failed": 0},
                 _seq_no=record_id, _primary_term=1)


def _error(status, kind, reason, **extra):
    """Elasticsearch's error body: ``{"error": {"root_cause": [...], ...}, "status": N}``."""
    cause = {"type": kind, "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


class Elasticsearch(Protocol):
    """POST /_bulk, /<index>/_bulk: Elasticsearch's bulk API for log shippers."""

    name = "elasticsearch"
    routes = (
        Route("/_bulk", "bulk"),
        Route("/<index>/_bulk", "index_bulk"),
        Route("/_cat/health", "cat_health", ("GET",), ingest=False),
        Route("/_cluster/health", "cluster_health", ("GET",), ingest=False),
    )

    def batch(self, request):
        fieldmap = mapping.from_request(request.args, request.headers) or mapping.DEFAULTS
        body = request.read_body()
        items = Items()
        # Every item has its own status: the valid documents are stored, the others named.
        return Batch(
            functools.partial(decode, body, request.content_encoding, request.max_body_bytes,
                              request.view_args.get("index"), fieldmap, items),
            partial=True, allow_empty=True, caller=request.caller, context=items,
        )

    def answer(self, request, batch, result):
        items = batch.context
        stored = _stored_ids(batch, result)
        answered, errors = [], False
        for action, index, identity, position, error in items.actions:
            if error is None and position in result.rejected:
                error = (400, "document_parsing_exception", reasons(result.rejected[position]))
            if error is not None:
                errors = True
                status, kind, reason = error
                answered.append(_item(action, index, identity, status,
                                      error={"type": kind, "reason": reason}))
                continue
            record_id = stored.get(position)
            if record_id is None:  # its _id was stored before: nothing changed
                answered.append(_item(action, index, identity, 200, _version=1, result="noop",
                                      _shards={"total": 0, "successful": 0, "failed": 0}))
            else:
                answered.append(_created(action, index, str(record_id) if identity is None
                                         else identity, record_id))
        took = round((time.monotonic() - items.started) * 1000)
        return Answer(200, {"took": took, "errors": errors, "items": answered}, dict(PRODUCT))

    def error(self, failure):
        kind = EXCEPTIONS.get(failure.code, "illegal_argument_exception"
                              if failure.status < 500 else "exception")
        headers = {**failure.headers, **PRODUCT}
        extra = {}
        if failure.status == 401:
            challenge = 'Basic realm="collector" charset="UTF-8", ApiKey'
            headers["WWW-Authenticate"] = challenge
            extra["header"] = {"WWW-Authenticate": [challenge]}
        return Answer(failure.status, _error(failure.status, kind,
                                             f"{failure.code}: {failure.message}", **extra),
                      headers)

    def serve(self, endpoint, request):
        # "info" is GET / and HEAD /, where the explorer's page stands for browsers: the web
        # layer forwards the other clients' requests here.
        if endpoint == "info":
            body = {
                "name": CLUSTER, "cluster_name": CLUSTER, "cluster_uuid": "collector-0",
                "version": {"number": VERSION, "build_flavor": "default", "build_type": "tar",
                            "build_snapshot": False, "lucene_version": "9.12.0",
                            "minimum_wire_compatibility_version": "7.17.0",
                            "minimum_index_compatibility_version": "7.0.0"},
                "tagline": "You Know, for Search",
            }
            return Answer(200, body, dict(PRODUCT))
        if endpoint == "cluster_health":
            body = {"cluster_name": CLUSTER, "status": "green", "timed_out": False,
                    "number_of_nodes": 1, "number_of_data_nodes": 1,
                    "active_primary_shards": 0, "active_shards": 0, "relocating_shards": 0,
                    "initializing_shards": 0, "unassigned_shards": 0,
                    "number_of_pending_tasks": 0, "active_shards_percent_as_number": 100.0}
            return Answer(200, body, dict(PRODUCT))
        return _cat_health(request.args)

    def format_name(self, request):
        return "elasticsearch_bulk"

    def openapi(self, config):
        return _openapi()


def _stored_ids(batch, result):
    """Record position -> the id it was stored under; duplicates and refused ones are absent.

    The Writer stores the valid records' rows in order, skipping those whose event_id
    was already stored: the rows it stored are the very objects it was given.
    """
    valid = [position for position in range(batch.count) if position not in result.rejected]
    stored, next_row = {}, 0
    for position, row in zip(valid, batch.rows, strict=True):
        if next_row < len(result.rows) and result.rows[next_row] is row:
            stored[position] = result.first_id + next_row
            next_row += 1
    return stored


def _cat_health(args):
    now = time.time()
    row = {"epoch": str(int(now)), "timestamp": time.strftime("%H:%M:%S", time.gmtime(now)),
           "cluster": CLUSTER, "status": "green", "node.total": "1", "node.data": "1",
           "shards": "0", "pri": "0", "relo": "0", "init": "0", "unassign": "0",
           "pending_tasks": "0", "max_task_wait_time": "-", "active_shards_percent": "100.0%"}
    if args.get("format") == "json":
        return Answer(200, [row], dict(PRODUCT))
    lines = [" ".join(row)] if "v" in args else []
    lines.append(" ".join(row.values()))
    return Answer(200, ("\n".join(lines) + "\n").encode(), dict(PRODUCT),
                  content_type="text/plain; charset=UTF-8")


def _openapi():
    json_body = {"application/json": {"schema": {"type": "object"}}}
    failure = {"description": 'Elasticsearch\'s error shape: {"error": {...}, "status": N}.',
               "content": json_body}
    bulk = {
        "tags": ["ingest"],
        "parameters": [{"in": "header", "name": "Content-Encoding",
                        "schema": {"type": "string", "enum": ["gzip", "deflate"]}},
                       *mapping.mapping_parameters()],
        "requestBody": {"required": True,
                        "description": "NDJSON: an action line (index or create), then its "
                                       "document, for each document.",
                        "content": {"application/x-ndjson": {"schema": {"type": "string"}},
                                    "application/json": {"schema": {"type": "string"}}}},
        "responses": {
            "200": {"description": "One item per action, in order, each with its status; "
                                   "errors is true when any failed.", "content": json_body},
            **{status: failure for status in ("400", "401", "403", "408", "413", "415", "429",
                                              "503", "507", "500")},
        },
    }
    refused = {status: failure for status in ("401", "403")}
    probe = {"tags": ["ingest"], "responses": {"200": {"description": "As Elasticsearch "
                                                                      "answers it.",
                                                       "content": json_body}, **refused}}
    cat = {"tags": ["ingest"],
           "parameters": [{"in": "query", "name": "format", "schema": {"type": "string",
                                                                        "enum": ["json"]}},
                          {"in": "query", "name": "v", "schema": {"type": "string"},
                           "allowEmptyValue": True}],
           "responses": {"200": {"description": "One line of columns (text), or JSON.",
                                 "content": {"text/plain": {"schema": {"type": "string"}},
                                             **json_body}}, **refused}}
    index = {**bulk, "parameters": [
        {"in": "path", "name": "index", "required": True, "schema": {"type": "string"},
         "description": "The index of actions that name none: the service of documents "
                        "that name none."}, *bulk["parameters"]]}
    operations = {"bulk": {"post": bulk}, "index_bulk": {"post": index},
                  "cat_health": {"get": cat}, "cluster_health": {"get": probe}}
    return operations, {}


PROTOCOL = Elasticsearch()
