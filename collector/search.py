"""The questions asked of stored logs: pages, follows, counts and exports.

Every function takes parameters loaded by a schema of ``collector.query``.
Pages are keyset-paginated on (timestamp, id) and pinned to the snapshot of
their first page (newest id and "now"), so paging while records arrive neither
repeats nor skips a record.
"""

import contextlib
import time
from dataclasses import dataclass

import peewee as pw

from .db import database
from .errors import APIError
from .models import LogRecord, record_document
from .query import INTERVALS, encode_cursor, resolve_time
from .severity import RANKS
from .times import format_micros, now_micros

R = LogRecord
_COLUMNS = [R.id] + [getattr(R, name) for name in R.INSERT_COLUMNS]
_LEVELS = {rank: name for name, rank in RANKS.items()}
_FTS_MATCH = "(SELECT rowid FROM log_record_fts WHERE log_record_fts MATCH ?)"
_FTS_COUNT = (
    "SELECT count(*) FROM (SELECT 1 FROM log_record_fts WHERE log_record_fts MATCH ? LIMIT ?)"
)
# Past this many matches a term counts as common (see _full_text_clause).
COMMON_TERM_MATCHES = 5000
FOLLOW_POLL_SECONDS = 0.2


@dataclass
class Page:
    """Records found, where the next page starts, and what the query cost."""

    items: list
    took_ms: float
    next_cursor: str | None = None
    next_after_id: int | None = None


def filter_clauses(params, now):
    """The WHERE clauses of the filters in ``params``; relative times count back from ``now``."""
    clauses = []
    if "service" in params:
        clauses.append(R.service.in_(params["service"]))
    if "severity" in params:
        clauses.append(R.severity_rank.in_([RANKS[level] for level in params["severity"]]))
    if "min_severity" in params:
        clauses.append(R.severity_rank >= RANKS[params["min_severity"]])
    if "since" in params:
        clauses.append(R.timestamp >= resolve_time(params["since"], now))
    if "until" in params:
        clauses.append(R.timestamp < resolve_time(params["until"], now))
    if "host" in params:
        clauses.append(R.host == params["host"])
    if "trace_id" in params:
        clauses.append(R.trace_id == params["trace_id"])
    if "api_key_id" in params:
        clauses.append(R.api_key_id == params["api_key_id"])
    if "q" in params:
        clauses.append(_full_text_clause(params["q"]))
    for key, value in params.get("attr", {}).items():
        path = "$." + ".".join(f'"{part}"' for part in key.split("."))
        clauses.append(pw.fn.json_extract(R.attributes, path).in_(_attribute_values(value)))
    return clauses


def _full_text_clause(expression):
    """Records whose message matches the FTS5 ``expression``, planned by how many match.

    A rare term is fastest looked up match by match; a common one is fastest
    found by walking the time (or service) index newest first and stopping at
    the page's end. The unary + hides the id from the planner to get the latter.
    """
    with _fts_errors_are_bad_parameters():  # execute_sql runs the query at once
        cursor = database.execute_sql(_FTS_COUNT, (expression, COMMON_TERM_MATCHES))
    matches = cursor.fetchone()[0]
    subquery = pw.SQL(_FTS_MATCH, (expression,))
    if matches < COMMON_TERM_MATCHES:
        return R.id.in_(subquery)
    return pw.NodeList((pw.SQL("+"), R.id), glue="").in_(subquery)


def _attribute_values(text):
    """The stored values a query string matches: the string, and the number it spells.

    An integer beyond 64 bits is stored as a float (JSON numbers are doubles),
    and could not be bound as an SQLite integer: it is matched as a float.
    """
    values = [text]
    for number_type in (int, float):
        try:
            number = number_type(text)
        except ValueError:
            continue
        if number_type is float or -(2**63) <= number < 2**63:
            values.append(number)
            break
    return values


def newest_id():
    """The id of the newest stored record (0 when there is none)."""
    return R.select(pw.fn.MAX(R.id)).scalar() or 0


def find_page(params, fingerprint):
    """One page of records matching ``params``, newest first unless ``order`` is asc."""
    started = time.perf_counter()
    cursor = params.get("cursor")
    if cursor:
        if cursor["fingerprint"] != fingerprint:
            raise APIError(400, "invalid_parameter", "cursor: it belongs to another query",
                           parameter="cursor", errors={"cursor": ["It belongs to another query."]})
        now, max_id = cursor["now"], cursor["max_id"]
    else:
        now, max_id = now_micros(), newest_id()
    rows = _run(page_query(params, now, max_id, params["order"], cursor, params["limit"] + 1))
    next_cursor = None
    if len(rows) > params["limit"]:
        rows = rows[: params["limit"]]
        last = rows[-1]
        next_cursor = encode_cursor(timestamp=last[2], id=last[0], max_id=max_id, now=now,
                                    fingerprint=fingerprint)
    return Page(_documents(rows), _ms_since(started), next_cursor=next_cursor)


def page_query(params, now, max_id, order, position, limit):
    """The query of rows after ``position`` (a cursor's timestamp and id), in (timestamp, id)
    order, among records up to ``max_id``."""
    query = R.select(*_COLUMNS).where(R.id <= max_id, *filter_clauses(params, now))
    if position:
        timestamp, record_id = position["timestamp"], position["id"]
        # The plain range on timestamp lets SQLite seek in its index; the
        # tie-break on id keeps records sharing a timestamp in total order.
        if order == "desc":
            query = query.where(R.timestamp <= timestamp,
                                (R.timestamp < timestamp) | (R.id < record_id))
        else:
            query = query.where(R.timestamp >= timestamp,
                                (R.timestamp > timestamp) | (R.id > record_id))
    if order == "desc":
        query = query.order_by(R.timestamp.desc(), R.id.desc())
    else:
        query = query.order_by(R.timestamp.asc(), R.id.asc())
    return query.limit(limit).tuples()


def follow(params):
    """Records newer than ``after_id``, oldest first; waits up to ``wait`` s for the first."""
    started = time.perf_counter()
    deadline = time.monotonic() + params.get("wait", 0)
    after_id, limit = params["after_id"], params["limit"]
    while True:
        max_id = newest_id()
        rows = _run(
            R.select(*_COLUMNS)
            .where(R.id > after_id, R.id <= max_id, *filter_clauses(params, now_micros()))
            .order_by(R.id)
            .limit(limit)
            .tuples()
        )
        if rows or time.monotonic() >= deadline:
            break
        after_id = max_id  # nothing up to max_id matched: don't scan it again
        time.sleep(FOLLOW_POLL_SECONDS)
    next_after_id = rows[-1][0] if len(rows) == limit else max(max_id, after_id)
    return Page(_documents(rows), _ms_since(started), next_after_id=next_after_id)


def count(params):
    """Counts of matching records, grouped by ``by`` dimensions and ``interval`` buckets."""
    started = time.perf_counter()
    rows = _run(count_query(params, now_micros()).dicts())
    if "interval" in params:  # time first, as charts read it
        rows.sort(key=lambda row: row["bucket"])
    counts = [_count_row(row) for row in rows]
    return {
        "total": sum(row["count"] for row in counts),
        "counts": counts,
        "stats": {"took_ms": _ms_since(started)},
    }


def count_matching(params):
    """How many records match the filters in ``params``."""
    return _run(count_query(params, now_micros()).tuples())[0][0]


def count_query(params, now):
    """The grouped COUNT query behind ``count``."""
    # The time bucket groups last: rows come from the (severity_rank | service,
    # timestamp) indexes in that order, so SQLite groups them as they stream by.
    dimensions = [R.severity_rank if name == "severity" else R.service
                  for name in params.get("by", [])]
    if "interval" in params:
        width = INTERVALS[params["interval"]] * 1_000_000
        dimensions.append((R.timestamp / width * width).alias("bucket"))
    clauses = filter_clauses(params, now)
    if "severity" in params.get("by", []) and not ({"severity", "min_severity"} & set(params)):
        # Naming every rank lets SQLite count each one in its (severity_rank,
        # timestamp) index instead of visiting every row of the time range.
        clauses.append(R.severity_rank.in_(list(RANKS.values())))
    query = R.select(*dimensions, pw.fn.COUNT(R.id).alias("count"))
    if clauses:
        query = query.where(*clauses)
    if dimensions:
        query = query.group_by(*dimensions).order_by(*dimensions)
    return query


def _count_row(row):
    named = {}
    if "bucket" in row:
        named["start"] = format_micros(row["bucket"])
    if "severity_rank" in row:
        named["severity"] = _LEVELS[row["severity_rank"]]
    if "service" in row:
        named["service"] = row["service"]
    named["count"] = row["count"]
    return named


def export_documents(params, chunk=1000):
    """Every matching record as a document, read in keyset chunks: constant memory.

    The first chunk is read at once, so that a query SQLite rejects is a 400
    before the response starts rather than a stream cut short.
    """
    now, max_id = now_micros(), newest_id()
    rows = _run(page_query(params, now, max_id, params["order"], None, chunk))
    return _export_chunks(params, now, max_id, rows, chunk)


def _export_chunks(params, now, max_id, rows, chunk):
    while True:
        yield from _documents(rows)
        if len(rows) < chunk:
            return
        position = {"timestamp": rows[-1][2], "id": rows[-1][0]}
        rows = _run(page_query(params, now, max_id, params["order"], position, chunk))


def _run(query):
    """Run a read query (or iterate a cursor); an FTS5 query SQLite rejects is a 400."""
    with _fts_errors_are_bad_parameters():
        return list(query)


@contextlib.contextmanager
def _fts_errors_are_bad_parameters():
    try:
        yield
    except pw.OperationalError as exc:
        if "fts5" in str(exc):
            raise APIError(400, "invalid_parameter", f"q: {exc}", parameter="q",
                           errors={"q": [str(exc)]}) from None
        raise


def _documents(rows):
    return [record_document(row[0], row[1:]) for row in rows]


def _ms_since(started):
    return round((time.perf_counter() - started) * 1000, 3)

