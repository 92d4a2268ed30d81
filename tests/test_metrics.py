"""GET /metrics: counters that move by what was ingested, in one process and across workers."""

import os
import signal
import time

import orjson
import pytest
from helpers import record, request
from prometheus_client.parser import text_string_to_metric_families
from server import Server


def samples(text):
    """Sample (name, sorted labels) -> value, from Prometheus' text format."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return samples(response.get_data(as_text=True))


def moved(before, after, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0)


def test_counters_move_by_what_was_ingested(client):
    before = scrape(client)
    client.post("/ingest", json=[record(), record()])
    client.post("/ingest", data=b'{"service":"a","severity":"INFO","message":"m"}\n',
                content_type="application/x-ndjson")
    client.post("/ingest", query_string={"mode": "partial"},
                json=[record(event_id="e1"), record(event_id="e1"), record(severity="?")])
    client.post("/ingest", json=[record(), record(severity="?")])  # atomic: nothing stored
    client.post("/ingest", data=b"not json", content_type="application/json")
    after = scrape(client)

    assert moved(before, after, "collector_records_ingested_total", format="json") == 3
    assert moved(before, after, "collector_records_ingested_total", format="ndjson") == 1
    assert moved(before, after, "collector_batches_ingested_total", format="json") == 2
    assert moved(before, after, "collector_duplicates_skipped_total") == 1
    assert moved(before, after, "collector_records_rejected_total", reason="validation_failed") == 3
    assert moved(before, after, "collector_batches_rejected_total", reason="validation_failed") == 1
    assert moved(before, after, "collector_batches_rejected_total", reason="malformed_json") == 1
    assert moved(before, after, "collector_batch_records_count") == 3
    assert moved(before, after, "collector_batch_records_sum") == 6
    assert moved(before, after, "collector_write_transaction_seconds_count") >= 3
    assert moved(before, after, "collector_request_duration_seconds_count",
                 endpoint="ingest.post_ingest", method="POST", status="2xx") == 3
    assert moved(before, after, "collector_request_duration_seconds_count",
                 endpoint="ingest.post_ingest", method="POST", status="4xx") == 2
    assert after[("collector_database_size_bytes", ())] > 0
    assert 0 <= after[("collector_newest_record_age_seconds", ())] < 60


def test_overload_answers_are_counted(app, client, monkeypatch):
    from collector.errors import StorageBusy

    def busy(batch):
        raise StorageBusy()

    monkeypatch.setattr(app.extensions["writer"], "ingest", busy)
    before = scrape(client)
    assert client.post("/ingest", json=[record()]).status_code == 503
    after = scrape(client)
    assert moved(before, after, "collector_overloaded_responses_total", status="503") == 1
    assert moved(before, after, "collector_batches_rejected_total", reason="storage_busy") == 1


def test_unrouted_requests_share_one_label(client):
    before = scrape(client)
    client.get("/no/such/path/1")
    client.get("/no/such/path/2")
    after = scrape(client)
    assert moved(before, after, "collector_request_duration_seconds_count",
                 endpoint="unmatched", method="GET", status="4xx") == 2


def test_an_empty_database_has_no_record_age(client):
    assert ("collector_newest_record_age_seconds", ()) not in scrape(client)


def post_records(port, requests):
    total = 0
    for i in range(requests):
        records = [record(message=f"m {i} {j}") for j in range(i % 7 + 1)]
        status, _ = request(port, "POST", "/ingest", orjson.dumps(records),
                         {"Content-Type": "application/json", "Prefer": "return=minimal"})
        assert status == 201
        total += len(records)
    return total


def scraped_total(port):
    status, body = request(port, "GET", "/metrics")
    assert status == 200
    return samples(body.decode()).get(
        ("collector_records_ingested_total", (("format", "json"),)), 0
    )


@pytest.mark.e2e
def test_every_worker_answers_the_total_of_all_workers(tmp_path):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left by an earlier run")
    with Server(tmp_path, tmp_path / "collector.db",
                env={"WORKERS": "2", "METRICS_DIR": str(metrics_dir)}) as server:
        assert not (metrics_dir / "counter_1.db").exists()
        total = post_records(server.port, 60)
        # New connections land on either worker: every scrape must say the same.
        assert {scraped_total(server.port) for _ in range(20)} == {total}

        # A worker that dies and is replaced takes none of its counts along.
        victim = server.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while victim in server.worker_pids() or len(server.worker_pids()) < 2:
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.1)
        total += post_records(server.port, 30)
        assert {scraped_total(server.port) for _ in range(20)} == {total}
