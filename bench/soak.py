"""Section: sustained ingest for minutes, as shippers send it: does it stay fast, and bounded?

Half the clients send 1,000-record batches, half single records, in a closed loop, for
``Mode.soak_duration`` seconds on one fresh database. The records carry no timestamp, so
they are stamped when received: shippers send what just happened (the pool's week-spread
timestamps would put every batch among earlier copies of itself in the time indexes, a worst
case no shipper produces). Sampled every half second: the write-ahead log's size and the
bytes the workers wrote (/proc/<pid>/io).
"""

import time

import orjson

from . import loadgen
from .ingest import BATCH, MINIMAL
from .report import Row, target_row
from .server import BenchServer

MIB = 1024 * 1024
SAMPLE_SECONDS = 0.5
MIN_LAST_OVER_FIRST = 0.9  # the last minute's records/s against the first minute's
MAX_WAL_MB = 64  # WAL_MAX_MB (48) and a group in flight per worker: the documented bound
MAX_BYTES_PER_RECORD = 4096


def soak(bench):
    """Section: ``Mode.soak_duration`` seconds of mixed 1- and 1,000-record batches."""
    seconds = bench.mode.soak_duration
    if not seconds:
        return {"skipped": "run with BENCH=soak or BENCH=full"}, [
            Row("sustained ingest for 10 minutes", "skipped (BENCH=soak or full)")]
    records = [{key: value for key, value in record.items() if key != "timestamp"}
               for record in bench.records]
    batches = [orjson.dumps(records[i:i + BATCH])
               for i in range(0, len(records) - BATCH + 1, BATCH)]
    singles = [orjson.dumps([record]) for record in records[:5000]]
    database = bench.workdir / "soak.db"
    wal = database.with_name(database.name + "-wal")
    largest, written = [0], {}
    with BenchServer(bench.workdir, database) as server:
        def load(bodies, size):
            return loadgen.Load(port=server.port, bodies=bodies, records_per_body=size,
                                headers=MINIMAL, clients=max(1, bench.mode.clients // 2),
                                warmup=bench.mode.warmup, duration=seconds)

        def watch(until):
            while time.time() < until:
                largest[0] = max(largest[0], wal.stat().st_size if wal.exists() else 0)
                for pid, io in server.workers_io().items():
                    written.setdefault(pid, [io, io])[1] = io
                time.sleep(SAMPLE_SECONDS)

        window_opens = time.time() + loadgen.SPAWN_MARGIN + bench.mode.warmup
        batched, single = loadgen.run_many([load(batches, BATCH), load(singles, 1)],
                                           sample=server.workers_cpu_seconds, during=watch)
    stored = batched.records + single.records
    bytes_written = sum(last[0] - first[0] for first, last in written.values())
    characters = sum(last[1] - first[1] for first, last in written.values())
    minutes = _per_minute(window_opens, seconds, [(batched, BATCH), (single, 1)])
    stability = minutes[-1] / minutes[0] if len(minutes) > 1 and minutes[0] else None
    figures = {
        "seconds": seconds, "records": stored, "records_per_s": stored / seconds,
        "records_per_s_by_minute": minutes, "last_over_first_minute": stability,
        "wal_max_bytes": largest[0], "write_bytes_per_record": bytes_written / stored,
        "wchar_per_record": characters / stored, "batches": batched.figures(),
        "singles": single.figures(),
        "server_cpu_us_per_record": batched.server_cpu_seconds / stored * 1e6,
    }
    rows = [
        Row(f"{_duration(seconds)}, {stored:,} records", f"{stored / seconds:,.0f} records/s"),
        Row("  records/s minute by minute", " ".join(f"{rate / 1000:.1f}k" for rate in minutes)),
        target_row("  last minute / first minute", stability, "{:.2f}",
                   f">= {MIN_LAST_OVER_FIRST}", lambda ratio: ratio >= MIN_LAST_OVER_FIRST),
        target_row("  write-ahead log at most", largest[0] / MIB, "{:.1f} MiB",
                   f"<= {MAX_WAL_MB} MiB", lambda mb: mb <= MAX_WAL_MB),
        target_row("  bytes written to disk per stored record", bytes_written / stored,
                   "{:,.0f} B", f"<= {MAX_BYTES_PER_RECORD} B",
                   lambda size: size <= MAX_BYTES_PER_RECORD),
        Row("  bytes handed to write() per stored record", f"{characters / stored:,.0f} B"),
        Row("  1,000-record batches: p99 latency", f"{batched.percentile_ms(0.99):,.1f} ms"),
        Row("  single records: p99 latency", f"{single.percentile_ms(0.99):,.1f} ms"),
        target_row("  non-2xx answers", batched.non_2xx + single.non_2xx, "{:,}", "= 0",
                   lambda n: n == 0),
    ]
    return figures, rows


def _duration(seconds):
    return f"{seconds / 60:.0f} minutes" if seconds >= 120 else f"{seconds:g} s"


def _per_minute(opens, seconds, results):
    """Records/s in each whole minute of the window (or each sixth of it, when shorter)."""
    width = 60.0 if seconds >= 120 else seconds / 6
    counts = [0] * int(seconds // width)
    for result, size in results:
        for moment in result.completions:
            slot = int((moment - opens) // width)
            if 0 <= slot < len(counts):
                counts[slot] += size
    return [count / width for count in counts]
