"""The log explorer on a large store: how long until a view shows its first results and its
histogram, in headless Chromium against gunicorn as `make run` starts it.

    .venv/bin/python -m bench.explorer        # after `make test` (it needs selenium)

The database holds EXPLORER_ROWS records (1,000,000) spread over the last week, filled as the
benchmark's query figures fill theirs (bench.queries); EXPLORER_DATABASE keeps it at that path
to be reused by the next run. Each view is opened EXPLORER_LOADS times (5) after one warm-up
load; the figures are medians, from navigation start to the page's own marks
(``explorer:first-results``, ``explorer:histogram``, then ``explorer:facets``, which the page
asks for once the first two are shown), and the slowest of the page's API calls as the browser
timed them. Each load waits for its facets, so that no load runs beside the previous one's.
"""

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.browser import SKIP, chromium
from tests.server import Server

from . import records, storage
from .queries import _fill_week

TARGET_MS = 1000
# (label, the explorer's query string)
VIEWS = [
    ("last 24 hours, no filter (the default view)", ""),
    ("last hour", "?since=1h"),
    ("last 7 days", "?since=7d"),
    ("last 30 days (the whole store)", "?since=30d"),
    ("one service, last 7 days", "?service={service}&since=7d"),
    ("min severity error, last 24 hours", "?min_severity=error"),
    ("a common word, last 24 hours", "?q={word}"),
]
MARKS = ("explorer:first-results", "explorer:histogram", "explorer:facets")
TIMINGS_JS = """
const done = arguments[arguments.length - 1];
const marks = MARKS;
(function poll() {
  const found = marks.map((name) => performance.getEntriesByName(name)[0]);
  if (found.every(Boolean)) {
    const api = performance.getEntriesByType("resource")
      .filter((e) => e.name.includes("/logs")).map((e) => [e.name, e.duration]);
    done({marks: found.map((e) => e.startTime), api});
  } else {
    setTimeout(poll, 20);
  }
})();
""".replace("MARKS", json.dumps(MARKS))


def main():
    """Fill (or reuse) the database, open each view, print the medians."""
    if SKIP:
        print(f"cannot measure: {SKIP}", file=sys.stderr)
        return 2
    count = int(os.environ.get("EXPLORER_ROWS", 1_000_000))
    loads = int(os.environ.get("EXPLORER_LOADS", 5))
    with tempfile.TemporaryDirectory(prefix="collector-explorer-") as workdir:
        workdir = Path(workdir)
        database = Path(os.environ.get("EXPLORER_DATABASE") or workdir / "explorer.db")
        pool = storage.normalized_rows(records.generate(20_000, records.load_corpus()))
        if not database.exists() or storage.row_count(database) != count:
            database.unlink(missing_ok=True)
            storage.create_schema(database)
            seconds = _fill_week(database, pool, count)
            print(f"filled {count:,} records over a week in {seconds:,.0f} s", file=sys.stderr)
        service, word = pool[0].service, _common_word(pool)
        with Server(workdir, database) as server:
            driver = chromium(workdir / "chromium")
            try:
                print(f"{count:,} records over a week; medians of {loads} loads, ms\n")
                print(f"{'view':44} {'first results':>14} {'histogram':>10} {'facets':>7}"
                      f" {'slowest call':>13}")
                for label, query in VIEWS:
                    url = f"http://127.0.0.1:{server.port}/" + query.format(
                        service=service, word=word)
                    figures = [_load(driver, url) for _ in range(loads + 1)][1:]
                    results, chart, facets, slowest = (
                        statistics.median(f[i] for f in figures) for i in range(4))
                    verdict = "ok" if max(results, chart) < TARGET_MS else "SLOW"
                    print(f"{label:44} {results:14,.0f} {chart:10,.0f} {facets:7,.0f}"
                          f" {slowest:13,.0f}  {verdict}")
            finally:
                driver.quit()
    print(f"\ntarget: first results and histogram under {TARGET_MS:,} ms")
    return 0


def _load(driver, url):
    """(first results, histogram, facets, slowest API call) in ms for one load of ``url``."""
    driver.get("about:blank")
    driver.get(url)
    found = driver.execute_async_script(TIMINGS_JS)
    return (*found["marks"], max(duration for _, duration in found["api"]))


def _common_word(pool):
    """A word in about one message in a hundred of the pool (as bench.queries aims at)."""
    counts = {}
    for row in pool:
        for word in {w.lower() for w in row.message.split() if w.isalpha() and len(w) >= 4}:
            counts[word] = counts.get(word, 0) + 1
    return min(counts, key=lambda word: abs(counts[word] - len(pool) / 100))


if __name__ == "__main__":
    started = time.time()
    status = main()
    print(f"wall time {time.time() - started:,.0f} s", file=sys.stderr)
    raise SystemExit(status)
