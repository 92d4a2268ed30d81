"""Section: 1,000-record batches in each shipper's protocol, beside the native format.

The same generated records, cut into the same 1,000-record batches, are encoded as
each protocol's clients send them (OTLP protobuf and JSON, Loki snappy protobuf and
JSON, an Elasticsearch bulk, Splunk HEC envelopes) and driven through gunicorn right
after the native batches, on the same server. Each body is sent once first and its
answer checked: every record stored, none refused, or the figures would flatter.
"""

import base64
import http.client
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from collector.fields import parse_rfc3339
from collector.ingest.protocols import elasticsearch, loki, native, otlp, splunk
from collector.ingest.protocols.base import IngestRequest
from collector.ingest.schemas import record_schema
from collector.ingest.writer import validate
from collector.keys import ANONYMOUS
from config import Config
from tests.wire import anyvalue
from tests.wire import loki_protobuf as snappy_push

from .ingest import BATCH, MINIMAL, _ratio, load_server
from .report import Row, target_row
from .server import BenchServer

MIN_RATIO = 0.8  # of the native format's records/s, the target
ROUND_WARMUP = 1.0  # seconds of load before each measured window after the first
OTEL_SEVERITY = {"TRACE": 1, "DEBUG": 5, "INFO": 9, "NOTICE": 10, "WARN": 13, "ERROR": 17,
                 "CRITICAL": 18, "FATAL": 21}


def protocols(bench):
    """Section: records/s of 1,000-record batches per protocol, and each one's share of native.

    Each protocol is driven in turns with the native format, ``Mode.protocol_rounds``
    times each, on the same
    server and the same records; its ratio is the median of the rounds' ratios, so that
    the load other processes put on the machine meanwhile weighs on both alike. The
    decoding and validation of the same bodies are also timed in-process (CPU time).
    """
    records = bench.records[: len(bench.records) // BATCH * BATCH]
    batches = [records[start: start + BATCH] for start in range(0, len(records), BATCH)]
    native_bodies = [orjson.dumps(batch) for batch in batches]
    cpu, runs, ratios, rows = {}, {}, {}, []
    for name, wire in WIRES.items():
        bodies = [wire.encode(batch) for batch in batches]
        cpu[name] = _decoding(native_bodies, bodies, wire, bench)
        database = bench.workdir / f"protocol-{len(runs)}.db"
        rounds = []
        with BenchServer(bench.workdir, database) as server:
            _check(server.port, native_bodies[0], NATIVE_WIRE)
            _check(server.port, bodies[0], wire)
            for turn in range(bench.mode.protocol_rounds):
                warmup = None if turn == 0 else ROUND_WARMUP
                rounds.append({
                    label: load_server(bench, server, sent, BATCH, bench.mode.protocol_duration,
                                       sent_wire.headers, sent_wire.path, warmup)
                    for label, sent, sent_wire in ((NATIVE, native_bodies, NATIVE_WIRE),
                                                   (name, bodies, wire))})
        runs[name] = rounds
        ratios[name] = statistics.median(
            _ratio(turn[name]["records_per_s"], turn[NATIVE]["records_per_s"]) or 0
            for turn in rounds)
        rows += _rows(name, rounds, ratios[name], cpu)
    return {"runs": runs, "ratios": ratios, "in_process_us_per_record": cpu}, rows


def _rows(name, rounds, ratio, cpu):
    def median(label, figure):
        values = [turn[label][figure] for turn in rounds if turn[label][figure] is not None]
        return statistics.median(values) if values else None

    native_cpu, own_cpu = cpu[name]["native"], cpu[name]["protocol"]
    rows = [
        Row(f"{name}: records/s (native json beside it)",
            f"{median(name, 'records_per_s'):,.0f} ({median(NATIVE, 'records_per_s'):,.0f})"),
        target_row(f"{name} / native json, median of {len(rounds)} rounds", ratio, "{:.2f}",
                   f">= {MIN_RATIO:.2f}", lambda r: r >= MIN_RATIO),
        target_row(f"{name}: non-2xx answers",
                   sum(turn[label]["non_2xx"] for turn in rounds for label in turn), "{:,}",
                   "= 0", lambda n: n == 0),
        Row(f"{name}: decode + validate, in-process CPU (native json)",
            f"{own_cpu['decode'] + own_cpu['validate']:,.1f} us "
            f"({native_cpu['decode'] + native_cpu['validate']:,.1f})"),
    ]
    worker, native_worker = median(name, "server_cpu_us_per_record"), median(
        NATIVE, "server_cpu_us_per_record")
    if worker is not None and native_worker is not None:
        rows.append(Row(f"{name}: worker CPU per record (native json)",
                        f"{worker:,.1f} us ({native_worker:,.1f})"))
    return rows


def _decoding(native_bodies, bodies, wire, bench):
    """CPU microseconds a record takes to decode and to validate in-process, natively and in
    ``wire``'s protocol: the two taken in turns, body by body, for the machine to weigh alike."""
    schema = record_schema(Config().as_dict())
    count = max(1, min(len(bodies), bench.mode.stage_batches // 6))
    spent = {label: {"decode": 0.0, "validate": 0.0} for label in ("native", "protocol")}
    for native_body, body in zip(native_bodies[:count], bodies[:count], strict=True):
        for label, sent, sent_wire in (("native", native_body, NATIVE_WIRE),
                                       ("protocol", body, wire)):
            request = IngestRequest(
                content_type=sent_wire.headers["Content-Type"], content_encoding=None, args={},
                headers={}, caller=ANONYMOUS, read_body=lambda sent=sent: sent,
                max_body_bytes=max(len(sent) * 20, 1 << 20), endpoint=sent_wire.endpoint)
            started = time.process_time()
            records = sent_wire.protocol.batch(request).read_records()
            decoded = time.process_time()
            valid, errors = validate(records, schema)
            spent[label]["decode"] += decoded - started
            spent[label]["validate"] += time.process_time() - decoded
            if errors or len(valid) != BATCH:
                raise RuntimeError(f"{sent_wire.path} refused records of a batch: {errors}")
    return {label: {stage: seconds / (count * BATCH) * 1e6 for stage, seconds in stages.items()}
            for label, stages in spent.items()}


def _check(port, body, wire):
    """Send one body and fail unless its answer says every record of it was stored."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("POST", wire.path, body, wire.headers)
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    if not wire.accepted(response.status, answer):
        raise RuntimeError(f"{wire.path} did not store a whole batch: {response.status} "
                           f"{answer[:500]!r}")


def _epoch_nanos(text):
    return parse_rfc3339(text) * 1000


def otlp_request(batch):
    """The batch as an ExportLogsServiceRequest: one resource per service, as an SDK sends."""
    request = ExportLogsServiceRequest()
    by_service = defaultdict(list)
    for record in batch:
        by_service[record["service"]].append(record)
    for service, records in by_service.items():
        resource_logs = request.resource_logs.add()
        _key_value(resource_logs.resource.attributes.add(), "service.name", service)
        scope_logs = resource_logs.scope_logs.add()
        scope_logs.scope.name = "bench"
        for record in records:
            log = scope_logs.log_records.add()
            log.time_unix_nano = _epoch_nanos(record["timestamp"])
            log.severity_number = OTEL_SEVERITY[record["severity"]]
            log.body.string_value = record["message"]
            _key_value(log.attributes.add(), "host.name", record["host"])
            for key, value in record["attributes"].items():
                _key_value(log.attributes.add(), key, value)
            if "trace_id" in record:
                log.trace_id = bytes.fromhex(record["trace_id"])
                log.span_id = bytes.fromhex(record["span_id"])
    return request


def _key_value(pair, key, value):
    pair.key = key
    anyvalue(pair.value, value)


def otlp_json(batch):
    """The batch in OTLP/JSON, as the Collector's otlphttp exporter sends it."""
    document = json_format.MessageToDict(otlp_request(batch), use_integers_for_enums=True)
    for resource_logs in document["resourceLogs"]:  # ids in hex, as OTLP/JSON has them
        for scope_logs in resource_logs["scopeLogs"]:
            for log in scope_logs["logRecords"]:
                for key in ("traceId", "spanId"):
                    if key in log:
                        log[key] = base64.b64decode(log[key]).hex()
    return orjson.dumps(document)


def loki_streams(batch):
    """The batch as Loki streams: labels service_name, level and host; attributes as metadata."""
    streams = defaultdict(list)
    for record in batch:
        labels = (record["service"], record["severity"].lower(), record["host"])
        metadata = {key: value if isinstance(value, str) else orjson.dumps(value).decode()
                    for key, value in record["attributes"].items()}
        if "trace_id" in record:
            metadata["trace_id"] = record["trace_id"]
        streams[labels].append((_epoch_nanos(record["timestamp"]), record["message"], metadata))
    return streams


def loki_protobuf(batch):
    """The batch as Promtail and Alloy send it: a PushRequest, snappy-compressed."""
    return snappy_push({
        f'{{service_name="{service}", level="{level}", host="{host}"}}': entries
        for (service, level, host), entries in loki_streams(batch).items()})


def loki_json(batch):
    """The batch as a JSON push."""
    return orjson.dumps({"streams": [
        {"stream": {"service_name": service, "level": level, "host": host},
         "values": [[str(nanos), line, metadata] for nanos, line, metadata in entries]}
        for (service, level, host), entries in loki_streams(batch).items()]})


def bulk(batch):
    """The batch as an Elasticsearch bulk of ECS-like documents, as Filebeat sends it."""
    lines = []
    for record in batch:
        lines.append(orjson.dumps({"create": {"_index": record["service"]}}))
        document = {"@timestamp": record["timestamp"], "message": record["message"],
                    "log.level": record["severity"].lower(), "host": {"name": record["host"]},
                    **record["attributes"]}
        if "trace_id" in record:
            document["trace.id"] = record["trace_id"]
            document["span.id"] = record["span_id"]
        lines.append(orjson.dumps(document))
    return b"\n".join(lines) + b"\n"


def hec(batch):
    """The batch as Splunk HEC envelopes, one a line."""
    envelopes = []
    for record in batch:
        event = {"message": record["message"], "level": record["severity"],
                 **record["attributes"]}
        if "trace_id" in record:
            event["trace_id"], event["span_id"] = record["trace_id"], record["span_id"]
        envelopes.append(orjson.dumps({
            "time": _epoch_nanos(record["timestamp"]) / 1e9, "host": record["host"],
            "source": record["service"], "sourcetype": "_json", "event": event}))
    return b"\n".join(envelopes)


def _otlp_accepted(status, answer):
    return status == 200 and not ExportLogsServiceResponse.FromString(answer).HasField(
        "partial_success")


def _native_accepted(status, answer):
    body = orjson.loads(answer)
    return status == 201 and body["accepted"] == BATCH


@dataclass(frozen=True)
class Wire:
    """A protocol as the benchmark sends it."""

    protocol: object  # the collector's Protocol serving it
    endpoint: str  # the route's endpoint
    path: str
    headers: dict
    encode: object  # a batch of records -> a body
    accepted: object  # (status, answer body) -> whether every record was stored


NATIVE = "native json"
NATIVE_WIRE = Wire(native.PROTOCOL, "post_ingest", "/ingest", MINIMAL, orjson.dumps,
                   _native_accepted)
WIRES = {
    "otlp protobuf": Wire(otlp.PROTOCOL, "export_logs", "/v1/logs",
                          {"Content-Type": "application/x-protobuf"},
                          lambda batch: otlp_request(batch).SerializeToString(), _otlp_accepted),
    "otlp json": Wire(otlp.PROTOCOL, "export_logs", "/v1/logs",
                      {"Content-Type": "application/json"}, otlp_json,
                      lambda status, answer: status == 200 and orjson.loads(answer) == {}),
    "loki protobuf": Wire(loki.PROTOCOL, "push", "/loki/api/v1/push",
                          {"Content-Type": "application/x-protobuf"}, loki_protobuf,
                          lambda status, answer: status == 204),
    "loki json": Wire(loki.PROTOCOL, "push", "/loki/api/v1/push",
                      {"Content-Type": "application/json"}, loki_json,
                      lambda status, answer: status == 204),
    "elasticsearch bulk": Wire(elasticsearch.PROTOCOL, "bulk", "/_bulk",
                               {"Content-Type": "application/x-ndjson"}, bulk,
                               lambda status, answer: status == 200
                               and orjson.loads(answer)["errors"] is False),
    "splunk hec": Wire(splunk.PROTOCOL, "event", "/services/collector/event",
                       {"Content-Type": "application/json"}, hec,
                       lambda status, answer: status == 200
                       and orjson.loads(answer)["code"] == 0),
}
