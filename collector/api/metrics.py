"""GET /metrics: the collector's metrics for Prometheus to scrape."""

import os
import time

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST

from ..auth import protect
from ..db import database
from ..metrics import exposition
from ..models import LogRecord

bp = Blueprint("metrics", __name__)
protect(bp, "read")


@bp.get("/metrics")
def metrics():
    """Every worker's metrics in Prometheus' text format, with the storage measured now."""
    newest = LogRecord.newest_received_at()
    gauges = [
        ("collector_database_size_bytes",
         "Size of the SQLite database file and its write-ahead log.", _database_bytes()),
        ("collector_newest_record_age_seconds",
         "Seconds since the newest stored record was received.",
         None if newest is None else time.time() - newest / 1_000_000),
    ]
    body = exposition(current_app.config["PROMETHEUS_MULTIPROC_DIR"], gauges)
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def _database_bytes():
    total = 0
    for path in (database.database, f"{database.database}-wal"):
        try:
            total += os.path.getsize(path)
        except FileNotFoundError:  # no WAL between checkpoints that truncate it
            pass
    return total
