"""One benchmark run: every section in order, then the table and the JSON file.

``SECTIONS`` is the registry: (key, title, function), run in order. A section function takes
the Bench and returns (figures, rows): JSON-ready figures, stored under its key, and the
table's rows. Later sections read earlier figures from ``bench.results`` (the ingest ratios
need the storage limit and the HTTP floor). The query figures of the search issue join as
one more entry.
"""

import datetime as dt
import os
import platform
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from config import Config, ServerConfig

from . import ingest, patterns, postgres, protocols, queries, records, soak, stages, storage
from .modes import Mode, settings_from_env
from .report import format_table, targets, write_json

SECTIONS = (
    (
        "storage_limit",
        "Storage limit: plain sqlite3, the collector's schema, statements, pragmas",
        storage.storage_limit,
    ),
    (
        "http_floor",
        "HTTP floor: a bare Flask endpoint under the same gunicorn settings",
        ingest.http_floor,
    ),
    (
        "ingest",
        "Ingest through gunicorn (Prefer: return=minimal unless 'default answer')",
        ingest.ingest,
    ),
    (
        "open_loop",
        "Latency at half the maximum, open loop (requests leave on a schedule)",
        ingest.open_loop,
    ),
    (
        "stages",
        "Where the time goes: one worker, 1,000-record batches, in-process",
        stages.stage_profile,
    ),
    ("growth", "Growth: 1,000-record batches once the table is large", ingest.growth),
    ("memory", "Memory: worker peak RSS with the largest batches", ingest.memory),
    ("insert_costs", "What the full-text index and the audit chain cost (raw inserts)",
     queries.insert_costs),
    ("queries", "Search: median in-process latency of the main query shapes",
     queries.query_figures),
    ("protocols", "Shippers' protocols: 1,000-record batches beside the native format",
     protocols.protocols),
    ("patterns", "Patterns: accuracy on LogHub beside Drain's, the miner, its cost to ingest",
     patterns.patterns_section),
    ("soak", "Sustained ingest: mixed 1- and 1,000-record batches for minutes", soak.soak),
    ("postgres", "PostgreSQL: one and two instances beside binary COPY's limit, the chain lock",
     postgres.postgres_section),
)


@dataclass
class Bench:
    """What every section gets: the mode, a scratch directory, the records, earlier figures."""

    mode: Mode
    workdir: Path
    records: list  # generated records, the pool request bodies are cut from
    rows: list  # the same records as the collector's row tuples
    profile: bool
    results: dict = field(default_factory=dict)
    _bodies: dict = field(default_factory=dict)

    def bodies(self, batch_size):
        """The request bodies of ``batch_size`` records, serialized once."""
        if batch_size not in self._bodies:
            self._bodies[batch_size] = records.request_bodies(self.records, batch_size)
        return self._bodies[batch_size]


def main():
    """Run the benchmark in the mode BENCH names; print the table and write the JSON file."""
    try:
        settings = settings_from_env()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    mode = settings.mode
    started = time.time()
    corpus = records.load_corpus()
    pool = records.generate(max(mode.record_pool, mode.memory_batch), corpus)
    environment = _environment(mode, corpus)
    print(_header(environment), flush=True)

    table = []
    with tempfile.TemporaryDirectory(prefix="collector-bench-") as workdir:
        bench = Bench(mode, Path(workdir), pool, storage.normalized_rows(pool), settings.profile)
        for key, title, section in SECTIONS:
            section_started = time.time()
            print(f"-- {title} ...", file=sys.stderr, flush=True)
            bench.results[key], rows = section(bench)
            print(f"   done in {time.time() - section_started:.1f} s", file=sys.stderr, flush=True)
            table.append((title, rows))

    wall = time.time() - started
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = settings.results_dir / f"bench-{stamp}.json"
    write_json(path, {
        "started_at": dt.datetime.fromtimestamp(started, dt.UTC).isoformat(),
        "wall_seconds": wall,
        "environment": environment,
        "sections": bench.results,
        "targets": targets(table),
    })
    print()
    print(format_table(table))
    print(f"\nwall time {wall:.0f} s; figures written to {path}")
    return 0


def _environment(mode, corpus):
    server = ServerConfig()
    return {
        "mode": mode.name,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "gunicorn_workers": server.WORKERS,
        "gunicorn_threads": server.THREADS,
        "sqlite_synchronous": Config().SQLITE_SYNCHRONOUS,
        "clients": mode.clients,
        "warmup_seconds": mode.warmup,
        "window_seconds": mode.duration,
        "records_source": corpus.source,
    }


def _header(environment):
    e = environment
    return "\n".join((
        f"collector benchmark, BENCH={e['mode']}: {e['cpus']} CPUs, Python {e['python']},"
        f" SQLite {e['sqlite']}, synchronous={e['sqlite_synchronous']}",
        f"server: gunicorn -c gunicorn.conf.py, {e['gunicorn_workers']} gthread workers"
        f" x {e['gunicorn_threads']} threads, on 127.0.0.1, access log off",
        f"load: {e['clients']} client processes on this machine (they share its CPUs with"
        f" the server), each run {e['warmup_seconds']:g} s warm-up"
        f" + {e['window_seconds']:g} s measured",
        f"records: {e['records_source']}",
    ))
