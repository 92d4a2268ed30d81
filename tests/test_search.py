"""GET /logs, /logs/stats and /logs/export: filters, full text, pages, follow, counts, plans."""

import gzip
import sqlite3
import threading
import time

import orjson
import pytest
from helpers import record
from werkzeug.datastructures import MultiDict

from collector.read import search
from collector.read.params import INTERVALS, PAGE_SCHEMA, STATS_SCHEMA, load_params
from collector.storage.base import Position, RecordFilter
from collector.storage.sqlite import search as sqlite_search
from collector.storage.sqlite.db import database
from collector.storage.sqlite.patterns import attached, path_beside
from collector.storage.sqlite.search import count_query, page_query
from collector.times import now_micros

NOW = time.time()


def ingest(client, records):
    response = client.post("/ingest", json=records, headers={"Prefer": "return=minimal"})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def ids(client, query):
    response = client.get(f"/logs?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return [item["id"] for item in response.get_json()["items"]]


@pytest.fixture
def corpus(client):
    """Ten records, ids 1-10, one minute apart and oldest first, the newest 30 s old."""
    now = time.time() + 30
    ingest(client, [
        record(service="api", severity="INFO", message="GET /orders 200 in 12 ms",
               timestamp=now - 600, host="web-1",
               attributes={"status": 200, "user": {"name": "ann"}}),
        record(service="api", severity="WARN", message="slow query on orders table",
               timestamp=now - 540, host="web-2", attributes={"status": 200}),
        record(service="billing", severity="ERROR", message="payment declined for invoice 42",
               timestamp=now - 480, trace_id="a" * 32, attributes={"invoice": "42"}),
        record(service="billing", severity="INFO", message="invoice 42 sent to customer",
               timestamp=now - 420, trace_id="a" * 32),
        record(service="auth", severity="DEBUG", message="token refreshed for user ann",
               timestamp=now - 360, attributes={"user": {"name": "ann"}}),
        record(service="auth", severity="CRITICAL", message="connection refused from 10.0.0.7",
               timestamp=now - 300, host="web-1"),
        record(service="api", severity="ERROR", message="upstream timeout after 30 s",
               timestamp=now - 240, attributes={"status": 504}),
        record(service="worker", severity="INFO", message="job 17 finished", timestamp=now - 180),
        record(service="worker", severity="FATAL", message="out of memory, exiting",
               timestamp=now - 120, host="batch-1"),
        record(service="api", severity="TRACE", message="entering handler orders.list",
               timestamp=now - 60, attributes={"status": "200"}),
    ])


# Filters


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]),
        ("order=asc", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        ("service=billing", [4, 3]),
        ("service=billing&service=worker", [9, 8, 4, 3]),
        ("service=billing,worker", [9, 8, 4, 3]),
        ("severity=error", [7, 3]),
        ("severity=ERROR,fatal", [9, 7, 3]),
        ("min_severity=error", [9, 7, 6, 3]),
        ("min_severity=warning", [9, 7, 6, 3, 2]),
        ("service=api&min_severity=warn", [7, 2]),
        ("since=5m", [10, 9, 8, 7, 6]),
        ("since=9m&until=7m", [3, 2]),
        ("host=web-1", [6, 1]),
        ("trace_id=" + "A" * 32, [4, 3]),
        ("attr.status=200", [10, 2, 1]),
        ("attr.status=504", [7]),
        ("attr.invoice=42", [3]),
        ("attr.user.name=ann", [5, 1]),
        ("attr.user.name=bob", []),
        ("q=invoice", [4, 3]),
        ("q=invoice declined", [3]),
        ('q="invoice 42 sent"', [4]),
        ('q="42 invoice"', []),
        ("q=refus*", [6]),
        ("q=10.0.0.7", [6]),
        ("q=/orders", [10, 2, 1]),
        ("q=timeout OR memory", [9, 7]),
        ("q=orders NOT slow", [10, 1]),
        ("q=INVOICE", [4, 3]),
        ("q=invoice&service=billing&min_severity=error&since=1h", [3]),
    ],
)
def test_filters(client, corpus, query, expected):
    assert ids(client, query) == expected


def test_absolute_times_and_offsets(client, corpus):
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 300))
    assert ids(client, f"since={since}Z") == [10, 9, 8, 7, 6]
    assert ids(client, f"since={since}%2B00:00") == [10, 9, 8, 7, 6]  # +00:00, URL-encoded
    local = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 300 + 7200))
    assert ids(client, f"since={local}%2B02:00") == [10, 9, 8, 7, 6]


def test_records_sharing_a_timestamp_are_ordered_by_id(client):
    ingest(client, [record(timestamp=NOW - 5, message=f"m{i}") for i in range(5)])
    assert ids(client, "") == [5, 4, 3, 2, 1]
    assert ids(client, "order=asc") == [1, 2, 3, 4, 5]
    assert ids(client, "limit=2") == [5, 4]


def test_page_body(client, corpus):
    body = client.get("/logs?limit=3&service=api").get_json()
    assert set(body) == {"items", "next_cursor", "next_after_id", "stats"}
    assert body["next_after_id"] == 10  # the newest id the search sees
    assert body["items"][0]["service"] == "api"
    assert body["stats"]["returned"] == 3
    assert body["stats"]["took_ms"] >= 0


# Pagination


def walk(client, query):
    """Every id of a query, page by page, following the Link header."""
    seen, url = [], f"/logs?{query}"
    while url:
        response = client.get(url)
        body = response.get_json()
        seen.extend(item["id"] for item in body["items"])
        link = response.headers.get("Link")
        assert (link is None) == (body["next_cursor"] is None)
        url = link[1:link.index(">")] if link else None
    return seen


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_pages_cover_every_record_once(client, corpus, order):
    expected = ids(client, f"order={order}")
    for limit in (1, 3, 4, 10):
        assert walk(client, f"order={order}&limit={limit}") == expected


def test_paging_while_records_arrive_neither_repeats_nor_skips(client):
    ingest(client, [record(timestamp=NOW - 100 + i, message=f"old {i}") for i in range(30)])
    expected = ids(client, "limit=1000")
    seen, url = [], "/logs?limit=7"
    while url:
        response = client.get(url)
        seen.extend(item["id"] for item in response.get_json()["items"])
        # New records land before, inside and after the range being paged.
        ingest(client, [record(timestamp=t, message="new") for t in (NOW - 200, NOW - 85, NOW)])
        link = response.headers.get("Link")
        url = link[1:link.index(">")] if link else None
    assert seen == expected


def test_relative_window_does_not_slide_between_pages(client, monkeypatch):
    ingest(client, [record(timestamp=time.time() - 50 + i) for i in range(6)])
    first = client.get("/logs?since=1m&limit=3").get_json()
    later = now_micros() + 30_000_000  # page two is read 30 s later
    monkeypatch.setattr(search, "now_micros", lambda: later)
    second = client.get(f"/logs?since=1m&limit=3&cursor={first['next_cursor']}").get_json()
    assert len(first["items"]) + len(second["items"]) == 6


@pytest.mark.parametrize(
    "cursor", ["garbage", "eyJhIjoxfQ", "W10", "bnVsbA", "!!!"],
    ids=["garbage", "other-object", "list", "null", "not-base64"],
)
def test_bad_cursor(client, corpus, cursor):
    body = client.get(f"/logs?cursor={cursor}").get_json()
    assert body["error"] == "invalid_parameter"
    assert body["parameter"] == "cursor"


def test_cursor_of_another_query_is_refused(client, corpus):
    cursor = client.get("/logs?limit=2&service=api").get_json()["next_cursor"]
    response = client.get(f"/logs?limit=2&service=auth&cursor={cursor}")
    assert response.status_code == 400
    assert "another query" in response.get_json()["message"]
    assert client.get(f"/logs?limit=5&service=api&cursor={cursor}").status_code == 200


# Bad parameters


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("colour=red", "colour"),
        ("since=yesterday", "since"),
        ("until=2026-13-45", "until"),
        ("since=15x", "since"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("severity=LOUD", "severity"),
        ("min_severity=", "min_severity"),
        ("order=sideways", "order"),
        ('q="unbalanced', "q"),
        ("q=OR", "q"),
        ("q=a OR", "q"),
        ("q=---", "q"),
        ("trace_id=xyz", "trace_id"),
        ("host=web-1&host=web-2", "host"),
        ("wait=5", "wait"),
        ("after_id=1&wait=31", "wait"),
        ("after_id=-1", "after_id"),
        ("attr.a[0]=1", "attr"),
        ("service=" + "s" * 129, "service"),
    ],
)
def test_bad_parameter_is_named(client, query, parameter):
    response = client.get(f"/logs?{query}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_parameter"
    assert parameter in body["errors"]
    assert parameter in body["message"]


HOSTILE = ["'; DROP TABLE log_record; --", '" OR 1=1 --', "%' OR '%'='", "\\x00\\n",
           "Robert'); DELETE FROM log_record;--", "NEAR(a b)", "message:x", "* OR *"]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("parameter", ["service", "host", "q", "attr.user", "severity"])
def test_hostile_strings_are_data(client, corpus, parameter, value):
    response = client.get("/logs", query_string={parameter: value})
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.get_json()["items"] == []
    assert len(ids(client, "")) == 10


def test_after_id_and_cursor_exclude_each_other(client, corpus):
    cursor = client.get("/logs?limit=2").get_json()["next_cursor"]
    body = client.get(f"/logs?limit=2&after_id=1&cursor={cursor}").get_json()
    assert body["parameter"] == "after_id"


# Follow


def test_after_id_returns_newer_records_oldest_first(client, corpus):
    body = client.get("/logs?after_id=7").get_json()
    assert [item["id"] for item in body["items"]] == [8, 9, 10]
    assert body["next_after_id"] == 10


def test_after_id_with_filters_moves_past_records_that_do_not_match(client, corpus):
    body = client.get("/logs?after_id=7&service=billing").get_json()
    assert body["items"] == []
    assert body["next_after_id"] == 10


def test_after_id_respects_the_limit(client, corpus):
    body = client.get("/logs?after_id=0&limit=4").get_json()
    assert [item["id"] for item in body["items"]] == [1, 2, 3, 4]
    assert body["next_after_id"] == 4


def test_wait_ends_with_an_empty_page(client, corpus):
    started = time.monotonic()
    body = client.get("/logs?after_id=10&wait=0.5").get_json()
    assert 0.4 < time.monotonic() - started < 3
    assert body["items"] == []
    assert body["next_after_id"] == 10


def test_wait_answers_as_soon_as_a_matching_record_arrives(app, client, corpus):
    def later():
        time.sleep(0.5)
        other = app.test_client()
        ingest(other, [record(service="noise")])
        time.sleep(0.5)
        ingest(other, [record(service="billing", message="late arrival")])

    writer = threading.Thread(target=later)
    started = time.monotonic()
    writer.start()
    body = client.get("/logs?after_id=10&wait=10&service=billing").get_json()
    elapsed = time.monotonic() - started
    writer.join()
    assert [item["message"] for item in body["items"]] == ["late arrival"]
    assert 0.9 < elapsed < 5


# Stats


def stats(client, query):
    response = client.get(f"/logs/stats?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_stats_by_severity(client, corpus):
    body = stats(client, "by=severity")
    assert body["total"] == 10
    assert body["counts"] == [
        {"severity": "TRACE", "count": 1}, {"severity": "DEBUG", "count": 1},
        {"severity": "INFO", "count": 3}, {"severity": "WARN", "count": 1},
        {"severity": "ERROR", "count": 2}, {"severity": "CRITICAL", "count": 1},
        {"severity": "FATAL", "count": 1},
    ]


def test_stats_by_service_and_severity_with_filters(client, corpus):
    body = stats(client, "by=service,severity&min_severity=error")
    assert body["counts"] == [
        {"service": "api", "severity": "ERROR", "count": 1},
        {"service": "auth", "severity": "CRITICAL", "count": 1},
        {"service": "billing", "severity": "ERROR", "count": 1},
        {"service": "worker", "severity": "FATAL", "count": 1},
    ]
    assert body["total"] == 4


def test_stats_histogram(client):
    base = 1_750_000_000 - 1_750_000_000 % 3600  # on the hour
    ingest(client, [record(timestamp=base + offset) for offset in (0, 59, 60, 3599, 3600, 7300)])
    minute = stats(client, "interval=1m")["counts"]
    assert [row["count"] for row in minute] == [2, 1, 1, 1, 1]
    hourly = stats(client, "interval=1h&by=severity")["counts"]
    assert hourly[0] == {"start": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(base)),
                         "severity": "INFO", "count": 4}
    assert [row["count"] for row in hourly] == [4, 1, 1]


def test_stats_total_without_grouping(client, corpus):
    body = stats(client, "q=invoice")
    assert (body["total"], body["counts"]) == (2, [{"count": 2}])


def test_stats_by_host_and_attribute(client, corpus):
    assert stats(client, "by=host")["counts"] == [
        {"host": None, "count": 6}, {"host": "batch-1", "count": 1},
        {"host": "web-1", "count": 2}, {"host": "web-2", "count": 1},
    ]
    # A value keeps its JSON type: the string "200" is not the number 200.
    assert stats(client, "by=attr.status&service=api")["counts"] == [
        {"attributes": {"status": "200"}, "count": 1}, {"attributes": {"status": 200}, "count": 2},
        {"attributes": {"status": 504}, "count": 1},
    ]
    assert stats(client, "by=attr.user.name,severity&since=1h")["counts"] == [
        {"attributes": {"user.name": None}, "severity": "TRACE", "count": 1},
        {"attributes": {"user.name": None}, "severity": "INFO", "count": 2},
        {"attributes": {"user.name": None}, "severity": "WARN", "count": 1},
        {"attributes": {"user.name": None}, "severity": "ERROR", "count": 2},
        {"attributes": {"user.name": None}, "severity": "CRITICAL", "count": 1},
        {"attributes": {"user.name": None}, "severity": "FATAL", "count": 1},
        {"attributes": {"user.name": "ann"}, "severity": "DEBUG", "count": 1},
        {"attributes": {"user.name": "ann"}, "severity": "INFO", "count": 1},
    ]


def test_stats_fill_answers_every_bucket_of_the_range(client):
    base = 1_750_000_000 - 1_750_000_000 % 3600  # on the hour
    ingest(client, [record(timestamp=base + offset, severity=severity) for offset, severity in
                    ((60, "INFO"), (70, "ERROR"), (3 * 3600 + 5, "INFO"))])
    hour = 3600

    def start(seconds):
        return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(seconds))

    since, until = start(base - hour + 1), start(base + 5 * hour)  # until is exclusive
    body = stats(client, f"interval=1h&by=severity&fill=true&since={since}&until={until}")
    assert body["total"] == 3
    assert body["counts"] == [
        {"start": start(base - hour), "count": 0},
        {"start": start(base), "severity": "INFO", "count": 1},
        {"start": start(base), "severity": "ERROR", "count": 1},
        {"start": start(base + hour), "count": 0},
        {"start": start(base + 2 * hour), "count": 0},
        {"start": start(base + 3 * hour), "severity": "INFO", "count": 1},
        {"start": start(base + 4 * hour), "count": 0},
    ]
    # Without since the range starts at the first bucket counted; until defaults to now.
    day = 86400
    days = stats(client, "interval=1d&fill=1")["counts"]
    assert days[0] == {"start": start(base // day * day), "count": 3}
    assert len(days) == time.time() // day - base // day + 1  # every day up to today
    assert sum(row["count"] for row in days) == 3
    # Nothing matched and no since: nothing to fill.
    assert stats(client, "interval=1d&fill=1&service=none")["counts"] == []


@pytest.mark.parametrize("query, parameter", [
    ("by=colour", "by"), ("by=attr.", "by"), ("by=attr.a..b", "by"), ("by=attr.a'b", "by"),
    ("interval=2h", "interval"), ("interval=1h&limit=5", "limit"), ("fill=true", "fill"),
    ("fill=maybe&interval=1h", "fill"),
    ("interval=1s&since=1d&fill=true", "interval"),  # 86,400 buckets
])
def test_stats_bad_parameters(client, query, parameter):
    body = client.get(f"/logs/stats?{query}").get_json()
    assert (body["error"], body["parameter"]) == ("invalid_parameter", parameter)


# Export


def test_export_streams_every_matching_record_in_chunks(client):
    ingest(client, [record(message=f"event {i}", timestamp=NOW - 1000 + i) for i in range(2500)])
    response = client.get("/logs/export")
    assert response.mimetype == "application/x-ndjson"
    lines = [orjson.loads(line) for line in response.get_data().splitlines()]
    assert [line["id"] for line in lines] == list(range(1, 2501))
    assert lines[0]["message"] == "event 0"


def test_export_with_filters_gzip_and_order(client, corpus):
    response = client.get("/logs/export?service=api&order=desc",
                          headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    lines = gzip.decompress(response.get_data()).splitlines()
    assert [orjson.loads(line)["id"] for line in lines] == [10, 7, 2, 1]


def test_export_bad_parameter(client):
    assert client.get("/logs/export?limit=5").get_json()["parameter"] == "limit"


def test_export_command(runner, client, corpus):
    result = runner.invoke(args=["export", "--service", "billing", "--service", "worker",
                                 "--min-severity", "error"])
    assert result.exit_code == 0, result.output
    assert [orjson.loads(line)["id"] for line in result.stdout_bytes.splitlines()] == [3, 9]
    assert "exported 2 records" in result.stderr
    refused = runner.invoke(args=["export", "--since", "last tuesday"])
    assert refused.exit_code == 2
    assert "since" in refused.output


# Query plans: the main shapes use an index, never a full scan of the table


def plan(query):
    sql, params = query.sql()
    with database.connection_context(), attached(path_beside(database.database)):
        rows = database.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    return " | ".join(row[3] for row in rows)


def page_plan(query, position=None):
    pairs = [tuple(kv.split("=", 1)) for kv in query.split("&")]
    params = load_params(PAGE_SCHEMA, MultiDict(pairs))
    where = search.record_filter(params, now_micros())
    after = Position(**position) if position else None
    return plan(page_query(where, params["order"], after, 101, 10**9))


@pytest.mark.sqlite_only("SQLite's query plans (EXPLAIN QUERY PLAN)")
@pytest.mark.parametrize(
    "query, index",
    [
        ("order=desc", "USING INDEX log_record_timestamp"),
        ("service=api&min_severity=warn&since=1h", "USING INDEX log_record_service_timestamp"),
        ("severity=error&since=1h", "USING INDEX log_record_severity_rank_timestamp"),
        ("trace_id=" + "a" * 32, "VIRTUAL TABLE INDEX"),  # log_record_trace
        ("q=invoice", "VIRTUAL TABLE INDEX"),
        ("q=invoice&since=1h", "VIRTUAL TABLE INDEX"),
    ],
)
def test_page_queries_use_an_index(app, query, index):
    for position in (None, {"timestamp": now_micros(), "id": 500}):  # first and deep pages
        shape = page_plan(query, position)
        assert index in shape
        assert "SCAN t1 " not in shape.replace("SCAN t1 USING INDEX", "")


def test_common_words_walk_the_time_index(app, monkeypatch):
    monkeypatch.setattr(sqlite_search, "COMMON_TERM_MATCHES", 0)
    assert "SCAN t1 USING INDEX log_record_timestamp" in page_plan("q=invoice")


def stats_plan(query):
    pairs = [tuple(kv.split("=", 1)) for kv in query.split("&")]
    params = load_params(STATS_SCHEMA, MultiDict(pairs))
    interval = INTERVALS[params["interval"]] if "interval" in params else None
    return plan(count_query(search.record_filter(params, now_micros()), params["by"], interval))


@pytest.mark.sqlite_only("SQLite's query plans (EXPLAIN QUERY PLAN)")
def test_stats_by_severity_counts_in_the_index(app):
    assert "USING COVERING INDEX log_record_severity_rank_timestamp" in stats_plan(
        "by=severity&since=24h")


@pytest.mark.sqlite_only("SQLite's query plans (EXPLAIN QUERY PLAN)")
@pytest.mark.parametrize("query, index", [
    # No index holds hosts or attributes: the time range (or the service) bounds the rows read.
    ("by=host&since=24h", "USING INDEX log_record_timestamp (timestamp>?)"),
    ("by=attr.user.name&since=1h", "USING INDEX log_record_timestamp (timestamp>?)"),
    ("by=host&service=api&since=1h", "USING INDEX log_record_service_timestamp (service=? AND"),
    ("by=attr.status,severity&interval=5m&since=1h",
     "USING INDEX log_record_severity_rank_timestamp (severity_rank=? AND timestamp>?)"),
])
def test_stats_by_host_and_attribute_read_an_index_range(app, query, index):
    shape = stats_plan(query)
    assert index in shape
    assert "SCAN t1" not in shape


# Histograms of time and severity alone are counted bucket by bucket: the same rows as the
# grouped count, without sorting every row of the range.


@pytest.fixture
def spread(client):
    """Records of every level over the last two hours, some sharing a timestamp."""
    now = time.time()
    levels = ["TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "ERROR", "CRITICAL", "FATAL"]
    ingest(client, [record(severity=levels[i * 7 % 8], timestamp=now - 7200 + (i // 2) * 37)
                    for i in range(380)])
    return now


def loaded(query):
    params = load_params(STATS_SCHEMA, MultiDict([tuple(kv.split("=", 1))
                                                  for kv in query.split("&")]))
    interval = INTERVALS[params["interval"]] if "interval" in params else None
    return search.record_filter(params, now_micros()), params.get("by", []), interval


@pytest.mark.parametrize("query", [
    "interval=1m&since=3h",
    "interval=5m&since=90m&by=severity",
    "interval=10m&since=3h&min_severity=warn&by=severity",
    "interval=1m&since=2h&severity=error,info,error",
    "interval=15m&since=1d&min_severity=notice",
    "interval=30s&since=1h&until=10m&by=severity",
    "interval=1h&since=3h&severity=fatal&min_severity=error&by=severity",
])
def test_histograms_counted_by_bucket_equal_the_grouped_count(app, spread, query):
    where, by, interval = loaded(query)
    with database.connection_context():
        assert sqlite_search.bucket_count_query(where, by, interval) is not None
        grouped = sqlite_search.run(count_query(where, by, interval).dicts())
        assert grouped and sqlite_search.counts(where, by, interval) == grouped


@pytest.mark.parametrize("query", [
    "interval=1m&since=1h&service=api", "interval=1m&since=1h&q=invoice",
    "interval=1m&since=1h&by=service", "interval=1m", "by=severity&since=1h",
    "interval=1s&since=2h",  # more buckets than seeks pay for
])
def test_other_histograms_are_grouped(app, spread, query):
    with database.connection_context():
        assert sqlite_search.bucket_count_query(*loaded(query)) is None


@pytest.mark.parametrize("query, index", [
    ("interval=5m&since=1d&by=severity",
     "USING COVERING INDEX log_record_severity_rank_timestamp (severity_rank=? AND timestamp>?"),
    ("interval=5m&since=1d", "USING COVERING INDEX log_record_timestamp (timestamp>? AND"),
    ("interval=5m&since=1d&min_severity=error",
     "USING COVERING INDEX log_record_severity_rank_timestamp (severity_rank=? AND timestamp>?"),
])
def test_histograms_by_bucket_count_in_an_index_without_sorting(app, spread, query, index):
    with database.connection_context():
        sql, parameters = sqlite_search.bucket_count_query(*loaded(query))
        rows = database.execute_sql("EXPLAIN QUERY PLAN " + sql, parameters).fetchall()
    shape = " | ".join(row[3] for row in rows)
    assert index in shape
    assert "TEMP B-TREE FOR GROUP BY" not in shape and "SCAN log_record" not in shape


# Hourly counts: the stats they answer are those the records give


def test_hourly_counts_answer_as_the_records_do(app, client, db_path):
    hour = 3600
    start = (int(time.time()) // hour - 40) * hour  # a whole hour, 40 hours back
    ingest(client, [record(service=("api", "billing", "web")[i % 3],
                           severity=("DEBUG", "INFO", "WARN", "ERROR")[i % 4],
                           timestamp=start + i * 37 * 60 + i % 11) for i in range(60)])
    base = start * 1_000_000
    ranges = [(None, None), (base + 5 * 60_000_000, None), (None, base + 7 * 3600_000_000 + 1),
              (base + 3600_000_000 + 17, base + 20 * 3600_000_000 - 9),
              (base + 30 * 60_000_000, base + 50 * 60_000_000)]
    shapes = [([], None), (["severity"], None), (["service"], 3600),
              (["severity", "service"], 3600), (["severity"], 3 * 3600), ([], 86400)]
    filters = [{}, {"services": ("api", "web")}, {"min_rank": 40}, {"ranks": (20, 60)}]

    def both(where, by, interval):
        with database.connection_context():
            hourly = sqlite_search.hourly_counts(where, by, interval)
            grouped = list(count_query(where, by, interval).dicts())
        return hourly, grouped

    for since, until in ranges:
        for by, interval in shapes:
            for extra in filters:
                where = RecordFilter(since=since, until=until, **extra)
                hourly, grouped = both(where, by, interval)
                if hourly is None:  # a range within one hour: the records answer it
                    assert since and until and until - since < 3600_000_000
                    continue
                key = lambda row: sorted(row.items())  # noqa: E731
                assert sorted(hourly, key=key) == sorted(grouped, key=key), (where, by, interval)
    # Deleted records (retention) leave the counts with them.
    with sqlite3.connect(db_path) as db:
        db.execute("DELETE FROM log_record WHERE id % 4 = 1")
    hourly, grouped = both(RecordFilter(), ["severity", "service"], 3600)
    assert hourly == grouped and sum(row["count"] for row in hourly) == 45
    assert client.get("/logs/stats?by=severity").get_json()["total"] == 45
