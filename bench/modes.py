"""How big a run is: the sizes and durations of each mode, chosen by the BENCH variable."""

import os
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mode:
    """Sizes and durations of one benchmark run."""

    name: str
    clients: int  # concurrent load-generator processes in every server run
    warmup: float  # seconds of load before the measured window
    duration: float  # seconds measured per ingest run
    default_duration: float  # seconds measured for 1,000-record batches with the default answer
    record_pool: int  # distinct generated records the request bodies are cut from
    raw_rows: int  # rows inserted for the raw SQLite limit
    stage_batches: int  # 1,000-record batches timed stage by stage
    growth_rows: tuple  # table sizes the ingest run is repeated at; empty: skipped
    memory_batch: int  # records per request in the memory run
    memory_duration: float
    query_rows: int  # records in the database the query figures are measured on
    query_repeats: int  # times each query is timed
    protocol_duration: float  # seconds measured per run of a protocol, or of native beside it
    protocol_rounds: int  # runs of each protocol, in turns with as many of native
    soak_duration: float = 0.0  # seconds of sustained mixed ingest; 0: skipped


DEFAULT = Mode(
    name="default",
    clients=8,
    warmup=3.0,
    duration=20.0,
    default_duration=8.0,
    record_pool=20_000,
    raw_rows=200_000,
    stage_batches=60,
    growth_rows=(),
    memory_batch=10_000,
    memory_duration=10.0,
    query_rows=1_000_000,
    query_repeats=25,
    protocol_duration=3.0,
    protocol_rounds=3,
)

MODES = {
    # Proves the harness end to end in a few seconds (tests/test_bench.py, CI).
    "smoke": replace(
        DEFAULT,
        name="smoke",
        clients=2,
        warmup=0.2,
        duration=0.8,
        default_duration=0.5,
        record_pool=2_000,
        raw_rows=5_000,
        stage_batches=6,
        growth_rows=(6_000,),
        memory_batch=1_000,
        memory_duration=0.5,
        query_rows=20_000,
        query_repeats=3,
        protocol_duration=0.8,
        protocol_rounds=1,
        soak_duration=3.0,
    ),
    "default": DEFAULT,
    "soak": replace(DEFAULT, name="soak", soak_duration=600.0),
    # Everything: the soak's 10 minutes and the growth to 10 M rows, in one run.
    "full": replace(DEFAULT, name="full", growth_rows=(10_000_000,), soak_duration=600.0),
}


@dataclass(frozen=True)
class Settings:
    """The benchmark's settings from the environment."""

    mode: Mode
    results_dir: Path  # where bench-<timestamp>.json is written
    profile: bool  # print a cProfile of the worker path


def settings_from_env():
    """Read BENCH (smoke|default|soak|full), BENCH_RESULTS (a directory) and BENCH_PROFILE=1."""
    name = os.environ.get("BENCH", "").strip().lower() or "default"
    if name not in MODES:
        raise ValueError(f"BENCH={name!r} must be one of {', '.join(MODES)}")
    results_dir = Path(os.environ.get("BENCH_RESULTS") or REPO / "bench" / "results")
    return Settings(MODES[name], results_dir, os.environ.get("BENCH_PROFILE") == "1")
