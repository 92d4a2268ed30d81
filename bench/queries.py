"""Section: the search issue's query figures, in-process, on a database of realistic records.

The database holds ``Mode.query_rows`` records (1,000,000 by default) spread evenly over the
last week, ids following time as they do when shippers send in real time, cut from the
generated LogHub records. Each query goes through the app (Flask test client: parameters,
search, JSON) ``Mode.query_repeats`` times; the figure is the median.
"""

import statistics
import time
from contextlib import closing

from collector import create_app
from collector.storage.sqlite import chain
from collector.storage.sqlite.writes import INSERT_SQL, insert_rows
from collector.times import now_micros

from . import storage
from .records import ONE_WEEK
from .report import Row, target_row

MEDIAN_TARGET_MS = 50
DEEP_PAGES = 200  # the deep page is the 201st of 100 records, where there are that many
FILL_ROWS_PER_TRANSACTION = 20_000
# Document frequencies of the words searched for: a frequent, a common and a rare word.
# The target is set on the common one (1% of the records); the others show the range.
WORD_SHARES = {"frequent": 0.2, "common": 0.01, "rare": 0.0001}


def query_figures(bench):
    """Section: median latency of the main query shapes on ``Mode.query_rows`` records."""
    database = bench.workdir / "queries.db"
    storage.create_schema(database)
    fill_seconds = _fill_week(database, bench.rows, bench.mode.query_rows)
    figures = {"records": bench.mode.query_rows, "fill_seconds": fill_seconds}
    rows = [Row(f"database: {bench.mode.query_rows:,} records over a week",
                f"filled in {fill_seconds:,.0f} s")]
    measured, measured_rows = measure(database, bench.rows, bench.mode.query_rows,
                                      bench.mode.query_repeats)
    figures["queries"] = measured
    return figures, rows + measured_rows


def measure(database, pool, count, repeats, targeted_only=False):
    """The median latency of each query shape on ``database`` (``count`` records cut from
    ``pool``): the figures by label, and the table's rows."""
    app = create_app({"DATABASE_URL": f"sqlite:///{database}"})
    client = app.test_client()
    service = pool[0].service
    words = _words(database, count)
    trace_id = next(row.trace_id for row in pool if row.trace_id)
    deep_url, deep_page = _deep_page(client, service)

    # (label, url, whether the search issue sets the median target on it)
    queries = [
        ("service + min_severity, last hour",
         f"/logs?service={service}&min_severity=warn&since=1h&limit=100", True),
        *((f"full text, {kind} word ({word}: {count:,} matches)", f"/logs?q={word}&limit=100",
           kind == "common") for kind, (word, count) in words.items()),
        (f"page {deep_page} of a service via cursor", deep_url, True),
        ("stats by severity, last 24 h", "/logs/stats?by=severity&since=24h", True),
        ("newest 100, no filter", "/logs?limit=100", False),
        ("stats by severity, hourly, last 24 h",
         "/logs/stats?by=severity&interval=1h&since=24h", False),
        ("one trace", f"/logs?trace_id={trace_id}", False),
        ("follow: after_id near the end", f"/logs?after_id={count - 50}", False),
    ]
    figures, rows = {}, []
    for label, url, targeted in queries:
        if targeted_only and not targeted:
            continue
        timings, body = _time(client, url, repeats)
        median = statistics.median(timings)
        figures[label] = {
            "url": url, "median_ms": median, "max_ms": max(timings),
            "returned": len(body["items"]) if "items" in body else body["total"],
        }
        if targeted:
            rows.append(target_row(f"{label}: median", median, "{:,.1f} ms",
                                   f"< {MEDIAN_TARGET_MS} ms", lambda ms: ms < MEDIAN_TARGET_MS))
        else:
            rows.append(Row(f"{label}: median", f"{median:,.1f} ms"))
    app.extensions["store"].close()
    return figures, rows


def _fill_week(database, pool, count):
    """Insert ``count`` rows cycled from ``pool``, re-timed evenly over the last week."""
    end = now_micros()
    step = ONE_WEEK * 1_000_000 // count
    started = time.perf_counter()
    with closing(storage.connect(database)) as connection:
        for first in range(0, count, FILL_ROWS_PER_TRANSACTION):
            chunk = []
            for i in range(first, min(first + FILL_ROWS_PER_TRANSACTION, count)):
                row = pool[i % len(pool)]
                moment = end - (count - i) * step
                chunk.append(row._replace(received_at=moment, timestamp=moment))
            connection.execute("BEGIN IMMEDIATE")
            insert_rows(connection, chunk)
            connection.execute("COMMIT")
    return time.perf_counter() - started


def _words(database, count):
    """A word of each share in WORD_SHARES, with its number of matching records."""
    with closing(storage.connect(database)) as connection:
        connection.execute(
            "CREATE VIRTUAL TABLE temp.vocabulary USING fts5vocab(main, log_record_fts, row)")
        words = {}
        for kind, share in WORD_SHARES.items():
            words[kind] = connection.execute(
                "SELECT term, doc FROM temp.vocabulary WHERE length(term) >= 4"
                " AND term GLOB '[a-z]*' AND term NOT GLOB '*[0-9]*'"
                " ORDER BY abs(doc - ?) LIMIT 1", (share * count,)).fetchone()
    return words


def _deep_page(client, service):
    """The URL and number of a page deep in a service's records (at most DEEP_PAGES + 1),
    reached by following the Link headers."""
    url, page = f"/logs?service={service}&limit=100", 1
    while page <= DEEP_PAGES:
        link = client.get(url).headers.get("Link")
        if link is None:
            break
        url, page = link[1:link.index(">")], page + 1
    return url, page


def _time(client, url, repeats):
    """Milliseconds of each of ``repeats`` requests of ``url``, and the last body."""
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.get_data(as_text=True)}")
    return timings, response.get_json()


def insert_costs(bench):
    """Raw inserts with and without the full-text step and the audit chain: what each costs."""
    database = bench.workdir / "bare.db"
    storage.create_schema(database)
    count, size = bench.mode.raw_rows, storage.ROWS_PER_TRANSACTION
    chunks = [[bench.rows[(first + i) % len(bench.rows)] for i in range(min(size, count - first))]
              for first in range(0, count, size)]
    bare_chunks = [[(None, *row, b"") for row in chunk] for chunk in chunks]
    with closing(storage.connect(database)) as connection:
        started = time.perf_counter()
        for chunk in bare_chunks:
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(INSERT_SQL, chunk)
            connection.execute("COMMIT")
        bare = count / (time.perf_counter() - started)
    database = bench.workdir / "chained.db"
    storage.create_schema(database)
    linking = 0.0
    with closing(storage.connect(database)) as connection:
        started = time.perf_counter()
        for chunk in chunks:
            connection.execute("BEGIN IMMEDIATE")
            link_started = time.perf_counter()
            linked = chain.link_rows(connection, chunk)
            linking += time.perf_counter() - link_started
            connection.executemany(INSERT_SQL, linked)
            connection.execute("COMMIT")
        chained = count / (time.perf_counter() - started)
    full = bench.results["storage_limit"]["records_per_s"]
    chain_us = 1e6 * linking / count
    ingest_us = 1e6 / bench.results["ingest"]["runs"]["1000"]["records_per_s"]
    figures = {
        "bare_records_per_s": bare, "chained_records_per_s": chained, "full_records_per_s": full,
        "fts_share_of_insert_time": 1 - full / chained,
        "chain_us_per_record": chain_us,
        "chain_share_of_ingest_time": chain_us / ingest_us,
    }
    rows = [
        Row("raw inserts, no full-text index, no audit chain", f"{bare:,.0f} records/s"),
        Row("raw inserts with the audit chain", f"{chained:,.0f} records/s"),
        Row("raw inserts with both (the storage limit above)", f"{full:,.0f} records/s"),
        Row("share of insert time spent on the full-text index",
            f"{figures['fts_share_of_insert_time']:.0%}"),
        Row("audit chain: linking a record", f"{chain_us:,.2f} us"),
        target_row("audit chain: share of ingest time (1,000-record batches)",
                   figures["chain_share_of_ingest_time"], "{:.1%}", "< 10%",
                   lambda share: share < 0.10),
    ]
    return figures, rows
