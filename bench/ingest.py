"""Sections measured through a real server: the HTTP floor, ingest, growth and memory.

Each run starts its own server on its own database and drives it with ``Mode.clients``
load-generator processes.
"""

from config import Config

from . import loadgen, storage
from .report import Row, target_row
from .server import BenchServer

MINIMAL = {"Content-Type": "application/json", "Prefer": "return=minimal"}
FULL_ECHO = {"Content-Type": "application/json"}
BATCH_SIZES = (1, 100, 1_000)
BATCH = 1_000  # the batch size of the targets, the growth runs and the stage profile

# The targets on a 2-core machine.
MIN_RATIO = 0.5  # of the raw SQLite limit (batches) and of the bare Flask floor (single records)
P99_TARGETS_MS = {1: 25, BATCH: 300}
RATIO_FIGURES = {
    "batch_1000_vs_raw_sqlite": "1,000-record batches / raw SQLite limit",
    "single_record_vs_bare_flask": "1-record requests/s / bare Flask",
}
MAX_WORKER_RSS_MB = 150

MIB = 1024 * 1024


def http_floor(bench):
    """Section: a bare Flask endpoint under the same gunicorn settings, one record a request."""
    run = _drive(bench, "bare-flask", 1, bench.mode.duration, app="bench.bare_app:app")
    return run, _run_rows("bare Flask, 1 record/request", run)


def ingest(bench):
    """Section: the collector at 1, 100 and 1,000 records a request, and 1,000 answered in full."""
    runs = {
        str(size): _drive(bench, f"ingest-{size}", size, bench.mode.duration)
        for size in BATCH_SIZES
    }
    runs["1000-full-echo"] = _drive(
        bench, "ingest-full-echo", BATCH, bench.mode.echo_duration, headers=FULL_ECHO
    )
    ratios = {
        "batch_1000_vs_raw_sqlite": _ratio(
            runs[str(BATCH)]["records_per_s"], bench.results["storage_limit"]["records_per_s"]
        ),
        "single_record_vs_bare_flask": _ratio(
            runs["1"]["requests_per_s"], bench.results["http_floor"]["requests_per_s"]
        ),
    }
    rows = []
    for size in BATCH_SIZES:
        label = f"{size:,} record{'s' if size > 1 else ''}/request"
        rows += _run_rows(label, runs[str(size)], P99_TARGETS_MS.get(size))
    rows += _run_rows("1,000 records/request, full echo", runs["1000-full-echo"])
    rows += [_ratio_row(figure, ratios[key]) for key, figure in RATIO_FIGURES.items()]
    return {"runs": runs, "ratios": ratios}, rows


def growth(bench):
    """Section: 1,000-record batches again once the table holds ``Mode.growth_rows`` rows."""
    if not bench.mode.growth_rows:
        skipped = Row("ingest at 1M and 5M stored rows", "skipped (BENCH=full)")
        return {"skipped": "run with BENCH=full"}, [skipped]
    database = bench.workdir / "growth.db"
    storage.create_schema(database)
    fresh = bench.results["ingest"]["runs"][str(BATCH)]
    runs = {}
    rows = _growth_rows("fresh database (from ingest)", fresh, fresh)
    for size in bench.mode.growth_rows:
        fill_seconds = storage.fill(database, bench.rows, size)
        run = _drive(bench, f"growth-{size}", BATCH, bench.mode.duration, database=database)
        run["fill_seconds"] = fill_seconds
        runs[str(size)] = run
        rows += _growth_rows(f"{size:,} stored rows", run, fresh)
        rows.append(_non_2xx_row(f"{size:,} stored rows", run))
    return {"runs": runs}, rows


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


def _drive(bench, name, batch_size, duration, headers=MINIMAL, app=None, env=None, database=None):
    """Serve ``app`` (the collector when None) on ``database`` (else a fresh ``name``.db), load it.

    Returns the load's figures with the workers' peak RSS added.
    """
    database = database or bench.workdir / f"{name}.db"
    with BenchServer(bench.workdir, database, app=app, env=env) as server:
        figures = load_server(bench, server, bench.bodies(batch_size), batch_size, duration,
                              headers)
        peaks = server.workers_peak_rss_mb()
    figures["workers_peak_rss_mb"] = sorted(peaks.values())
    return figures


def load_server(bench, server, bodies, batch_size, duration, headers, path="/ingest",
                warmup=None):
    """Drive a running ``server`` with ``bodies`` of ``batch_size`` records; the figures.

    ``warmup`` seconds (the mode's when None) of load come before the measured window.
    """
    load = loadgen.Load(
        port=server.port,
        bodies=bodies,
        records_per_body=batch_size,
        headers=headers,
        clients=bench.mode.clients,
        warmup=bench.mode.warmup if warmup is None else warmup,
        duration=duration,
        path=path,
    )
    return loadgen.run(load, sample=server.workers_cpu_seconds).figures()


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
    if rate and fresh["records_per_s"]:
        rows.append(Row(
            f"{label}: wall time per record",
            f"{1e6 / rate:,.1f} us ({fresh['records_per_s'] / rate:.2f}x fresh)",
        ))
    return rows


def _non_2xx_row(label, run):
    return target_row(f"{label}: non-2xx answers", run["non_2xx"], "{:,}", "= 0", lambda n: n == 0)


def _ratio_row(figure, ratio):
    return target_row(figure, ratio, "{:.2f}", f">= {MIN_RATIO:.2f}", lambda r: r >= MIN_RATIO)


def _ratio(numerator, denominator):
    return numerator / denominator if denominator else None


def _ms(value):
    return "n/a" if value is None else f"{value:,.1f}"
