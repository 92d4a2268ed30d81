"""At most once an interval: for bookkeeping that need not run on every request."""

import threading


class Throttle:
    """Says whether something keyed by ``key`` is due again, ``interval`` after it last was.

    One per process and purpose (its state is this process's, not shared).
    """

    def __init__(self, interval):
        self.interval = interval
        self._last = {}
        self._lock = threading.Lock()

    def due(self, now, key=None):
        """True, and noted as done at ``now``, when ``key`` was last done over an interval ago."""
        with self._lock:
            if now - self._last.get(key, -self.interval) < self.interval:
                return False
            self._last[key] = now
            return True

    def forget(self, key=None):
        """Let ``key`` be due at once (what was due was not done after all)."""
        with self._lock:
            self._last.pop(key, None)
