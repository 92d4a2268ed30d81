"""Where a worker's time goes for a 1,000-record batch: the write path's stages, in-process.

The stages are the collector's own functions, called one after another as the ingest view
calls them, on an app from create_app over a fresh database. The whole request through
Flask's test client shows what routing, request handling and teardown add around them.
"""

import cProfile
import io
import os
import pstats
import statistics
import time

from flask import jsonify

from collector import create_app
from collector.ingest.protocols.native import decode_records
from collector.ingest.writer import Batch, normalize, validate
from collector.times import now_micros

from .ingest import BATCH, MINIMAL
from .report import Row, target_row

# Through gunicorn, a record may cost the server at most this much CPU more than in-process.
MAX_SERVER_OVERHEAD = 1.3

STAGES = ("parse", "validate", "normalize", "insert", "respond (return=minimal)")
FULL_RESPONSE = "respond in full (Prefer: return=representation)"
WHOLE_REQUEST = "whole request via Flask test client (return=minimal)"
WHOLE_REQUEST_CPU = "  the same, in CPU time (the process's, every thread)"
PROFILE_LINES = 15


def stage_profile(bench):
    """Section: microseconds per record of each stage, the mean over ``Mode.stage_batches``."""
    app = create_app({"DATABASE_URL": f"sqlite:///{bench.workdir / 'stages.db'}"})
    bodies = bench.bodies(BATCH)
    batches = [bodies[i % len(bodies)] for i in range(bench.mode.stage_batches)]
    timings = {name: [] for name in (*STAGES, FULL_RESPONSE, WHOLE_REQUEST, WHOLE_REQUEST_CPU)}
    client = app.test_client()
    store = app.extensions["store"]
    try:
        with store.session():
            store.migrate()
        # Alternate the two measurements: inserts slow down as the table grows, and both
        # should see the same table sizes.
        for body in batches:
            with app.app_context():
                for name, seconds in _time_stages(app, body).items():
                    timings[name].append(seconds)
            wall, cpu = _time_request(client, body)
            timings[WHOLE_REQUEST].append(wall)
            timings[WHOLE_REQUEST_CPU].append(cpu)
        if bench.profile:
            print(_cprofile(client, batches), flush=True)
    finally:
        store.close()

    # Means, not medians: a batch that triggers a WAL checkpoint pays for the batches before
    # it, and only means add up, so the stages can be set against the whole request.
    per_record = {name: statistics.fmean(values) / BATCH * 1e6 for name, values in timings.items()}
    stage_sum = sum(per_record[name] for name in STAGES)
    figures = {
        "batch_records": BATCH,
        "batches": len(batches),
        "us_per_record": per_record,
        "stages_total_us_per_record": stage_sum,
    }
    rows = [Row(name, f"{per_record[name]:,.2f} us/record") for name in STAGES]
    rows += [
        Row("sum of the stages", f"{stage_sum:,.2f} us/record"),
        Row(WHOLE_REQUEST, f"{per_record[WHOLE_REQUEST]:,.2f} us/record"),
        Row("  around the stages (routing, request, teardown)",
            f"{per_record[WHOLE_REQUEST] - stage_sum:,.2f} us/record"),
        Row(WHOLE_REQUEST_CPU, f"{per_record[WHOLE_REQUEST_CPU]:,.2f} us/record"),
        Row(FULL_RESPONSE, f"{per_record[FULL_RESPONSE]:,.2f} us/record"),
    ]
    # The same request through gunicorn, measured by the ingest section: what the server
    # pays per record beyond the in-process cost, and how busy it keeps the cores. CPU time
    # against CPU time, as the server's figure is CPU time (in-process, the checkpointer
    # thread's CPU counts too).
    served = bench.results["ingest"]["runs"][str(BATCH)]
    server_us = served["server_cpu_us_per_record"]
    overhead = server_us / per_record[WHOLE_REQUEST_CPU] if server_us else None
    utilization = (served["server_cpu_us_per_record"] * served["records"] / 1e6
                   / served["window_seconds"] / os.cpu_count()) if server_us else None
    figures["server_vs_in_process"] = overhead
    figures["server_utilization"] = utilization
    rows += [
        Row("through gunicorn: worker CPU per record (ingest section)",
            "n/a" if server_us is None else f"{server_us:,.2f} us/record"),
        target_row("  server CPU per record / in-process cost", overhead, "{:.2f}x",
                   f"<= {MAX_SERVER_OVERHEAD:.2f}x", lambda ratio: ratio <= MAX_SERVER_OVERHEAD),
        Row("  workers' use of the cores (CPU seconds / window / cores)",
            "n/a" if utilization is None else f"{utilization:.0%}"),
    ]
    return figures, rows


def _time_stages(app, body):
    """Seconds each stage took for ``body``, run as the ingest view runs them."""
    clock = time.perf_counter
    started = clock()
    records = decode_records(body, "application/json", None, app.config["MAX_BODY_BYTES"])
    parsed = clock()
    valid, errors = validate(records, app.extensions["record_schema"])
    validated = clock()
    received_at = now_micros()
    rows = [normalize(record, received_at) for record in valid]
    normalized = clock()
    batch = Batch(None, rows=rows, rejected=errors)
    app.extensions["writer"].store_group([batch])
    result = batch.result
    inserted = clock()
    summary = {"accepted": len(result.rows), "first_id": result.first_id, "last_id": result.last_id}
    jsonify(summary)
    responded = clock()
    jsonify({**summary, "items": result.documents()})
    responded_in_full = clock()
    return {
        STAGES[0]: parsed - started,
        STAGES[1]: validated - parsed,
        STAGES[2]: normalized - validated,
        STAGES[3]: inserted - normalized,
        STAGES[4]: responded - inserted,
        FULL_RESPONSE: responded_in_full - responded,
    }


def _time_request(client, body):
    """Seconds the whole ingest request took through the test client: (wall, CPU)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    response = client.post("/ingest", data=body, headers=MINIMAL)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if response.status_code != 201:
        answer = response.get_data(as_text=True)[:500]
        raise RuntimeError(f"the ingest view answered {response.status_code}: {answer}")
    return seconds, cpu


def _cprofile(client, batches):
    """A cProfile of the batches through the test client: the top functions by own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for body in batches:
        client.post("/ingest", data=body, headers=MINIMAL)
    profiler.disable()
    out = io.StringIO()
    out.write(f"cProfile of {len(batches)} x {BATCH:,}-record requests (BENCH_PROFILE=1):\n")
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(PROFILE_LINES)
    return out.getvalue()
