"""Section: sustained ingest for minutes, as shippers send it: does it stay fast, and bounded?

Half the clients send 1,000-record batches, half single records, in a closed loop, for
``Mode.soak_duration`` seconds on one fresh database. The records carry no timestamp, so
they are stamped when received: shippers send what just happened (the pool's week-spread
timestamps would put every batch among earlier copies of itself in the time indexes, a worst
case no shipper produces). Sampled every half second: the write-ahead log's size and the
bytes the workers wrote (/proc/<pid>/io); at each minute's bounds, what the minute's rate
depends on: the workers' CPU, the writers' lock held and the checkpoints' seconds (the app's
histograms), the CPU time of a fixed piece of work done here, the machine's idle, I/O-waiting
and stolen CPU (/proc/stat), so that a slower minute shows whether the server or the machine
slowed.
"""

import contextlib
import sqlite3
import time
from pathlib import Path

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
HELD = "collector_write_transaction_seconds"  # the writers' lock held, to each commit
CHECKPOINTING = "collector_wal_checkpoints_seconds"
REFERENCES_A_MINUTE = 12  # timings of the fixed piece of work, their median the minute's


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
    width = _minute(seconds)
    largest, written, bounds, references = [0], {}, [], []
    with BenchServer(bench.workdir, database) as server:
        def load(bodies, size):
            return loadgen.Load(port=server.port, bodies=bodies, records_per_body=size,
                                headers=MINIMAL, clients=max(1, bench.mode.clients // 2),
                                warmup=bench.mode.warmup, duration=seconds)

        def at_bound():
            bounds.append((time.time(), server.workers_cpu_seconds(),
                           server.seconds_spent_in((HELD, CHECKPOINTING)), _machine_cpu()))

        def watch(until):
            next_bound = next_reference = time.time()
            while time.time() < until:
                if time.time() >= next_bound:
                    at_bound()
                    next_bound += width
                if time.time() >= next_reference:
                    references.append((time.time(), _reference_cpu(batches[0])))
                    next_reference += width / REFERENCES_A_MINUTE
                largest[0] = max(largest[0], wal.stat().st_size if wal.exists() else 0)
                for pid, io in server.workers_io().items():
                    written.setdefault(pid, [io, io])[1] = io
                time.sleep(max(0.0, min(SAMPLE_SECONDS, next_bound - time.time(),
                                        until - time.time())))
            at_bound()

        window_opens = time.time() + loadgen.SPAWN_MARGIN + bench.mode.warmup
        batched, single = loadgen.run_many([load(batches, BATCH), load(singles, 1)],
                                           sample=server.workers_cpu_seconds, during=watch)
    stored = batched.records + single.records
    bytes_written = sum(last[0] - first[0] for first, last in written.values())
    characters = sum(last[1] - first[1] for first, last in written.values())
    minutes = _per_minute(window_opens, seconds, width, [(batched, BATCH), (single, 1)])
    stability = minutes[-1] / minutes[0] if len(minutes) > 1 and minutes[0] else None
    inside = _minute_by_minute(bounds, references, minutes, width)
    singles_by_minute = _per_minute(window_opens, seconds, width, [(single, 1)])
    figures = {
        "seconds": seconds, "records": stored, "records_per_s": stored / seconds,
        "records_per_s_by_minute": minutes, "last_over_first_minute": stability,
        "by_minute": inside, "single_requests_per_s_by_minute": singles_by_minute,
        "wal_max_bytes": largest[0], "write_bytes_per_record": bytes_written / stored,
        "wchar_per_record": characters / stored, "batches": batched.figures(),
        "singles": single.figures(),
        "server_cpu_us_per_record": batched.server_cpu_seconds / stored * 1e6,
    }

    def by_minute(key, template):
        return " ".join(template.format(minute[key]) for minute in inside)

    rows = [
        Row(f"{_duration(seconds)}, {stored:,} records", f"{stored / seconds:,.0f} records/s"),
        Row("  records/s minute by minute", " ".join(f"{rate / 1000:.1f}k" for rate in minutes)),
        target_row("  last minute / first minute", stability, "{:.2f}",
                   f">= {MIN_LAST_OVER_FIRST}", lambda ratio: ratio >= MIN_LAST_OVER_FIRST),
        Row("  the same minutes: single records' requests/s",
            " ".join(f"{rate:,.0f}" for rate in singles_by_minute)),
        Row("  server CPU per record", by_minute("server_cpu_us", "{:.0f}µs")),
        Row("  writers' lock held, share of the minute", by_minute("lock_held", "{:.0%}")),
        Row("  checkpointing, seconds in the minute", by_minute("checkpointing_s", "{:.1f}")),
        Row("  the same work in-process (machine's speed)", by_minute("reference_cpu_ms",
                                                                      "{:.1f}ms")),
        Row("  machine's CPU idle / waiting for I/O / stolen",
            by_minute("idle_iowait_stolen", "{}")),
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


def _minute(seconds):
    """The width of the soak's "minutes": 60 s, or a sixth of a shorter window."""
    return 60.0 if seconds >= 120 else seconds / 6


def _per_minute(opens, seconds, width, results):
    """Records/s in each whole minute of the window."""
    counts = [0] * int(seconds // width)
    for result, size in results:
        for moment in result.completions:
            slot = int((moment - opens) // width)
            if 0 <= slot < len(counts):
                counts[slot] += size
    return [count / width for count in counts]


def _minute_by_minute(bounds, references, minutes, width):
    """What each minute between two of the ``bounds`` spent: the workers' CPU per record, the
    median CPU time of the ``references`` (moment, seconds) timed in it, the share of it the
    writers' lock was held, its checkpoints' seconds, the machine's idle, I/O-waiting and
    stolen shares."""
    spent = []
    for (opened, cpu, timed, machine), (closed, cpu_then, timed_then, machine_then), rate in zip(
            bounds, bounds[1:], minutes, strict=False):
        elapsed = closed - opened
        timings = sorted(taken for moment, taken in references if opened <= moment < closed)
        reference = timings[len(timings) // 2] if timings else 0.0
        ticks = [then - now for now, then in zip(machine, machine_then, strict=True)]
        total = ticks[0] or 1
        spent.append({
            "server_cpu_us": (cpu_then - cpu) / (rate * width) * 1e6 if rate else 0.0,
            "reference_cpu_ms": reference * 1e3,
            "lock_held": (timed_then[HELD] - timed[HELD]) / elapsed,
            "checkpointing_s": timed_then[CHECKPOINTING] - timed[CHECKPOINTING],
            "idle_iowait_stolen": "/".join(f"{share / total:.0%}" for share in ticks[1:]),
        })
    return spent


def _reference_cpu(body, repeats=5):
    """CPU seconds of a fixed piece of the server's kind of work (decode a batch, index its
    messages in an in-memory FTS5 table), the least of ``repeats``: how fast the machine's
    cores run at that moment, whatever else they run (a busy neighbour slows the same work)."""
    messages = [(record["message"],) for record in orjson.loads(body)]
    taken = []
    for _ in range(repeats):
        started = time.thread_time()
        orjson.loads(body)
        with contextlib.closing(sqlite3.connect(":memory:")) as connection:
            connection.execute("CREATE VIRTUAL TABLE words USING fts5(message)")
            connection.executemany("INSERT INTO words VALUES (?)", messages)
        taken.append(time.thread_time() - started)
    return min(taken)


def _machine_cpu():
    """The machine's CPU time so far, in ticks: (all, idle, waiting for I/O, stolen)."""
    fields = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]), fields[3], fields[4], fields[7])  # user ... steal
