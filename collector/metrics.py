"""Prometheus metrics of the collector, added up over every gunicorn worker.

The metrics are defined here, for every layer to count into; the web layer
times requests (``collector.web.timing``) and answers the scrape.

Under gunicorn, gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before a worker
imports prometheus_client: each worker then keeps its samples in files there,
and a scrape answered by any worker adds up all of them. Without it (tests, the
flask CLI) the samples live in this process.
"""

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

RECORDS_INGESTED = Counter(
    "collector_records_ingested", "Records stored, by body format.", ["format"]
)
BATCHES_INGESTED = Counter(
    "collector_batches_ingested", "Ingest requests that stored their batch, by body format.",
    ["format"],
)
BATCHES_REJECTED = Counter(
    "collector_batches_rejected", "Ingest requests answered with an error, by error code.",
    ["reason"],
)
RECORDS_REJECTED = Counter(
    "collector_records_rejected",
    "Decoded records not stored, by error code: the invalid ones of a partial batch,"
    " every record of a batch refused as a whole.",
    ["reason"],
)
DUPLICATES_SKIPPED = Counter(
    "collector_duplicates_skipped", "Records skipped because their event_id was already stored."
)
BATCH_RECORDS = Histogram(
    "collector_batch_records", "Records per stored batch.",
    buckets=(1, 5, 10, 50, 100, 500, 1000, 5000, 10_000),
)
REQUEST_DURATION = Histogram(
    "collector_request_duration_seconds",
    "Time to answer a request (to the first byte of a streamed body), by endpoint,"
    " method and status class.",
    ["endpoint", "method", "status"],
)
WRITE_LOCK_WAIT = Histogram(
    "collector_write_lock_wait_seconds", "Time a write transaction waited for the write lock."
)
WRITE_TRANSACTION = Histogram(
    "collector_write_transaction_seconds",
    "Time a write transaction held the write lock, to its commit or rollback.",
)
PATTERN_DELAY = Histogram(
    "collector_pattern_delay_seconds",
    "Seconds from a record's receipt to its pattern, for the longest-waiting record of each"
    " batch the miner saved.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
WAL_CHECKPOINTS = Histogram(
    "collector_wal_checkpoints_seconds",
    "Checkpoints of SQLite's write-ahead log after a commit, by result: emptied (all of it"
    " copied back, the next commit rewinds it), or busy (readers kept it in use).",
    ["result"],
)
OVERLOADED = Counter(
    "collector_overloaded_responses", "Answers telling the client to come back later (503, 429).",
    ["status"],
)

def count_stored(format_name, result):
    """Count a stored batch (``IngestResult``); a replayed one stored nothing new."""
    if result.replayed:
        return
    RECORDS_INGESTED.labels(format_name).inc(len(result.rows))
    BATCHES_INGESTED.labels(format_name).inc()
    BATCH_RECORDS.observe(len(result.rows) + result.duplicates + len(result.rejected))
    if result.duplicates:
        DUPLICATES_SKIPPED.inc(result.duplicates)
    if result.rejected:
        RECORDS_REJECTED.labels("validation_failed").inc(len(result.rejected))


def count_refused(reason, records):
    """Count a batch answered with error ``reason``; ``records`` of it had been decoded."""
    BATCHES_REJECTED.labels(reason).inc()
    if records:
        RECORDS_REJECTED.labels(reason).inc(records)


def exposition(multiprocess_dir, gauges):
    """Every metric in Prometheus' text format, plus ``gauges``: (name, help, value) of now.

    A gauge whose value is None (nothing to measure yet) is left out.
    """
    registry = CollectorRegistry()
    if multiprocess_dir:
        MultiProcessCollector(registry, path=multiprocess_dir)
    else:
        registry.register(REGISTRY)
    registry.register(_Gauges(gauges))
    return generate_latest(registry)


class _Gauges:
    """A collector of gauges measured by the scrape itself, so no worker keeps them."""

    def __init__(self, gauges):
        self.gauges = gauges

    def collect(self):
        for name, documentation, value in self.gauges:
            if value is not None:
                yield GaugeMetricFamily(name, documentation, value=value)
