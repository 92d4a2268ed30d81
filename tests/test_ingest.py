"""POST /ingest: formats, encodings, atomic and partial batches, and every error answer."""

import contextlib
import gzip
import logging
import sqlite3
import threading
import time
import zlib

import orjson
import pytest
from helpers import record

from collector.errors import ValidationFailed
from collector.ingest import writer as write_path
from collector.storage.postgres.writes import PostgresWriteTransaction
from collector.storage.sqlite import db as sqlite_database
from collector.storage.sqlite.writes import SqliteWriteTransaction
from collector.times import now_micros

ECHO = {"Prefer": "return=representation"}


def post(client, body, content_type="application/json", path="/ingest", **headers):
    if not isinstance(body, bytes):
        body = orjson.dumps(body)
    return client.post(path, data=body, headers={"Content-Type": content_type, **headers})


@pytest.fixture
def writer(app):
    """The app's write queue."""
    return app.extensions["writer"]


def break_inserts(monkeypatch, broken):
    """Make the write transaction (of either backend) insert with ``broken(connection, rows)``."""
    for transaction_class in (SqliteWriteTransaction, PostgresWriteTransaction):
        monkeypatch.setattr(transaction_class, "insert",
                            lambda transaction, rows: broken(transaction.connection, rows))


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == code
    assert body["message"]
    return body


# Accepted batches


def test_batch_is_stored_and_echoed_normalized(client):
    response = post(
        client,
        [
            record(severity="warning", timestamp="2025-06-01T12:00:00+02:00", host="web-1"),
            record(message="second", attributes={"order": {"id": 7}}),
        ],
        **ECHO,
    )
    assert response.status_code == 201
    assert response.headers["Preference-Applied"] == "return=representation"
    body = response.get_json()
    assert body["accepted"] == 2
    first, second = body["items"]
    assert (body["first_id"], body["last_id"]) == (first["id"], second["id"])
    assert second["id"] == first["id"] + 1
    assert first["severity"] == "WARN"
    assert first["timestamp"] == "2025-06-01T10:00:00.000000Z"
    assert first["host"] == "web-1"
    assert first["attributes"] == {}
    assert second["attributes"] == {"order": {"id": 7}}
    # No timestamp given: it is the time the server received the batch.
    assert second["timestamp"] == second["received_at"] == first["received_at"]
    assert first["received_at"].endswith("Z")


def test_stored_record_reads_back_as_echoed(client):
    created = post(client, [record(trace_id="ab" * 16, span_id="cd" * 8)],
                   **ECHO).get_json()["items"][0]
    assert client.get(f"/logs/{created['id']}").get_json() == created


def test_single_object_is_a_batch_of_one(client, stored_count):
    response = post(client, record())
    assert response.status_code == 201
    assert response.get_json()["accepted"] == 1
    assert stored_count() == 1


def test_ids_increase_across_batches(client):
    first = post(client, [record()] * 3).get_json()
    second = post(client, [record()] * 2).get_json()
    assert second["first_id"] == first["last_id"] + 1


def test_the_default_answer_is_counts_and_ids_without_the_records(client, stored_count):
    response = post(client, [record()] * 3)
    assert response.status_code == 201
    assert "Preference-Applied" not in response.headers
    body = response.get_json()
    assert body == {"accepted": 3, "duplicates": 0, "first_id": body["first_id"],
                    "last_id": body["first_id"] + 2}


def test_the_last_return_preference_wins(client):
    response = post(client, [record()], Prefer="return=minimal, return=representation")
    assert response.headers["Preference-Applied"] == "return=representation"
    assert len(response.get_json()["items"]) == 1


def test_prefer_return_minimal_answers_counts_and_ids_only(client, stored_count):
    response = post(client, [record()] * 5, Prefer="return=minimal")
    assert response.status_code == 201
    assert response.headers["Preference-Applied"] == "return=minimal"
    body = response.get_json()
    assert body == {"accepted": 5, "duplicates": 0, "first_id": body["first_id"],
                    "last_id": body["first_id"] + 4}
    assert stored_count() == 5


def test_content_type_parameters_are_accepted(client):
    response = post(client, [record()], content_type="application/json; charset=utf-8")
    assert response.status_code == 201


# All or nothing


def test_one_bad_record_at_the_end_of_1000_stores_nothing(client, stored_count):
    batch = [record(message=f"event {i}") for i in range(999)] + [record(severity="LOUD")]
    body = assert_error(post(client, batch), 422, "validation_failed")
    assert list(body["errors"]) == ["999"]
    assert "severity" in body["errors"]["999"]
    assert stored_count() == 0


def test_error_body_names_every_bad_record_and_field(client, stored_count):
    batch = [record(), record(service="", span_id="x"), "text", record(colour="red")]
    body = assert_error(post(client, batch), 422, "validation_failed")
    assert body["errors"] == {
        "1": {
            "service": ["Length must be between 1 and 128 characters."],
            "span_id": ["Must be 16 hexadecimal digits."],
        },
        "2": {"_schema": ["A log record must be a JSON object."]},
        "3": {"colour": ["Unknown field."]},
    }
    assert "3 of 4" in body["message"]
    assert stored_count() == 0


# Partial mode


def test_partial_mode_stores_the_valid_records_and_lists_the_rejected(client, stored_count):
    batch = [record(message="a"), record(severity="LOUD"), record(message="c"), 42]
    response = post(client, batch, path="/ingest?mode=partial", **ECHO)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert set(body["errors"]) == {"1", "3"}
    assert [item["message"] for item in body["items"]] == ["a", "c"]
    assert stored_count() == 2


def test_partial_mode_with_minimal_return(client):
    response = post(
        client, [record(), record(message="")], path="/ingest?mode=partial", Prefer="return=minimal"
    )
    body = response.get_json()
    assert response.status_code == 200
    assert "items" not in body
    assert (body["accepted"], body["rejected"], body["last_id"]) == (1, 1, body["first_id"])


def test_partial_mode_with_nothing_valid_stores_nothing(client, stored_count):
    body = post(client, [record(message="")], path="/ingest?mode=partial").get_json()
    assert (body["accepted"], body["rejected"], body["first_id"]) == (0, 1, None)
    assert stored_count() == 0


def test_explicit_atomic_mode(client):
    assert post(client, [record()], path="/ingest?mode=atomic").status_code == 201


@pytest.mark.parametrize(
    "path, code",
    [("/ingest?mode=best-effort", "invalid_parameter"), ("/ingest?batch=1", "unknown_parameter")],
)
def test_bad_query_parameter(client, stored_count, path, code):
    body = assert_error(post(client, [record()], path=path), 400, code)
    assert body["parameter"] in path
    assert stored_count() == 0


# NDJSON


def ndjson(*records):
    return b"\n".join(orjson.dumps(r) for r in records) + b"\n"


@pytest.mark.parametrize(
    "content_type", ["application/x-ndjson", "application/ndjson", "application/jsonl"]
)
def test_ndjson_batch(client, stored_count, content_type):
    body = ndjson(record(message="one"), record(message="two"))
    response = post(client, body.replace(b"\n", b"\n\n", 1), content_type=content_type, **ECHO)
    assert response.status_code == 201
    assert [item["message"] for item in response.get_json()["items"]] == ["one", "two"]
    assert stored_count() == 2


def test_ndjson_malformed_line_is_named(client, stored_count):
    body = ndjson(record()) + b'{"service": "x",\n' + ndjson(record())
    error = assert_error(post(client, body, "application/x-ndjson"), 400, "malformed_json")
    assert error["line"] == 2
    assert "line 2" in error["message"]
    assert stored_count() == 0


def test_ndjson_errors_are_indexed_by_record(client):
    body = ndjson(record(), record(severity="nope"))
    error = assert_error(post(client, body, "application/x-ndjson"), 422, "validation_failed")
    assert list(error["errors"]) == ["1"]


# Content-Encoding


def raw_deflate(data):
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    "encoding, compress",
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", raw_deflate),
        ("identity", lambda data: data),
    ],
)
def test_compressed_bodies(client, stored_count, encoding, compress):
    body = compress(orjson.dumps([record(), record()]))
    response = post(client, body, **{"Content-Encoding": encoding})
    assert response.status_code == 201
    assert stored_count() == 2


def test_gzip_ndjson_with_several_members(client, stored_count):
    body = gzip.compress(ndjson(record())) + gzip.compress(ndjson(record(), record()))
    response = post(client, body, "application/x-ndjson", **{"Content-Encoding": "gzip"})
    assert response.status_code == 201
    assert stored_count() == 3


@pytest.mark.parametrize(
    "body",
    [b"definitely not gzip", gzip.compress(orjson.dumps([record()]))[:-12]],
    ids=["garbage", "truncated"],
)
def test_bad_gzip(client, stored_count, body):
    assert_error(post(client, body, **{"Content-Encoding": "gzip"}), 400, "bad_encoding")
    assert stored_count() == 0


def test_gzip_bomb_is_refused_without_inflating_it(make_app, stored_count):
    client = make_app(MAX_BODY_BYTES=64 * 1024).test_client()
    bomb = gzip.compress(b"[" + b" " * (50 * 1024 * 1024) + b"]")
    assert len(bomb) < 64 * 1024
    response = post(client, bomb, **{"Content-Encoding": "gzip"})
    body = assert_error(response, 413, "payload_too_large")
    assert "decompressed" in body["message"]
    assert stored_count() == 0


def test_unsupported_encoding(client):
    assert_error(post(client, b"[]", **{"Content-Encoding": "br"}), 415, "unsupported_encoding")


# Requests refused before validation


@pytest.mark.parametrize(
    "body, code, detail",
    [
        (b'[{"service": "a",]', "malformed_json", "line 1 column"),
        (b"", "empty_batch", "no records"),  # as `[]` is
        (b"\xff\xfe[]", "malformed_json", "UTF-8"),
        (b'[{"message": "\\ud800"}]', "malformed_json", "surrogate"),
        (b"[NaN]", "malformed_json", ""),
        (b"[" * 5000 + b"]" * 5000, "malformed_json", ""),
        (b'"a string"', "invalid_shape", "a string"),
        (b"42", "invalid_shape", "a number"),
        (b"null", "invalid_shape", "null"),
        (b"[]", "empty_batch", ""),
        (b"{}", "validation_failed", ""),
    ],
)
def test_unreadable_bodies(client, stored_count, body, code, detail):
    status = 422 if code == "validation_failed" else 400
    error = assert_error(post(client, body), status, code)
    assert detail in error["message"]
    assert stored_count() == 0


def test_empty_ndjson_body_is_an_empty_batch(client):
    assert_error(post(client, b"\n\n", "application/x-ndjson"), 400, "empty_batch")


def test_malformed_json_reports_where_it_broke(client):
    error = assert_error(post(client, b'[\n{"service": "a",,}]'), 400, "malformed_json")
    assert (error["line"], error["column"]) == (2, 17)


def test_body_over_the_limit(make_app, stored_count):
    client = make_app(MAX_BODY_BYTES=2048).test_client()
    batch = [record(message="x" * 100) for _ in range(30)]
    assert_error(post(client, batch), 413, "payload_too_large")
    assert stored_count() == 0


def test_more_records_than_the_limit(make_app, stored_count):
    client = make_app(MAX_BATCH_RECORDS=10).test_client()
    error = assert_error(post(client, [record()] * 11), 413, "too_many_records")
    assert "10" in error["message"]
    assert stored_count() == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
def test_unsupported_content_type(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/ingest", data=orjson.dumps([record()]), headers=headers)
    assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_wrong_method(client, method):
    response = getattr(client, method)("/ingest")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_unknown_path(client):
    assert_error(client.post("/ingest/v2"), 404, "not_found")


# Faults of the server


def test_busy_write_lock_answers_503_with_retry_after(make_app, db_path, stored_count):
    client = make_app(WRITE_LOCK_TIMEOUT=0.05).test_client()
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        response = post(client, [record()])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_error(response, 503, "storage_busy")
    assert response.headers["Retry-After"] == "1"
    assert post(client, [record()]).status_code == 201
    assert stored_count() == 1


def test_server_fault_is_a_logged_json_500(client, stored_count, monkeypatch, caplog):
    def broken(connection, rows):
        connection.execute(
            "INSERT INTO log_record (id, received_at, timestamp, service, severity,"
            f" severity_rank, message, chain) VALUES (1, 0, {now_micros()}, 's', 'INFO', 30,"
            " 'half', '')")
        raise RuntimeError("disk on fire")

    break_inserts(monkeypatch, broken)
    with caplog.at_level(logging.ERROR):
        response = post(client, [record()])
    assert_error(response, 500, "internal_error")
    assert "disk on fire" in caplog.text
    assert stored_count() == 0  # the transaction was rolled back


def test_a_batch_waits_for_the_leader_at_most_the_lock_timeout(make_app, stored_count, monkeypatch):
    app = make_app(WRITE_LOCK_TIMEOUT=0.05)
    client, writer = app.test_client(), app.extensions["writer"]
    monkeypatch.setattr(writer, "_leader", object())  # another thread leads, and is stuck
    response = post(client, [record()])
    monkeypatch.undo()
    assert_error(response, 503, "storage_busy")
    assert not writer._waiting
    assert response.headers["Retry-After"] == "1"
    assert stored_count() == 0
    assert post(client, [record()]).status_code == 201


def waiting_batch(writer, records, partial=False):
    batch = write_path.Batch(lambda: records, partial)
    writer._waiting.append(batch)
    return batch


def test_waiting_batches_are_stored_together_each_with_its_own_outcome(client, writer, monkeypatch):
    transactions = []
    real_store = writer.store_group
    monkeypatch.setattr(writer, "store_group", lambda batches, committed, gather: (
        transactions.append(batches) or real_store(batches, committed, gather)))
    first = waiting_batch(writer, [record(message="a1"), record(message="a2")])
    invalid = waiting_batch(writer, [record(severity="LOUD")])
    mixed = waiting_batch(writer, [record(message="c1"), record(message="")], partial=True)
    response = post(client, [record(message="own")])  # this request's thread leads

    assert response.status_code == 201
    assert len(transactions) == 1, "one transaction for the whole group"
    assert all(batch.done for batch in (first, invalid, mixed))
    assert (first.result.first_id, first.result.last_id) == (1, 2)
    assert isinstance(invalid.error, ValidationFailed)
    assert (mixed.result.first_id, list(mixed.result.rejected)) == (3, [1])
    assert response.get_json()["first_id"] == 4
    messages = [client.get(f"/logs/{i}").get_json()["message"] for i in range(1, 5)]
    assert messages == ["a1", "a2", "c1", "own"]


def test_a_failed_transaction_fails_every_batch_of_the_group(client, writer, stored_count,
                                                             monkeypatch):
    def broken(connection, rows):
        raise RuntimeError("disk on fire")

    other = waiting_batch(writer, [record()])
    break_inserts(monkeypatch, broken)
    assert_error(post(client, [record()]), 500, "internal_error")
    assert other.done and isinstance(other.error, RuntimeError)
    assert stored_count() == 0


def test_a_group_stops_growing_at_its_row_limit(client, writer, monkeypatch):
    monkeypatch.setattr(writer, "group_rows", 3)
    transactions = []
    real_store = writer.store_group
    monkeypatch.setattr(writer, "store_group", lambda batches, committed, gather: (
        transactions.append(batches) or real_store(batches, committed, gather)))
    first = waiting_batch(writer, [record()] * 3)
    second = waiting_batch(writer, [record()] * 2)
    response = post(client, [record()])
    assert first.done and second.done and response.status_code == 201
    assert (first.result.first_id, second.result.first_id) == (1, 4)
    assert response.get_json()["first_id"] == 6
    assert [len(batches) for batches in transactions] == [1, 2]


def test_a_batch_that_arrives_while_the_lock_is_awaited_joins_the_group(app, client, writer,
                                                                       monkeypatch):
    store, late, writes = app.extensions["store"], [], []
    real_write = store.write

    @contextlib.contextmanager
    def write(committed=None):
        writes.append(1)
        with real_write(committed) as transaction:
            if not late:  # as if it came while this leader waited for the write lock
                late.append(waiting_batch(writer, [record(message="late")]))
            yield transaction

    monkeypatch.setattr(store, "write", write)
    response = post(client, [record(message="leader")])
    assert response.status_code == 201 and late[0].done
    assert writes == [1], "one transaction for both"
    assert (response.get_json()["first_id"], late[0].result.first_id) == (1, 2)


# Idempotent retries


def test_retry_with_the_same_idempotency_key_stores_nothing_again(client, stored_count):
    batch = [record(message="charged card"), record(message="sent receipt")]
    first = post(client, batch, **{"Idempotency-Key": "order-7-attempt"})
    again = post(client, batch, **{"Idempotency-Key": "order-7-attempt"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert stored_count() == 2


def test_same_idempotency_key_with_another_body_is_refused(client, stored_count):
    post(client, [record(message="one")], **{"Idempotency-Key": "k1"})
    response = post(client, [record(message="two")], **{"Idempotency-Key": "k1"})
    assert_error(response, 422, "idempotency_key_reused")
    partial = post(client, [record(message="one")], path="/ingest?mode=partial",
                   **{"Idempotency-Key": "k1"})
    assert_error(partial, 422, "idempotency_key_reused")
    assert stored_count() == 1


def test_idempotency_key_works_for_ndjson_gzip_and_partial_mode(client, stored_count):
    body = gzip.compress(ndjson(record(), record(severity="LOUD"), record()))
    headers = {"Content-Encoding": "gzip", "Idempotency-Key": "shipper-batch-42"}
    first = post(client, body, "application/x-ndjson", path="/ingest?mode=partial", **headers)
    again = post(client, body, "application/x-ndjson", path="/ingest?mode=partial", **headers)
    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json()
    assert again.get_json()["errors"] == {"1": again.get_json()["errors"]["1"]}
    assert stored_count() == 2


def test_a_rejected_batch_does_not_use_up_its_key(client, stored_count):
    key = {"Idempotency-Key": "retry-me"}
    assert_error(post(client, [record(severity="LOUD")], **key), 422, "validation_failed")
    assert post(client, [record()], **key).status_code == 201
    assert stored_count() == 1


def test_idempotency_keys_expire(make_app, stored_count, monkeypatch):
    client = make_app(IDEMPOTENCY_TTL=60).test_client()
    post(client, [record(message="one")], **{"Idempotency-Key": "old"})
    later = write_path.now_micros() + 61_000_000
    monkeypatch.setattr(write_path, "now_micros", lambda: later)
    response = post(client, [record(message="two")], **{"Idempotency-Key": "old"})
    assert response.status_code == 201
    assert stored_count() == 2


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_bad_idempotency_key(client, key):
    assert_error(post(client, [record()], **{"Idempotency-Key": key}), 400,
                 "invalid_idempotency_key")


def test_same_key_twice_in_one_group_stores_once(client, writer, stored_count):
    body = [record()]
    other = write_path.Batch(lambda: body, idempotency_key="twice", request_hash="h")
    writer._waiting.append(other)
    twin = write_path.Batch(lambda: body, idempotency_key="twice", request_hash="h")
    writer._waiting.append(twin)
    post(client, [record(message="leader")])
    assert other.result.first_id == twin.result.first_id == 1
    assert twin.result.replayed
    assert stored_count() == 2


# Per-record deduplication by event_id


def test_records_with_a_stored_event_id_are_skipped_and_counted(client, stored_count):
    first = post(client, [record(event_id="e1"), record(event_id="e2")]).get_json()
    again = post(client, [record(event_id="e2"), record(event_id="e3"), record(event_id="e3"),
                          record()], **ECHO).get_json()
    assert (first["accepted"], first["duplicates"]) == (2, 0)
    assert (again["accepted"], again["duplicates"]) == (2, 2)
    assert [item["event_id"] for item in again["items"]] == ["e3", None]
    assert again["first_id"] == first["last_id"] + 1
    assert stored_count() == 4


def test_event_ids_are_unique_per_service(client, stored_count):
    post(client, [record(service="a", event_id="e1")])
    body = post(client, [record(service="b", event_id="e1")]).get_json()
    assert body["accepted"] == 1
    assert stored_count() == 2


def test_the_unique_index_backs_the_check(client, db_path):
    post(client, [record(event_id="e1")])
    with sqlite3.connect(db_path) as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO log_record (received_at, timestamp, service, severity,"
                   " severity_rank, message, event_id) VALUES (1, 1, 'billing', 'INFO', 30,"
                   " 'x', 'e1')")


def test_event_ids_work_for_ndjson(client, stored_count):
    body = ndjson(record(event_id="n1"), record(event_id="n1"))
    response = post(client, body, "application/x-ndjson")
    assert (response.get_json()["accepted"], response.get_json()["duplicates"]) == (1, 1)


# Full disk and read-only storage


def test_full_database_answers_507_keeps_what_it_had_and_recovers(make_app, db_path, stored_count):
    client = make_app(SQLITE_MAX_SIZE_MB=1).test_client()
    batch = [record(message=f"filler {i} " + "x" * 400) for i in range(200)]
    acknowledged = 0
    for _ in range(50):
        response = post(client, batch, Prefer="return=minimal")
        if response.status_code != 201:
            break
        acknowledged += 200
    assert_error(response, 507, "storage_full")
    assert response.headers["Retry-After"] == "30"
    assert stored_count() == acknowledged > 0
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "size cap" in ready.get_json()["checks"]["disk"]
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    client = make_app(SQLITE_MAX_SIZE_MB=50).test_client()  # space returns
    assert post(client, batch).status_code == 201
    assert client.get("/readyz").status_code == 200
    assert stored_count() == acknowledged + 200


def test_read_only_database_answers_503(app, client, monkeypatch, stored_count):
    real = sqlite_database.pragmas
    monkeypatch.setattr(sqlite_database, "pragmas",
                        lambda config: {**real(config), "query_only": 1})
    sqlite_database.configure(app.extensions["store"].path, app.config)  # no more writes
    response = post(client, [record()])
    assert_error(response, 503, "storage_read_only")
    assert response.headers["Retry-After"] == "30"
    assert stored_count() == 0


def test_other_database_faults_stay_logged_500s(client, stored_count, monkeypatch, caplog):
    break_inserts(monkeypatch, lambda connection, rows: connection.execute("SELECT * FROM nowhere"))
    with caplog.at_level(logging.ERROR):
        assert_error(post(client, [record()]), 500, "internal_error")
    assert "nowhere" in caplog.text  # no such table (SQLite), relation does not exist (PostgreSQL)
    assert stored_count() == 0


def test_a_refused_batch_takes_no_write_lock(client, writer, monkeypatch):
    transactions = []
    monkeypatch.setattr(writer, "store_group",
                        lambda batches, committed, gather: transactions.append(batches))
    assert_error(post(client, [record(severity="LOUD")]), 422, "validation_failed")
    assert_error(post(client, b"[]"), 400, "empty_batch")
    assert transactions == []


def test_waiting_threads_take_turns_to_lead_and_every_batch_is_answered(make_app, monkeypatch):
    app = make_app(WRITE_LOCK_TIMEOUT=5)
    writer = app.extensions["writer"]
    writer.group_rows = 4  # several groups, each led by a thread that waited for its turn
    groups, real_store = [], writer.store_group

    def slow_store(batches, committed, gather):
        time.sleep(0.02)  # as if the write lock were held elsewhere: the others queue up
        real_store(batches, committed, gather)
        groups.append(len(batches))

    monkeypatch.setattr(writer, "store_group", slow_store)
    answers = []

    def send(number):
        response = app.test_client().post("/ingest", json=[record(message=f"m{number}")])
        answers.append((response.status_code, response.get_json()["first_id"]))

    threads = [threading.Thread(target=send, args=(number,)) for number in range(24)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(answers) == [(201, record_id) for record_id in range(1, 25)]
    assert time.monotonic() - started < 3  # no thread waited out a timeout to lead
    assert sum(groups) == 24 and 6 <= len(groups) < 24  # queued ones were stored together
    assert writer._leader is None and not writer._waiting
