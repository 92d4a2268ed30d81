"""Sections measured through a real server: the HTTP floor, ingest, growth and memory.

Each run starts its own server on its own database and drives it with ``Mode.clients``
load-generator processes.
"""

import math
import time
from dataclasses import replace

import orjson

from config import Config

from . import loadgen, queries, storage
from .report import Row, target_row
from .server import BenchServer

MINIMAL = {"Content-Type": "application/json", "Prefer": "return=minimal"}
DEFAULT = {"Content-Type": "application/json"}  # what a shipper sends: no Prefer
BATCH_SIZES = (1, 100, 1_000)
BATCH = 1_000  # the batch size of the targets, the growth runs and the stage profile

# The targets on a 2-core machine: (figure, minimum ratio) by key; a ratio of the
# collector's figure to a reference measured in the same run.
RATIO_TARGETS = {
    "batch_1000_vs_raw_sqlite": ("1,000-record batches / raw SQLite limit", 0.5),
    "batch_1000_vs_reference": ("1,000-record batches / the straightforward Flask build", 1.2),
    "single_record_vs_bare_flask": ("1-record requests/s / bare Flask", 0.6),
}
# The default answer (what a shipper gets with no Prefer header) may cost at most this much
# more than the minimal one, records/s against records/s.
MAX_DEFAULT_COST = 1.15
P99_TARGETS_MS = {1: 25}  # at 8 closed-loop clients; batches' latency: see open_loop
MAX_WORKER_RSS_MB = 150

MIB = 1024 * 1024


def http_floor(bench):
    """Section: a bare Flask endpoint under the same gunicorn settings, one record a request."""
    run = _drive(bench, "bare-flask", 1, bench.mode.duration, app="bench.bare_app:app")
    return run, _run_rows("bare Flask, 1 record/request", run)


def ingest(bench):
    """Section: the collector at 1, 100 and 1,000 records a request, 1,000 with the default
    answer (no Prefer header), and the straightforward Flask build at 1,000 beside them."""
    runs = {
        str(size): _drive(bench, f"ingest-{size}", size, bench.mode.duration)
        for size in BATCH_SIZES
    }
    runs["1000-default"] = _drive(
        bench, "ingest-default", BATCH, bench.mode.default_duration, headers=DEFAULT
    )
    runs["reference-1000"] = _drive(bench, "reference", BATCH, bench.mode.duration,
                                    app="bench.reference_app:app")
    batches = runs[str(BATCH)]["records_per_s"]
    ratios = {
        "batch_1000_vs_raw_sqlite": _ratio(
            batches, bench.results["storage_limit"]["records_per_s"]),
        "batch_1000_vs_reference": _ratio(batches, runs["reference-1000"]["records_per_s"]),
        "single_record_vs_bare_flask": _ratio(
            runs["1"]["requests_per_s"], bench.results["http_floor"]["requests_per_s"]),
    }
    default_cost = _ratio(batches, runs["1000-default"]["records_per_s"])
    rows = []
    for size in BATCH_SIZES:
        label = f"{size:,} record{'s' if size > 1 else ''}/request"
        rows += _run_rows(label, runs[str(size)], P99_TARGETS_MS.get(size))
    rows += _run_rows("1,000 records/request, default answer (no Prefer)", runs["1000-default"])
    rows += _run_rows("straightforward Flask build, 1,000 records/request",
                      runs["reference-1000"])
    rows += [target_row(figure, ratios[key], "{:.2f}", f">= {minimum:.2f}",
                        lambda ratio, minimum=minimum: ratio >= minimum)
             for key, (figure, minimum) in RATIO_TARGETS.items()]
    rows.append(target_row("default answer's cost: minimal records/s / default records/s",
                           default_cost, "{:.2f}x", f"<= {MAX_DEFAULT_COST:.2f}x",
                           lambda cost: cost <= MAX_DEFAULT_COST))
    return {"runs": runs, "ratios": ratios, "default_cost": default_cost}, rows


# Latency under an offered load of half the measured maximum (open loop): p99 targets.
OPEN_LOOP_SHARE = 0.5
OPEN_LOOP_P99_MS = {1: 10, BATCH: 150}
INGEST_VIEW = "ingest.post_ingest"  # the endpoint label of /ingest in the app's histograms


def open_loop(bench):
    """Section: latency at a fixed offered load, half of what the closed loop reached.

    At 8 closed-loop clients a request's latency only mirrors throughput (it waits behind
    the 7 others); here requests leave on a schedule whatever the answers, and each is
    timed from when it was due. Where the slow ones spent their time is reported beside:
    the share of requests over the target at the client against the share whose view took
    that long (the app's own histogram), and how late the clients, on the same cores, woke.
    """
    runs, rows = {}, []
    for size in (1, BATCH):
        measured = bench.results["ingest"]["runs"][str(size)]["requests_per_s"]
        rate = OPEN_LOOP_SHARE * measured
        target = OPEN_LOOP_P99_MS[size]
        run = runs[str(size)] = _open_loop_run(bench, size, rate, target)
        label = f"{size:,} record{'s' if size > 1 else ''}/request at {rate:,.1f} requests/s"
        rows += [
            Row(f"{label}: served", f"{run['requests_per_s']:,.1f} requests/s"),
            Row(f"{label}: p50 latency", f"{_ms(run['p50_ms'])} ms"),
            target_row(f"{label}: p99 latency", run["p99_ms"], "{:,.1f} ms", f"< {target} ms",
                       lambda ms, target=target: ms < target),
            Row(f"{label}: share over {run['over_ms']:g} ms, client / view",
                f"{_percent(run['client_over_share'])} / {_percent(run['view_over_share'])}"),
            Row(f"{label}: clients' wake-up delay p99",
                f"{_ms(run['client_oversleep_p99_ms'])} ms"),
            _non_2xx_row(label, run),
        ]
    return {"runs": runs, "share_of_maximum": OPEN_LOOP_SHARE}, rows


def _open_loop_run(bench, size, rate, target_ms):
    """One open-loop run on a fresh database: its figures, with the shares of requests over
    the largest bound of the view's histogram within ``target_ms``, at the client and in
    the view (read from /metrics as the window opens and closes)."""
    scraped = []
    with BenchServer(bench.workdir, bench.workdir / f"open-loop-{size}.db") as server:
        def scrape(window_end):
            scraped.append(server.requests_handled_within(INGEST_VIEW))
            time.sleep(max(0.0, window_end - time.time()))
            scraped.append(server.requests_handled_within(INGEST_VIEW))

        result = _load(bench, server, bench.bodies(size), size, bench.mode.duration, MINIMAL,
                       rate=rate, during=scrape)
        peaks = server.workers_peak_rss_mb()
    opened, closed = scraped
    within = {bound: count - opened.get(bound, 0) for bound, count in closed.items()}
    bound = max(b for b in within if b * 1000 <= target_ms)
    handled = within[math.inf]
    return {
        **result.figures(),
        "workers_peak_rss_mb": sorted(peaks.values()),
        "over_ms": bound * 1000,
        "client_over_share": result.share_over_ms(bound * 1000),
        "view_over_share": (handled - within[bound]) / handled if handled else None,
    }


# A 1,000-record batch on a large table may cost at most this much more than on an empty one.
MAX_GROWTH = 1.25
FILL_WINDOW = 60.0  # seconds of each fill run between two looks at the table's size


def growth(bench):
    """Section: 1,000-record batches once the table holds ``Mode.growth_rows`` rows, reached
    by ingest through one server, against the same server's first run on the empty table;
    the workers' peak RSS and the targeted search figures at the largest size.

    The records carry no timestamp (stamped when received, as shippers send what just
    happened), so the table grows as it does in service.
    """
    if not bench.mode.growth_rows:
        skipped = Row("ingest at 10M stored rows", "skipped (BENCH=full)")
        return {"skipped": "run with BENCH=full"}, [skipped]
    database = bench.workdir / "growth.db"
    undated = [orjson.dumps([{k: v for k, v in record.items() if k != "timestamp"}
                             for record in orjson.loads(body)]) for body in bench.bodies(BATCH)]
    runs = {}
    with BenchServer(bench.workdir, database) as server:
        def measured(duration):
            # A warm-up of a second at least: the server's first batches warm its caches.
            return load_server(bench, server, undated, BATCH, duration, MINIMAL,
                               warmup=max(bench.mode.warmup, 1.0))

        fresh = runs["0"] = measured(bench.mode.duration)
        rows = _growth_rows("empty table", fresh, fresh)
        for size in bench.mode.growth_rows:
            started = time.monotonic()
            while (stored := storage.row_count(database)) < size:
                rate = max(fresh["records_per_s"], 1000)
                measured(min(FILL_WINDOW, (size - stored) / rate + 1))
            run = runs[str(size)] = measured(bench.mode.duration)
            run["fill_seconds"] = time.monotonic() - started
            label = f"{size:,} stored rows"
            rows += _growth_rows(label, run, fresh)
            rows.append(_non_2xx_row(label, run))
        peaks = server.workers_peak_rss_mb()
    largest = bench.mode.growth_rows[-1]
    rows.append(target_row(f"{largest:,} stored rows: worker peak RSS (max of {len(peaks)})",
                           max(peaks.values(), default=None), "{:.0f} MiB",
                           f"< {MAX_WORKER_RSS_MB} MiB", lambda mb: mb < MAX_WORKER_RSS_MB))
    searched, search_rows = queries.measure(database, bench.rows, storage.row_count(database),
                                            bench.mode.query_repeats, targeted_only=True)
    rows += [replace(row, figure=f"{largest:,} stored rows: {row.figure}")
             for row in search_rows]
    return {"runs": runs, "workers_peak_rss_mb": sorted(peaks.values()),
            "queries": searched}, rows


def memory(bench):
    """Section: the workers' peak RSS while ingesting ``Mode.memory_batch``-record batches."""
    size = bench.mode.memory_batch
    largest = max(len(body) for body in bench.bodies(size))
    env = {}
    if largest > Config().MAX_BODY_BYTES:
        env["MAX_BODY_BYTES"] = str(-(-largest // MIB) * MIB)  # rounded up to a whole MiB
    run = _drive(bench, "memory", size, bench.mode.memory_duration, env=env)
    run["body_bytes"] = largest
    run["env"] = env
    label = f"{size:,} records/request"
    peaks = run["workers_peak_rss_mb"]
    rows = [
        Row(f"{label}: body size", f"{largest / MIB:.2f} MiB"),
        target_row(
            f"{label}: worker peak RSS (max of {len(peaks)})",
            max(peaks, default=None),
            "{:.0f} MiB",
            f"< {MAX_WORKER_RSS_MB} MiB",
            lambda mb: mb < MAX_WORKER_RSS_MB,
        ),
        Row(f"{label}: each worker's peak RSS", " / ".join(f"{mb:.0f}" for mb in peaks) + " MiB"),
        Row(f"{label}: records/s", f"{run['records_per_s']:,.0f}"),
        _non_2xx_row(label, run),
    ]
    if env:
        rows.append(Row(f"{label}: MAX_BODY_BYTES raised for this run", env["MAX_BODY_BYTES"]))
    return run, rows


def _drive(bench, name, batch_size, duration, headers=MINIMAL, app=None, env=None, database=None,
           rate=None):
    """Serve ``app`` (the collector when None) on ``database`` (else a fresh ``name``.db), load it
    (in a closed loop, or open at ``rate`` requests/s).

    Returns the load's figures with the workers' peak RSS added.
    """
    database = database or bench.workdir / f"{name}.db"
    with BenchServer(bench.workdir, database, app=app, env=env) as server:
        figures = load_server(bench, server, bench.bodies(batch_size), batch_size, duration,
                              headers, rate=rate)
        peaks = server.workers_peak_rss_mb()
    figures["workers_peak_rss_mb"] = sorted(peaks.values())
    return figures


def load_server(bench, server, bodies, batch_size, duration, headers, path="/ingest",
                warmup=None, rate=None):
    """Drive a running ``server`` with ``bodies`` of ``batch_size`` records; the figures.

    ``warmup`` seconds (the mode's when None) of load come before the measured window; with
    ``rate``, requests leave on a schedule (see loadgen).
    """
    return _load(bench, server, bodies, batch_size, duration, headers, path, warmup,
                 rate).figures()


def _load(bench, server, bodies, batch_size, duration, headers, path="/ingest", warmup=None,
          rate=None, during=None):
    """load_server's run, as the LoadResult (``during`` as for loadgen.run_many)."""
    load = loadgen.Load(
        port=server.port,
        bodies=bodies,
        records_per_body=batch_size,
        headers=headers,
        clients=bench.mode.clients,
        warmup=bench.mode.warmup if warmup is None else warmup,
        duration=duration,
        path=path,
        rate=rate,
    )
    return loadgen.run(load, sample=server.workers_cpu_seconds, during=during)


def _run_rows(label, run, p99_target_ms=None):
    single = run["records_per_request"] == 1
    rows = [] if single else [Row(f"{label}: records/s", f"{run['records_per_s']:,.0f}")]
    rows += [
        Row(f"{label}: requests/s", f"{run['requests_per_s']:,.0f}"),
        Row(f"{label}: p50 latency", f"{_ms(run['p50_ms'])} ms"),
    ]
    p99 = f"{label}: p99 latency"
    if p99_target_ms is None:
        rows.append(Row(p99, f"{_ms(run['p99_ms'])} ms"))
    else:
        rows.append(target_row(
            p99, run["p99_ms"], "{:,.1f} ms", f"< {p99_target_ms} ms", lambda ms: ms < p99_target_ms
        ))
    rows.append(_non_2xx_row(label, run))
    if run["server_cpu_us_per_record"] is not None:
        cpu = f"{run['server_cpu_us_per_record']:,.1f} us"
        rows.append(Row(f"{label}: worker CPU per {'request' if single else 'record'}", cpu))
    return rows


def _growth_rows(label, run, fresh):
    rate = run["records_per_s"]
    rows = [Row(f"{label}: records/s", f"{rate:,.0f}")]
    if run is fresh or not rate:
        return rows
    cost = fresh["records_per_s"] / rate if fresh["records_per_s"] else None
    rows.append(target_row(f"{label}: cost of a batch against the empty table", cost,
                           "{:.2f}x", f"<= {MAX_GROWTH:.2f}x", lambda ratio: ratio <= MAX_GROWTH))
    return rows


def _non_2xx_row(label, run):
    return target_row(f"{label}: non-2xx answers", run["non_2xx"], "{:,}", "= 0", lambda n: n == 0)


def _ratio(numerator, denominator):
    return numerator / denominator if denominator else None


def _ms(value):
    return "n/a" if value is None else f"{value:,.1f}"


def _percent(share):
    return "n/a" if share is None else f"{share:.2%}"
