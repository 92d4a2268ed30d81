"""GET /metrics: the collector's metrics for Prometheus to scrape."""

import time

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST

from ...metrics import exposition
from ...read.search import mining_state
from ...times import now_micros
from ..contract import contract

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@contract(get={"tags": ["operations"], "responses": {"200": {
    "description": "Prometheus' text exposition format.",
    "content": {"text/plain": {"schema": {"type": "string"}}}}}})
def metrics():
    """Every worker's metrics in Prometheus' text format, with the storage measured now."""
    store = current_app.extensions["store"]
    newest = store.newest_received_at()
    mining = mining_state(store, now_micros())
    gauges = [
        *store.gauges(),
        ("collector_newest_record_age_seconds",
         "Seconds since the newest stored record was received.",
         None if newest is None else time.time() - newest / 1_000_000),
        ("collector_pattern_pending_records",
         "Stored records the pattern miner has not given a pattern yet.",
         mining["pending_records"]),
        ("collector_pattern_lag_seconds",
         "Seconds since the oldest record without a pattern was received (0: none).",
         mining["lag_seconds"]),
    ]
    body = exposition(current_app.config["PROMETHEUS_MULTIPROC_DIR"], gauges)
    return Response(body, content_type=CONTENT_TYPE_LATEST)
