"""The one pattern miner: it tails the records by id and gives each its pattern.

Mining costs 20-40 µs of CPU a record, a third to two thirds of what ingest spends on it, so it
never runs in a request: one miner, in a process of its own at idle CPU priority, follows
the stored records and saves each batch's patterns, the state that gave them and its progress
in one transaction (exactly once, whatever dies when). Under load it lags behind instead of
slowing ingest; the lag is in /metrics and in /logs/patterns.

One miner at a time: it mines only while it holds the store's miner lock (a lock file beside
the patterns' database for SQLite), so its ids never fork. Others wait on the lock as
standbys. A miner that starts rebuilds its state from the saved rows and goes on after the
last record mined, so ids survive restarts and deaths.

Where it runs: under gunicorn, in a dirty worker (gunicorn.conf.py, unless
PATTERN_MINER=off): gunicorn starts it with the server, starts it again if it dies and
stops it with the server. By hand, ``flask --app wsgi mine``. Never in the test client or
another CLI command.
"""

import ctypes
import logging
import os
import signal
import threading
import time

from ..metrics import PATTERN_DELAY
from ..patterns.index import PatternIndex, generation

log = logging.getLogger("collector.miner")

BATCH = 1000  # records a transaction: ~30 ms of mining, a few ms of writing
POLL_SECONDS = 0.5  # how often a caught-up miner looks for new records: the lag's floor
STANDBY_SECONDS = 5.0  # how often a standby tries the lock
RETRY_SECONDS = 5.0  # after a failure, before starting again from the saved state
SWEEP_SECONDS = 600.0  # how often a caught-up miner drops the patterns of pruned records
SWEEP_CHUNK = 10_000


class Miner:
    """The PatternIndex over a MinerLedger: restored from it, saved to it a batch at a time."""

    def __init__(self, ledger, similarity, clock=time.time):
        self.ledger, self.clock = ledger, clock
        self.index = PatternIndex(similarity)
        self.mined_id, clusters, patterns = ledger.load(generation(similarity))
        self.index.restore(clusters, patterns)
        self._swept_at, self._sweep_from = clock(), 0

    def step(self, limit=BATCH):
        """Mine and save the next ``limit`` records at most; how many there were."""
        rows = self.ledger.unmined(self.mined_id, limit)
        if not rows:
            return 0
        for record_id, service, message, timestamp, _received_at in rows:
            self.index.add(record_id, service, message, timestamp)
        self.ledger.save(self.index.take_changes(), rows[-1][0])
        self.mined_id = rows[-1][0]
        # The batch's first record waited longest: its delay bounds the batch's.
        PATTERN_DELAY.observe(max(0.0, self.clock() - rows[0][4] / 1e6))
        return len(rows)

    def catch_up(self):
        """Mine every record stored so far; how many."""
        total = 0
        while count := self.step():
            total += count
        return total

    def sweep(self):
        """When due, drop the patterns of one chunk of pruned records; whether it did."""
        if self.clock() - self._swept_at < SWEEP_SECONDS:
            return False
        last = self.ledger.forget_pruned(self._sweep_from, SWEEP_CHUNK)
        if last is None:  # a whole pass done
            self._swept_at, self._sweep_from = self.clock(), 0
        else:
            self._sweep_from = last
        return True


def run(store, similarity, stopped):
    """Mine while holding the miner lock, standing by while another holds it, until ``stopped``
    (a threading.Event) is set; failures are logged and the miner starts again."""
    while not stopped.is_set():
        with store.pattern_miner() as ledger:
            if ledger is None:
                stopped.wait(STANDBY_SECONDS)
                continue
            try:
                miner = Miner(ledger, similarity)
                log.info("pattern miner started after record %s", miner.mined_id)
                while not stopped.is_set():
                    if not miner.step() and not miner.sweep():
                        stopped.wait(POLL_SECONDS)
            except Exception:
                log.exception("pattern miner failed; it starts again in %s s", RETRY_SECONDS)
                stopped.wait(RETRY_SECONDS)


def lower_priority():
    """Let every other thread of the machine go first: SCHED_IDLE, or nice 19 where it is not."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # this thread (Linux)
    except (AttributeError, OSError):
        os.nice(19)


def name_process(name):
    """Name this process as ps and /proc/<pid>/comm show it (Linux; elsewhere nothing)."""
    _prctl(15, name.encode()[:15])  # PR_SET_NAME


def end_with_parent():
    """Have the kernel send this process SIGTERM when its parent dies (Linux)."""
    _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _prctl(option, value):
    try:
        ctypes.CDLL(None).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class MinerThread(threading.Thread):
    """``run`` in a daemon thread at idle priority."""

    def __init__(self, store, similarity):
        super().__init__(name="pattern-miner", daemon=True)
        self.store, self.similarity = store, similarity
        self.stopped = threading.Event()

    def run(self):
        lower_priority()
        run(self.store, self.similarity, self.stopped)

    def stop(self):
        """Stop after the batch under way and wait for it."""
        self.stopped.set()
        self.join()
