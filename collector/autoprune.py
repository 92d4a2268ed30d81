"""Automatic pruning every PRUNE_INTERVAL seconds, one prune at a time across gunicorn's workers.

Every worker runs an AutoPruner thread (started by gunicorn.conf.py's
post_worker_init hook, never by the test client or a CLI command). The
threads agree through a lock file beside the database, ``<database>.prune-lock``:

- a thread prunes only while it holds a non-blocking ``flock`` on that file, so
  two prunes never overlap, whichever processes they run in;
- under the lock the file holds when the last prune started and when the last
  one finished (wall-clock seconds, JSON); a thread that gets the lock prunes
  only when both are at least PRUNE_INTERVAL old, so one prune runs per interval.

A worker that dies mid-prune loses its lock with its file descriptor; the
prune's committed batches stay deleted and the next prune, an interval after
the cut-short one started, deletes the rest. The schedule outlives restarts:
it lives in the file, not in the workers.
"""

import fcntl
import json
import logging
import os
import random
import threading
import time

from . import maintenance
from .db import database
from .errors import StorageUnavailable
from .retention import Retention
from .times import now_micros

log = logging.getLogger(__name__)

# Each wake-up comes a random 5-10 % of the interval (at most 15-30 s) late, so
# that the workers do not all reach for the lock at the same moment.
JITTER_FRACTION, JITTER_MAX_SECONDS = 0.1, 30.0


def lock_path(config):
    """The lock file beside the database that DATABASE_URL names."""
    return config["DATABASE_URL"].removeprefix("sqlite:///") + ".prune-lock"


def seconds_until_due(state, interval, now):
    """Seconds from ``now`` until a prune is due, by the ``state`` kept in the lock file.

    A time in the future means the clock went back since it was written: it is
    ignored, at worst costing one early prune rather than a stalled schedule.
    """
    stamps = [value for value in (state.get("started"), state.get("finished"))
              if isinstance(value, int | float) and value <= now]
    if not stamps:
        return 0.0
    return max(0.0, max(stamps) + interval - now)


def run_once(config, clock=time.time):
    """Prune unless another worker is pruning or the last prune is under PRUNE_INTERVAL old.

    Returns the PruneReport, or None when it left the prune to another time or
    worker. Exceptions of the prune (StorageUnavailable, ...) propagate.
    """
    retention = Retention.from_config(config)
    fd = os.open(lock_path(config), os.O_RDWR | os.O_CREAT, 0o644)
    # Closing the file releases the lock, as the death of the process does.
    with os.fdopen(fd, "r+", encoding="utf-8") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # another worker is pruning
        state = _parse(lock_file.read())
        if seconds_until_due(state, config["PRUNE_INTERVAL"], clock()) > 0:
            return None
        # Written before pruning: a prune that fails or dies also waits out the interval.
        state.update(started=clock(), pid=os.getpid())
        _write(lock_file, state)
        with database.connection_context():
            report = maintenance.prune(retention, now_micros())
        state.update(finished=clock(), deleted=report.deleted)
        _write(lock_file, state)
        return report


def peek_state(config):
    """The lock file's state read without the lock: good enough to schedule a wake-up by."""
    try:
        with open(lock_path(config), encoding="utf-8") as lock_file:
            return _parse(lock_file.read())
    except OSError:
        return {}


def _parse(text):
    try:
        state = json.loads(text)
    except ValueError:  # empty (never pruned) or torn by a reader without the lock
        return {}
    return state if isinstance(state, dict) else {}


def _write(lock_file, state):
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(json.dumps(state))
    lock_file.flush()


class AutoPruner(threading.Thread):
    """A daemon thread that tries a prune whenever one is due, never dying of a failed one."""

    def __init__(self, app):
        super().__init__(name="autoprune", daemon=True)
        self.app = app
        self.interval = app.config["PRUNE_INTERVAL"]
        self.stopped = threading.Event()
        self._random = random.Random()

    def run(self):
        delay = self.next_delay()
        # Event.wait times on the monotonic clock: wall-clock jumps do not move wake-ups.
        while not self.stopped.wait(delay):
            delay = self.step()

    def stop(self):
        """Stop the thread after the prune under way, if any."""
        self.stopped.set()

    def step(self):
        """Try one prune and log what it did; the seconds to wait before the next try."""
        try:
            with self.app.app_context():
                report = run_once(self.app.config)
            if report is not None:
                _log_report(report)
        except StorageUnavailable as exc:
            log.warning("automatic prune stopped: %s; next try in %s s", exc.message,
                        self.interval, extra={"fields": {"error": exc.error}})
        except Exception:
            log.exception("automatic prune failed; next try in %s s", self.interval)
        return self.next_delay()

    def next_delay(self):
        """Seconds until the next prune is due, as the lock file tells, plus jitter."""
        try:
            due = seconds_until_due(peek_state(self.app.config), self.interval, time.time())
        except Exception:  # an unreadable file must not end the thread
            due = self.interval
        spread = min(JITTER_FRACTION * self.interval, JITTER_MAX_SECONDS)
        return due + self._random.uniform(spread / 2, spread)


def start(app):
    """Start this process's AutoPruner when ``app`` sets PRUNE_INTERVAL; the thread, or None."""
    config = getattr(app, "config", None)  # another WSGI app (bench's bare Flask) may not
    if not config or not config.get("PRUNE_INTERVAL"):
        return None
    pruner = AutoPruner(app)
    pruner.start()
    return pruner


def _log_report(report):
    log.info(
        "automatic prune: pruned %s records in %s transactions;"
        " write lock held max %.1f ms, median %.1f ms; %.1f s",
        report.deleted, len(report.holds), report.max_hold_ms, report.median_hold_ms,
        report.seconds,
        extra={"fields": {
            "deleted": report.deleted,
            "transactions": len(report.holds),
            "max_hold_ms": round(report.max_hold_ms, 1),
            "median_hold_ms": round(report.median_hold_ms, 1),
            "seconds": round(report.seconds, 3),
            "space": report.space,
        }},
    )
