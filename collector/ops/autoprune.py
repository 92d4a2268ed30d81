"""Automatic pruning every PRUNE_INTERVAL seconds, one prune at a time across workers and instances.

Every gunicorn worker runs an AutoPruner thread (started by gunicorn.conf.py's
post_worker_init hook, never by the test client or a CLI command). The threads
agree through the store's prune lock (for SQLite a lock file beside the
database):

- a thread prunes only while it holds the lock, so two prunes never overlap;
- under the lock the schedule holds when the last prune started and when the
  last one finished (wall-clock seconds); a thread that gets the lock prunes
  only when both are at least PRUNE_INTERVAL old, so one prune runs per interval.

A worker that dies mid-prune loses the lock with it; the prune's committed
batches stay deleted and the next prune, an interval after the cut-short one
started, deletes the rest. The schedule outlives restarts: it lives with the
database, not in the workers.
"""

import logging
import os
import random
import threading
import time

from ..errors import StorageUnavailable
from ..times import now_micros

log = logging.getLogger("collector.autoprune")  # the name operators filter on

# Each wake-up comes a random 5-10 % of the interval (at most 15-30 s) late, so
# that the workers do not all reach for the lock at the same moment.
JITTER_FRACTION, JITTER_MAX_SECONDS = 0.1, 30.0


def seconds_until_due(state, interval, now):
    """Seconds from ``now`` until a prune is due, by the schedule's ``state``.

    A time in the future means the clock went back since it was written: it is
    ignored, at worst costing one early prune rather than a stalled schedule.
    """
    stamps = [value for value in (state.get("started"), state.get("finished"))
              if isinstance(value, int | float) and value <= now]
    if not stamps:
        return 0.0
    return max(0.0, max(stamps) + interval - now)


def run_once(store, retention, interval, clock=time.time):
    """Prune unless another worker is pruning or the last prune is under ``interval`` old.

    Returns the PruneReport, or None when it left the prune to another time or
    worker. Exceptions of the prune (StorageUnavailable, ...) propagate.
    """
    with store.prune_schedule() as schedule:
        if schedule is None:
            return None  # another worker is pruning
        state = schedule.read()
        if seconds_until_due(state, interval, clock()) > 0:
            return None
        # Written before pruning: a prune that fails or dies also waits out the interval.
        state.update(started=clock(), pid=os.getpid())
        schedule.write(state)
        with store.session():
            report = store.prune(retention, now_micros())
        state.update(finished=clock(), deleted=report.deleted)
        schedule.write(state)
        return report


class AutoPruner(threading.Thread):
    """A daemon thread that tries a prune whenever one is due, never dying of a failed one."""

    def __init__(self, store, retention, interval):
        super().__init__(name="autoprune", daemon=True)
        self.store, self.retention, self.interval = store, retention, interval
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
            report = run_once(self.store, self.retention, self.interval)
            if report is not None:
                _log_report(report)
        except StorageUnavailable as exc:
            log.warning("automatic prune stopped: %s; next try in %s s", exc.message,
                        self.interval, extra={"fields": {"error": exc.code}})
        except Exception:
            log.exception("automatic prune failed; next try in %s s", self.interval)
        return self.next_delay()

    def next_delay(self):
        """Seconds until the next prune is due, as the schedule tells, plus jitter."""
        try:
            due = seconds_until_due(self.store.peek_prune_schedule(), self.interval, time.time())
        except Exception:  # an unreadable schedule must not end the thread
            due = self.interval
        spread = min(JITTER_FRACTION * self.interval, JITTER_MAX_SECONDS)
        return due + self._random.uniform(spread / 2, spread)


def init_app(app, store, retention):
    """With PRUNE_INTERVAL set, give ``app`` an AutoPruner, for ``start`` to run in each worker."""
    interval = app.config["PRUNE_INTERVAL"]
    if interval:
        app.extensions["autoprune"] = AutoPruner(store, retention, interval)


def start(app):
    """Start the AutoPruner of ``app`` (a worker's WSGI app), if it has one; the thread, or None."""
    pruner = getattr(app, "extensions", {}).get("autoprune")  # bench's bare Flask has none
    if pruner is not None:
        pruner.start()
    return pruner


def _log_report(report):
    log.info(
        "automatic prune: %s", report.summary(),
        extra={"fields": {
            "deleted": report.deleted,
            "transactions": len(report.holds),
            "max_hold_ms": round(report.max_hold_ms, 1),
            "median_hold_ms": round(report.median_hold_ms, 1),
            "seconds": round(report.seconds, 3),
            "space": report.space,
        }},
    )
