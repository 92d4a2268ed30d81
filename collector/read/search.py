"""The questions asked of stored logs: pages, follows, counts and exports, over a Store.

Every function takes parameters loaded by a schema of ``read.params``. Pages are
keyset-paginated on (timestamp, id) and pinned to the snapshot of their first
page (newest id and "now"), so paging while records arrive neither repeats nor
skips a record.
"""

import time
from dataclasses import dataclass

from .. import records
from ..errors import InvalidInput, NotFound
from ..severity import LEVELS, RANKS
from ..storage.base import Position, RecordFilter, Span
from ..times import format_micros, now_micros
from .params import INTERVALS, encode_cursor, resolve_time

FOLLOW_POLL_SECONDS = 0.2
MAX_FILLED_BUCKETS = 10_000  # what a histogram may ask for; a chart shows a few hundred


@dataclass
class Page:
    """Records found, where the next page starts, and what the query cost."""

    items: list
    took_ms: float
    next_cursor: str | None = None
    next_after_id: int | None = None


def record_filter(params, now):
    """The RecordFilter of the filters in ``params``; relative times count back from ``now``."""
    return RecordFilter(
        services=tuple(params["service"]) if "service" in params else None,
        ranks=(tuple(RANKS[level] for level in params["severity"])
               if "severity" in params else None),
        min_rank=RANKS[params["min_severity"]] if "min_severity" in params else None,
        since=resolve_time(params["since"], now) if "since" in params else None,
        until=resolve_time(params["until"], now) if "until" in params else None,
        host=params.get("host"),
        trace_id=params.get("trace_id"),
        api_key_id=params.get("api_key_id"),
        text=params.get("q"),
        attributes=params.get("attr", {}),
        pattern=params.get("pattern"),
    )


def find_record(store, record_id):
    """The document of the record ``record_id``; NotFound when there is none."""
    found = store.record(record_id)
    if found is None:
        raise NotFound(f"no log record with id {record_id}")
    return _documents([found])[0]


def find_page(store, params, fingerprint):
    """One page of records matching ``params``, newest first unless ``order`` is asc."""
    started = time.perf_counter()
    cursor = params.get("cursor")
    if cursor:
        if cursor["fingerprint"] != fingerprint:
            raise InvalidInput("invalid_parameter", "cursor: it belongs to another query",
                               parameter="cursor",
                               errors={"cursor": ["It belongs to another query."]})
        now, max_id = cursor["now"], cursor["max_id"]
        after = Position(cursor["timestamp"], cursor["id"])
    else:
        now, max_id, after = now_micros(), store.newest_id(), None
    limit = params["limit"]
    found = store.page(record_filter(params, now), params["order"], after, limit + 1, max_id)
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        end = Position.after(found[-1])
        next_cursor = encode_cursor(timestamp=end.timestamp, id=end.id, max_id=max_id, now=now,
                                    fingerprint=fingerprint)
    return Page(_documents(found), _ms_since(started), next_cursor=next_cursor,
                next_after_id=max_id)


def follow(store, params):
    """Records newer than ``after_id``, oldest first; waits up to ``wait`` s for the first."""
    started = time.perf_counter()
    deadline = time.monotonic() + params.get("wait", 0)
    after_id, limit = params["after_id"], params["limit"]
    while True:
        max_id = store.newest_id()
        found = store.follow(record_filter(params, now_micros()), after_id, max_id, limit)
        if found or time.monotonic() >= deadline:
            break
        after_id = max_id  # nothing up to max_id matched: don't scan it again
        time.sleep(FOLLOW_POLL_SECONDS)
    next_after_id = found[-1].id if len(found) == limit else max(max_id, after_id)
    return Page(_documents(found), _ms_since(started), next_after_id=next_after_id)


def count(store, params):
    """Counts of matching records, grouped by ``by`` dimensions and ``interval`` buckets."""
    started = time.perf_counter()
    interval = INTERVALS[params["interval"]] if "interval" in params else None
    now = now_micros()
    where = record_filter(params, now)
    rows = store.counts(where, params.get("by", []), interval)
    if params["fill"]:
        rows += _empty_buckets(rows, interval, where.since, now if where.until is None
                               else where.until)
    if interval:  # time first, as charts read it
        rows.sort(key=lambda row: row["bucket"])
    counts = [_count_row(row) for row in rows]
    return {
        "total": sum(row["count"] for row in counts),
        "counts": counts,
        "stats": {"took_ms": _ms_since(started)},
    }


def count_matching(store, params):
    """How many records match the filters in ``params``."""
    return store.counts(record_filter(params, now_micros()), [], None)[0]["count"]


def _empty_buckets(rows, interval, since, until):
    """Rows of count 0 for the buckets of [since, until) that ``rows`` do not count.

    Without ``since`` the range starts at the first bucket counted. A range of more
    than MAX_FILLED_BUCKETS is an InvalidInput naming interval.
    """
    width = interval * 1_000_000
    counted = {row["bucket"] for row in rows}
    if since is None:
        if not counted:
            return []
        since = min(counted)
    first, last = since // width * width, (until - 1) // width * width
    if (last - first) // width >= MAX_FILLED_BUCKETS:
        raise InvalidInput("invalid_parameter",
                           f"interval: over {MAX_FILLED_BUCKETS:,} buckets to fill; choose a "
                           "wider interval or a shorter range", parameter="interval",
                           errors={"interval": [f"Over {MAX_FILLED_BUCKETS:,} buckets to fill."]})
    return [{"bucket": bucket, "count": 0} for bucket in range(first, last + 1, width)
            if bucket not in counted]


def _count_row(row):
    named = {}
    if "bucket" in row:
        named["start"] = format_micros(row["bucket"])
    for name, value in row.items():
        if name == "severity_rank":
            named["severity"] = LEVELS[value]
        elif name in ("service", "host"):
            named[name] = value
        elif name.startswith("attr."):
            named.setdefault("attributes", {})[name[len("attr."):]] = value
    named["count"] = row["count"]
    return named


def find_patterns(store, params):
    """The patterns of the records matching ``params``, most records first, with a sparkline
    of each over the query's time range and how far the miner has come."""
    started = time.perf_counter()
    now = now_micros()
    where = record_filter(params, now)
    new_since = resolve_time(params["new_since"], now) if "new_since" in params else None
    span = _span(store, where, params["buckets"], now)
    # The progress before the patterns: each read sees its own commit of the miner's, and a
    # batch it commits in between must not count as mined while missing from the list.
    mining = mining_state(store, now)
    found = store.patterns(where, new_since, span, params["limit"])
    return {
        "patterns": [{
            "id": summary.id,
            "service": summary.service,
            "template": summary.text,
            "count": summary.records,
            "first_seen": format_micros(summary.first_seen),
            "last_seen": format_micros(summary.last_seen),
            "first_seen_ever": (None if summary.first_ever is None
                                else format_micros(summary.first_ever)),
            "sample_id": summary.sample_id,
            "counts": summary.counts,
        } for summary in found],
        "span": None if span is None else {
            "start": format_micros(span.start),
            "interval_seconds": span.width / 1e6,
            "buckets": span.buckets,
        },
        "mining": mining,
        "stats": {"took_ms": _ms_since(started), "returned": len(found)},
    }


def _span(store, where, buckets, now):
    """The sparkline's buckets: since..until, or the first matching record..now (None when
    that range is empty)."""
    start, end = where.since, where.until or now
    if start is None:
        first = store.page(where, "asc", None, 1, store.newest_id())
        if not first:
            return None
        start = first[0].timestamp
    start = max(start, 0)  # no record is older than 1970 (a far relative since would be)
    if start >= end:
        return None  # an empty range: nothing to draw
    return Span(start, -(-max(end - start, 1) // buckets), buckets)  # rounded up: end is in


def mining_state(store, now):
    """How far the pattern miner has come: the last record id mined, the records still
    without a pattern, and the age of the oldest of them."""
    progress = store.mining_progress()
    oldest = progress.oldest_unmined_received_at
    return {
        "mined_id": progress.mined_id,
        "pending_records": max(0, progress.newest_id - progress.mined_id),
        "lag_seconds": 0.0 if oldest is None else round(max(0, now - oldest) / 1e6, 3),
    }


def export_documents(store, params, chunk=1000):
    """Every matching record as a document, read in keyset chunks: constant memory.

    The first chunk is read at once, so that a query the storage rejects is an
    error before the response starts rather than a stream cut short.
    """
    max_id = store.newest_id()
    where = record_filter(params, now_micros())
    found = store.page(where, params["order"], None, chunk, max_id)
    return _export_chunks(store, where, params["order"], max_id, found, chunk)


def _export_chunks(store, where, order, max_id, found, chunk):
    while True:
        yield from _documents(found)
        if len(found) < chunk:
            return
        found = store.page(where, order, Position.after(found[-1]), chunk, max_id)


def _documents(found):
    return [records.document(stored.id, stored[1:], stored.pattern_id) for stored in found]


def _ms_since(started):
    return round((time.perf_counter() - started) * 1000, 3)
