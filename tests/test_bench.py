"""The benchmark harness: its records, and a smoke run end to end (BENCH=smoke, a few seconds)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import records
from bench.storage import normalized_rows

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "loghub", [records.LOGHUB, Path("/nonexistent/loghub")], ids=["loghub", "synthetic"]
)
def test_generated_records_are_accepted_by_the_collector(loghub):
    corpus = records.load_corpus(loghub)
    pool = records.generate(500, corpus)

    assert len(normalized_rows(pool)) == 500  # raises when the collector rejects one
    assert len({record["service"] for record in pool}) >= 20
    assert all(5 <= len(record["attributes"]) <= 10 for record in pool)
    assert len(records.request_bodies(pool, 100)) == 5


def test_missing_loghub_falls_back_to_synthetic_text_and_says_so():
    corpus = records.load_corpus(Path("/nonexistent/loghub"))

    assert corpus.lines
    assert corpus.source.startswith("synthetic")


@pytest.mark.e2e
def test_smoke_run_reports_every_section(tmp_path):
    if not (Path(sys.executable).parent / "gunicorn").exists():
        pytest.skip(f"gunicorn is not installed beside {sys.executable}")
    if not Path("/proc/self/stat").exists():
        pytest.skip("worker CPU and peak RSS are read from /proc, which this system lacks")

    completed = subprocess.run(
        [sys.executable, "-m", "bench"],
        cwd=REPO,
        env={**os.environ, "BENCH": "smoke", "BENCH_RESULTS": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=400,  # on a loaded CI machine: one to three minutes
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    (path,) = tmp_path.glob("bench-*.json")
    assert str(path) in completed.stdout
    sections = json.loads(path.read_text())["sections"]
    runs = [
        sections["http_floor"],
        *sections["ingest"]["runs"].values(),
        *sections["open_loop"]["runs"].values(),
        *sections["growth"]["runs"].values(),
        sections["memory"],
        sections["soak"]["batches"],
        sections["soak"]["singles"],
    ]
    assert len(runs) == 13
    for run in runs:
        assert run["requests_per_s"] > 0
        assert run["non_2xx"] == 0, run["statuses"]
    assert sections["ingest"]["runs"]["1000"]["records_per_s"] > 0
    open_runs = sections["open_loop"]["runs"].values()
    for run in open_runs:  # where the slow requests spent it
        assert 0 <= run["view_over_share"] <= 1 and 0 <= run["client_over_share"] <= 1
    # None where a loaded machine made every request of a run leave late (no client slept).
    oversleeps = [run["client_oversleep_p99_ms"] for run in open_runs]
    assert any(ms is not None for ms in oversleeps)
    assert all(ms >= 0 for ms in oversleeps if ms is not None)
    assert sections["storage_limit"]["records_per_s"] > 0
    assert all(value > 0 for value in sections["stages"]["us_per_record"].values())
    assert max(sections["memory"]["workers_peak_rss_mb"]) > 0
    assert all(ratio > 0 for ratio in sections["ingest"]["ratios"].values())
    assert sections["ingest"]["default_cost"] > 0
    assert sections["stages"]["server_vs_in_process"] > 0
    soak = sections["soak"]
    assert soak["records"] > 0 and soak["wal_max_bytes"] > 0
    assert soak["wchar_per_record"] > 0 and len(soak["records_per_s_by_minute"]) == 6
    # A loaded machine may take the last bound of a 3-second soak late: five minutes or six.
    assert len(soak["by_minute"]) in (5, 6)
    for minute, rate in zip(soak["by_minute"], soak["records_per_s_by_minute"], strict=False):
        assert (minute["server_cpu_us"] > 0) == (rate > 0)
        assert 0 <= minute["lock_held"] <= 1.05 and minute["checkpointing_s"] >= 0
        assert minute["reference_cpu_ms"] >= 0  # 0: no timing fell in a 0.5-s minute
    assert any(minute["reference_cpu_ms"] > 0 for minute in soak["by_minute"])
    assert len(soak["single_requests_per_s_by_minute"]) == 6
    assert sections["insert_costs"]["bare_records_per_s"] > 0
    assert sections["insert_costs"]["chain_share_of_ingest_time"] > 0
    protocols = sections["protocols"]
    assert set(protocols["runs"]) == {"otlp protobuf", "otlp json", "loki protobuf",
                                      "loki json", "elasticsearch bulk", "splunk hec"}
    for name, rounds in protocols["runs"].items():
        # A smoke window is short: on a loaded machine a run may complete no request in it.
        for run in (run for turn in rounds for run in turn.values()):
            answered = sum(n for status, n in run["statuses"].items() if status.startswith("2"))
            assert answered > 0 and run["non_2xx"] == 0, (name, run["statuses"])
        assert protocols["ratios"][name] is not None
        assert all(figure > 0 for stages in protocols["in_process_us_per_record"][name].values()
                   for figure in stages.values())
    on_postgres = sections["postgres"]
    if "skipped" not in on_postgres:  # no server where the run was made: the table says so
        assert on_postgres["copy_limit"]["records_per_s"] > 0
        assert on_postgres["copy_limit"]["head_held_ms_median"] > 0
        assert on_postgres["one_instance_records_per_s"] > 0
        assert on_postgres["two_instances_records_per_s"] > 0
    queries = sections["queries"]["queries"]
    assert len(queries) == 10
    assert all(query["median_ms"] > 0 for query in queries.values())
    assert all(query["returned"] > 0 for label, query in queries.items()
               if not label.startswith("follow")), queries
