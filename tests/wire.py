"""Bodies of the shippers' protocols, built as each specification describes them."""

import cramjam
import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from collector.ingest.protocols.loki import PushRequest

NOW_NS = 1_764_000_000_123_456_789  # 2025-11-24T16:00:00.123456789Z
NOW_MICROS_TEXT = "2025-11-24T16:00:00.123456Z"


def anyvalue(target, value):
    """Set the OTLP AnyValue ``target`` to the Python ``value``."""
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    elif isinstance(value, list):
        target.array_value.SetInParent()
        for item in value:
            anyvalue(target.array_value.values.add(), item)
    elif isinstance(value, dict):
        target.kvlist_value.SetInParent()
        for key, item in value.items():
            pair = target.kvlist_value.values.add()
            pair.key = key
            anyvalue(pair.value, item)


def otlp_request(records, resource=None, scope_name="app.module", scope_version="1.0"):
    """An ExportLogsServiceRequest of one resource and scope; ``records`` are dicts of
    LogRecord fields (``body`` and ``attributes`` as Python values)."""
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    for key, value in (resource if resource is not None else {"service.name": "billing"}).items():
        pair = resource_logs.resource.attributes.add()
        pair.key = key
        anyvalue(pair.value, value)
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = scope_name
    scope_logs.scope.version = scope_version
    for fields in records:
        log = scope_logs.log_records.add()
        for name, value in fields.items():
            if name == "body":
                anyvalue(log.body, value)
            elif name == "attributes":
                for key, item in value.items():
                    pair = log.attributes.add()
                    pair.key = key
                    anyvalue(pair.value, item)
            else:
                setattr(log, name, value)
    return request


def otlp_json(records, service="billing", **resource):
    """An OTLP/JSON body of one resource and scope; ``records`` are logRecords objects."""
    attributes = [{"key": "service.name", "value": {"stringValue": service}}] + [
        {"key": key, "value": value} for key, value in resource.items()]
    return orjson.dumps({"resourceLogs": [{
        "resource": {"attributes": attributes},
        "scopeLogs": [{"scope": {"name": "app.module", "version": "1.0"},
                       "logRecords": records}],
    }]})


def loki_protobuf(streams):
    """A snappy-compressed logproto.PushRequest; ``streams`` maps a labels selector to
    entries (nanoseconds, line[, {structured metadata}])."""
    request = PushRequest()
    for labels, entries in streams.items():
        stream = request.streams.add()
        stream.labels = labels
        for nanos, line, *metadata in entries:
            entry = stream.entries.add()
            entry.timestamp.seconds, entry.timestamp.nanos = divmod(nanos, 1_000_000_000)
            entry.line = line
            for name, value in (metadata[0] if metadata else {}).items():
                pair = entry.structuredMetadata.add()
                pair.name, pair.value = name, value
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def loki_json(streams):
    """A Loki push in JSON; ``streams`` is a list of (labels dict, values)."""
    return orjson.dumps({"streams": [{"stream": labels, "values": values}
                                     for labels, values in streams]})


def bulk(*pairs):
    """An Elasticsearch bulk body: (action, meta, document) triples (document None for none)."""
    lines = []
    for action, meta, document in pairs:
        lines.append(orjson.dumps({action: meta}))
        if document is not None:
            lines.append(document if isinstance(document, bytes) else orjson.dumps(document))
    return b"\n".join(lines) + b"\n"


def hec(*envelopes, separator=b""):
    """HEC event envelopes, one JSON object after another."""
    return separator.join(orjson.dumps(envelope) for envelope in envelopes)


def stored(client, **query):
    """Every stored record, in the order they were stored."""
    page = client.get("/logs", query_string={"limit": 1000, **query}).get_json()["items"]
    return sorted(page, key=lambda item: item["id"])


def send_hostile(client, path, case):
    """Post a hostile-input case (id, content type, headers, body, status); the response,
    its status checked."""
    _name, content_type, headers, body, status = case
    if content_type:
        headers = {"Content-Type": content_type, **headers}
    response = client.post(path, data=body, headers=headers)
    assert response.status_code == status, response.data[:300]
    return response
