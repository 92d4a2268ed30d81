"""Probes for load balancers and orchestrators: liveness and readiness."""

import os
import shutil

from flask import Blueprint, current_app, jsonify

from ..db import PAGE_SIZE, database
from ..migrations import LATEST_VERSION, current_version

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness: the process answers. Touches no database."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Readiness: 200 when every check passes, else 503 naming the failing ones."""
    checks = readiness_checks(current_app.config)
    failing = {name: problem for name, problem in checks.items() if problem}
    response = jsonify(
        status="fail" if failing else "ok",
        checks={name: problem or "ok" for name, problem in checks.items()},
    )
    response.status_code = 503 if failing else 200
    return response


def readiness_checks(config):
    """Check name -> None when it passes, else what is wrong."""
    path = database.database
    directory = os.path.dirname(os.path.abspath(path))
    return {
        "database": _database_problem(),
        "writable": _writable_problem(path, directory),
        "disk": _disk_problem(directory, config["READY_MIN_FREE_MB"]),
    }


def _database_problem():
    try:
        version = current_version()
    except Exception as exc:  # whatever the driver raises, the probe reports it
        return f"the database does not answer: {exc}"
    if version < LATEST_VERSION:
        return f"schema version {version}, expected {LATEST_VERSION}: run `make migrate`"
    return None


def _writable_problem(path, directory):
    # SQLite in WAL mode writes the database file and its -wal/-shm files beside it.
    for target in (path, directory):
        if not os.access(target, os.W_OK):
            return f"{target} is not writable"
    return None


def _disk_problem(directory, min_free_mb):
    free_mb = shutil.disk_usage(directory).free // (1024 * 1024)
    if free_mb < min_free_mb:
        return f"{free_mb} MB free, below the floor of {min_free_mb} MB"
    try:
        pages = {name: database.execute_sql(f"PRAGMA {name}").fetchone()[0]
                 for name in ("page_count", "max_page_count", "freelist_count")}
    except Exception:  # the database check names the fault
        return None
    room = pages["max_page_count"] - pages["page_count"] + pages["freelist_count"]
    if room * PAGE_SIZE < 1024 * 1024:
        return "the database is at its size cap (SQLITE_MAX_SIZE_MB)"
    return None
