"""Real shippers nobody here wrote, each shipping the 2,000 lines of a LogHub sample to gunicorn.

Every test checks that every line arrives exactly once, with its severity, timestamp,
service and one attribute. The samples are from https://github.com/logpai/loghub (in
../shared/data/loghub); the clients are the OpenTelemetry Python SDK and
python-logging-loki from PyPI, rsyslog's omelasticsearch and syslog-ng's
elasticsearch-http() and http() from Debian. Each test skips, saying why, when its
client or the samples are missing. The configurations are those of the README.
"""

import collections
import csv
import datetime as dt
import logging
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import orjson
import pytest
from helpers import create_key
from server import Server

# The stored rows are read from the SQLite file itself (rows, wait_for).
pytestmark = [pytest.mark.e2e,
              pytest.mark.sqlite_only("reads the stored rows from the SQLite file")]

LOGHUB = Path(__file__).resolve().parents[2] / "shared" / "data" / "loghub"
README = Path(__file__).resolve().parents[1] / "README.md"
RSYSLOG_ROOT = Path(os.environ.get("RSYSLOG_ROOT", "/opt/rsyslog-root"))
RSYSLOGD = RSYSLOG_ROOT / "usr/sbin/rsyslogd"
SYSLOG_NG_SCL = Path("/usr/share/syslog-ng/include/scl/elasticsearch/elastic-http.conf")
ARRIVAL_TIMEOUT = 120.0  # seconds for 2,000 lines to arrive, on a loaded 2-core machine


def loghub(system, suffix="_2k.log_structured.csv"):
    """The path of a LogHub sample, or a skip when ../shared/data/loghub is absent."""
    path = LOGHUB / system / f"{system}{suffix}"
    if not path.exists():
        pytest.skip(f"the LogHub sample {path} is absent (../shared/data/loghub)")
    return path


def structured(system):
    with loghub(system).open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def raw_lines(system, into):
    """The sample's raw lines, and a copy of them in ``into`` ending with a newline."""
    text = loghub(system, "_2k.log").read_text(encoding="utf-8", errors="replace")
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    into.write_text("\n".join(lines) + "\n")
    assert len(lines) == 2000
    return lines


@pytest.fixture
def collector(tmp_path):
    """A collector requiring keys (AUTH=on), not started yet, and an ingest key for it."""
    database = tmp_path / "collector.db"
    key = create_key(database, "shipper", "ingest")
    return Server(tmp_path, database, env={"AUTH": "on"}), key


def rows(database, service):
    """The stored records of ``service``, as dicts."""
    with closing(sqlite3.connect(database)) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute(
            "SELECT * FROM log_record WHERE service = ? ORDER BY id", (service,))]


def wait_for(database, service, count, process=None):
    """The records of ``service`` once there are ``count``; fails past ARRIVAL_TIMEOUT."""
    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    found = []
    while time.monotonic() < deadline:
        if database.exists():
            found = rows(database, service)
            if len(found) >= count:
                time.sleep(1.0)  # anything more (a duplicate) would arrive now
                return rows(database, service)
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the shipper exited with {process.returncode}")
        time.sleep(0.3)
    raise AssertionError(f"{len(found)} of {count} records of {service} arrived")


def micros(moment):
    return round(moment.timestamp() * 1_000_000)


def stop(process):
    """SIGTERM a shipper we started and wait for it."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# The OpenTelemetry Python SDK: LoggingHandler -> BatchLogRecordProcessor -> OTLP/HTTP exporter.

ZOOKEEPER_LEVELS = {"INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR}


# 1.45 says LoggingHandler moves to opentelemetry-instrumentation-logging: it is still the SDK's.
@pytest.mark.filterwarnings("ignore:`LoggingHandler` in `opentelemetry-sdk` is deprecated")
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_opentelemetry_sdk_ships_a_sample_over_otlp_protobuf(collector, compression):
    sdk_logs = pytest.importorskip("opentelemetry.sdk._logs",
                                   reason="opentelemetry-sdk is not installed")
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    lines = structured("Zookeeper")
    server, key = collector
    service = f"zookeeper-{compression}"
    with server:
        # As the README configures it (OTel SDK): the endpoint, the key, the compression.
        exporter = OTLPLogExporter(
            endpoint=f"http://127.0.0.1:{server.port}/v1/logs",
            headers={"Authorization": f"Bearer {key}"},
            compression=Compression.Gzip if compression == "gzip" else Compression.NoCompression)
        provider = sdk_logs.LoggerProvider(resource=Resource.create({"service.name": service}))
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        logger = logging.getLogger(f"loghub.zookeeper.{compression}")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        handler = sdk_logs.LoggingHandler(logger_provider=provider)
        logger.addHandler(handler)
        tracer = TracerProvider().get_tracer("loghub")
        sent, traced = {}, {}
        try:
            with tracer.start_as_current_span("first hundred lines") as span:
                for row in lines[:100]:
                    traced[int(row["LineId"])] = span.get_span_context()
                    sent[int(row["LineId"])] = _log_row(logger, row)
            for row in lines[100:]:
                sent[int(row["LineId"])] = _log_row(logger, row)
        finally:
            logger.removeHandler(handler)
            provider.shutdown()  # flushes the batch processor
        stored = wait_for(server_database(server), service, len(lines))

    by_line = collections.Counter(orjson.loads(r["attributes"])["line"] for r in stored)
    assert by_line == collections.Counter(sent.keys()), "every line exactly once"
    for record in stored:
        attributes = orjson.loads(record["attributes"])
        row, created = sent[attributes["line"]]
        assert record["message"] == row["Content"]
        assert record["severity"] == {"WARN": "WARN", "INFO": "INFO", "ERROR": "ERROR"}[
            row["Level"]]
        assert abs(record["timestamp"] - micros(created)) <= 1
        assert attributes["component"] == row["Component"]
        context = traced.get(attributes["line"])
        if context is None:
            assert record["trace_id"] is None and record["span_id"] is None
        else:
            assert record["trace_id"] == format(context.trace_id, "032x")
            assert record["span_id"] == format(context.span_id, "016x")


def _log_row(logger, row):
    """Log a Zookeeper line as its application would have, at its own time."""
    time_part, _, millis = row["Time"].partition(",")
    created = dt.datetime.fromisoformat(f"{row['Date']}T{time_part}.{millis}+00:00")
    record = logger.makeRecord(logger.name, ZOOKEEPER_LEVELS[row["Level"]], "zookeeper.java",
                               int(row["LineId"]), row["Content"], None, None,
                               extra={"line": int(row["LineId"]), "component": row["Component"]})
    record.created = created.timestamp()
    logger.handle(record)
    return row, created


def server_database(server):
    return Path(server.env["DATABASE_URL"].removeprefix("sqlite:///"))


# python-logging-loki: one push a record, Basic auth, the level in a "severity" label.

HADOOP_LEVELS = {"INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR,
                 "FATAL": logging.CRITICAL}


def test_python_logging_loki_ships_a_sample_over_loki_push(collector):
    logging_loki = pytest.importorskip("logging_loki",
                                       reason="python-logging-loki is not installed")
    lines = structured("Hadoop")
    server, key = collector
    with server:
        handler = logging_loki.LokiHandler(
            url=f"http://127.0.0.1:{server.port}/loki/api/v1/push",
            tags={"service_name": "hadoop"}, auth=("loki", key), version="1")
        failures = []
        handler.handleError = lambda record: failures.append(record)
        logger = logging.getLogger("loghub.hadoop")
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        started = time.time()
        try:
            for row in lines:
                logger.log(HADOOP_LEVELS[row["Level"]], row["Content"],
                           extra={"tags": {"line": row["LineId"], "component": row["Component"]}})
        finally:
            logger.removeHandler(handler)
        finished = time.time()
        assert not failures, "every push was answered 204"
        stored = wait_for(server_database(server), "hadoop", len(lines))

    sent = {row["LineId"]: row for row in lines}
    by_line = collections.Counter(orjson.loads(r["attributes"])["line"] for r in stored)
    assert by_line == collections.Counter(sent.keys()), "every line exactly once"
    for record in stored:
        attributes = orjson.loads(record["attributes"])
        row = sent[attributes["line"]]
        assert record["message"] == row["Content"]
        assert record["severity"] == {"INFO": "INFO", "WARN": "WARN", "ERROR": "ERROR",
                                      "FATAL": "CRITICAL"}[row["Level"]]
        # python-logging-loki stamps a line with the time it sends it.
        assert micros_of(started) - 1 <= record["timestamp"] <= micros_of(finished) + 1
        assert attributes["component"] == row["Component"]
        assert attributes["logger"] == "loghub.hadoop"


def micros_of(seconds):
    return round(seconds * 1_000_000)


# rsyslog's omelasticsearch from Debian: imfile -> bulk mode, Basic auth.


def readme_config(marker, port, key, **paths):
    """The README's configuration block whose first line is ``marker``, made to run here."""
    for _language, block in re.findall(r"^```(\w*)\n(.*?)^```$", README.read_text(),
                                       re.S | re.M):
        if block.startswith(marker):
            text = block.replace("localhost:8000", f"127.0.0.1:{port}")
            text = text.replace('serverport="8000"', f'serverport="{port}"')
            text = text.replace('server="localhost"', 'server="127.0.0.1"')
            text = text.replace("YOUR_INGEST_KEY", key)
            for readme_path, path in paths.items():
                assert readme_path in text, readme_path
                text = text.replace(readme_path, str(path))
            return text
    raise AssertionError(f"the README has no block starting with {marker!r}")


@pytest.mark.parametrize("collector_first", [True, False],
                         ids=["collector up", "collector down at the start"])
def test_rsyslog_omelasticsearch_ships_a_sample_over_bulk(collector, tmp_path, collector_first):
    if not RSYSLOGD.exists():
        pytest.skip(f"rsyslogd is not unpacked in {RSYSLOG_ROOT} (see .ci/run)")
    server, key = collector
    lines = raw_lines("Linux", tmp_path / "linux.log")
    work = tmp_path / "rsyslog"
    work.mkdir()
    conf = tmp_path / "rsyslog.conf"
    conf.write_text(readme_config("# rsyslog:", server.port, key, **{
        "/var/spool/rsyslog": work, "/var/log/app.log": tmp_path / "linux.log"}))
    library = RSYSLOG_ROOT / "usr/lib/x86_64-linux-gnu"
    command = [RSYSLOGD, "-n", "-f", conf, "-i", work / "rsyslogd.pid",
               "-M", library / "rsyslog"]
    env = {**os.environ, "LD_LIBRARY_PATH": str(library)}
    started = time.time()
    log = (tmp_path / "rsyslogd.log").open("wb")
    if collector_first:
        server.start()
    rsyslogd = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not collector_first:
            time.sleep(3)  # rsyslog reads the file, fails to connect and suspends the action
            assert not rows_if_any(server_database(server), "app")
            server.start()
        stored = wait_for(server_database(server), "app", len(lines), rsyslogd)
    finally:
        stop(rsyslogd)
        server.stop()
        log.close()
    finished = time.time()

    messages = collections.Counter(record["message"] for record in stored)
    assert messages == collections.Counter(lines), "every line exactly once"
    hostname = socket.gethostname()
    assert {record["service"] for record in stored} == {"app"}  # the index
    for record in stored:
        assert record["severity"] == "WARN"  # the input's severity
        assert micros_of(started) - 1_000_000 <= record["timestamp"] <= micros_of(finished)
        assert record["host"] == hostname.split(".")[0]
        assert orjson.loads(record["attributes"])["facility"] == "local0"


def rows_if_any(database, service):
    return rows(database, service) if database.exists() else []


# syslog-ng from Debian: elasticsearch-http(), and http() with the field mapping.

# The README's blocks are conf.d files: the main configuration around them.
SYSLOG_NG_MAIN = '@version: 3.38\n@include "scl.conf"\noptions { stats-freq(0); };\n'
SYSLOG_NG_DESTINATIONS = {"elasticsearch-http": "# syslog-ng: elasticsearch-http()",
                          "http": "# syslog-ng: http() with the field mapping"}


@pytest.mark.parametrize("destination", SYSLOG_NG_DESTINATIONS)
def test_syslog_ng_ships_a_sample(collector, tmp_path, destination):
    if shutil.which("syslog-ng") is None:
        pytest.skip("syslog-ng is not installed (Debian's syslog-ng-core, see .ci/run)")
    if destination == "elasticsearch-http" and not SYSLOG_NG_SCL.exists():
        pytest.skip(f"{SYSLOG_NG_SCL} is absent (Debian's syslog-ng-scl, see .ci/run)")
    server, key = collector
    lines = raw_lines("Apache", tmp_path / "apache.log")
    conf = tmp_path / "syslog-ng.conf"
    conf.write_text(SYSLOG_NG_MAIN + readme_config(
        SYSLOG_NG_DESTINATIONS[destination], server.port, key,
        **{"/var/log/apache2/error.log": tmp_path / "apache.log"}))
    command = ["syslog-ng", "-F", "-f", conf, "--persist-file", tmp_path / "syslog-ng.persist",
               "--pidfile", tmp_path / "syslog-ng.pid", "--control", tmp_path / "syslog-ng.ctl"]
    with server, (tmp_path / "syslog-ng.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            stored = wait_for(server_database(server), "apache", len(lines), process)
        finally:
            stop(process)

    messages = collections.Counter(record["message"] for record in stored)
    assert messages == collections.Counter(lines), "every line exactly once"
    for record in stored:
        stamp, _, rest = record["message"][1:].partition("] [")
        level = rest.partition("]")[0]
        assert record["severity"] == {"notice": "NOTICE", "error": "ERROR"}[level]
        moment = dt.datetime.strptime(stamp, "%a %b %d %H:%M:%S %Y").replace(tzinfo=dt.UTC)
        assert record["timestamp"] == micros(moment)
        assert orjson.loads(record["attributes"])["apache_time"] == stamp
