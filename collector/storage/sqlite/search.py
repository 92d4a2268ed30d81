"""The read queries in SQLite: filters as WHERE clauses, full text through FTS5, keyset pages,
follows and grouped counts. Every value reaches SQL as a bound parameter."""

import contextlib
from dataclasses import replace

import orjson
import peewee as pw

from ...errors import InvalidInput
from ...records import Stored
from ...severity import RANKS
from ..base import OPERATORS, RecordFilter
from .db import database
from .models import LogRecord as R
from .patterns import pattern_clause, with_pattern_ids
from .writes import HOUR

_COLUMNS = [R.id, R.received_at, R.timestamp, R.service, R.severity, R.severity_rank, R.message,
            R.host, R.trace_id, R.span_id, R.attributes, R.event_id, R.api_key_id]
_FTS_MATCH = "(SELECT rowid FROM log_record_fts WHERE log_record_fts MATCH ?)"
_TRACE_MATCH = "(SELECT rowid FROM log_record_trace WHERE log_record_trace MATCH ?)"
_FTS_COUNT = (
    "SELECT count(*) FROM (SELECT 1 FROM log_record_fts WHERE log_record_fts MATCH ? LIMIT ?)"
)
# Past this many matches a term counts as common (see _full_text_clause).
COMMON_TERM_MATCHES = 5000


def fts5_expression(text):
    """A full-text query (Terms and operators) as an FTS5 expression.

    Every term is quoted, with a quote inside it doubled (FTS5's escape), so it
    stays one string and never FTS5 syntax (a"message:"b would filter on a column).
    """
    parts = []
    for term in text:
        if term in OPERATORS:
            parts.append(term)
        else:
            quoted = term.text.replace('"', '""')
            parts.append(f'"{quoted}"' + (" *" if term.prefix else ""))
    return " ".join(parts)


def where_clauses(where):
    """The WHERE clauses of a RecordFilter."""
    clauses = []
    if where.services is not None:
        clauses.append(R.service.in_(where.services))
    if where.ranks is not None:
        clauses.append(R.severity_rank.in_(where.ranks))
    if where.min_rank is not None:
        clauses.append(R.severity_rank >= where.min_rank)
    if where.since is not None:
        clauses.append(R.timestamp >= where.since)
    if where.until is not None:
        clauses.append(R.timestamp < where.until)
    if where.host is not None:
        clauses.append(R.host == where.host)
    if where.trace_id is not None:
        # The full-text table finds the candidates, the column keeps the match exact.
        phrase = '"{}"'.format(where.trace_id.replace('"', '""'))
        clauses.append(R.id.in_(pw.SQL(_TRACE_MATCH, (phrase,))))
        clauses.append(R.trace_id == where.trace_id)
    if where.api_key_id is not None:
        clauses.append(R.api_key_id == where.api_key_id)
    if where.text is not None:
        clauses.append(_full_text_clause(fts5_expression(where.text)))
    if where.pattern is not None:  # needs the patterns attached (patterns.attached)
        clauses.append(pattern_clause(where.pattern))
    for key, value in where.attributes.items():
        clauses.append(pw.fn.json_extract(R.attributes, _json_path(key))
                       .in_(_attribute_values(value)))
    return clauses


def _json_path(key):
    """The JSON path of a dotted attribute key (validated: letters, digits, _ and -)."""
    return "$." + ".".join(f'"{part}"' for part in key.split("."))


def _full_text_clause(expression):
    """Records whose message matches the FTS5 ``expression``, planned by how many match.

    A rare term is fastest looked up match by match; a common one is fastest
    found by walking the time (or service) index newest first and stopping at
    the page's end. The unary + hides the id from the planner to get the latter.
    """
    with fts_errors_are_bad_parameters():  # execute_sql runs the query at once
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


def page_query(where, order, after, limit, max_id):
    """The query of records after Position ``after`` in (timestamp, id) ``order``, among
    records up to ``max_id``."""
    query = with_pattern_ids(R.select(*_COLUMNS)).where(R.id <= max_id, *where_clauses(where))
    if after:
        timestamp, record_id = after
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


def follow_query(where, after_id, max_id, limit):
    """The query of matching records with ids in (after_id, max_id], in id order."""
    return (with_pattern_ids(R.select(*_COLUMNS))
            .where(R.id > after_id, R.id <= max_id, *where_clauses(where))
            .order_by(R.id).limit(limit).tuples())


def record_query(record_id):
    """The query of the record ``record_id``."""
    return with_pattern_ids(R.select(*_COLUMNS)).where(R.id == record_id).tuples()


def counts(where, by, interval):
    """The rows of Store.counts: from the hourly counts where they answer it, else a histogram
    bucket by bucket where it can be, else grouped."""
    hourly = hourly_counts(where, by, interval)
    if hourly is not None:
        return hourly
    bucketed = bucket_count_query(where, by, interval)
    if bucketed is None:
        return run(count_query(where, by, interval).dicts())
    cursor = database.execute_sql(*bucketed)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def count_query(where, by, interval):
    """The grouped COUNT query behind ``counts``."""
    # The time bucket groups last. SQLite cannot tell that a bucket follows the
    # index's order, so it sorts the rows into groups in a temporary b-tree.
    dimensions = [_dimension(name) for name in by]
    if interval:
        width = interval * 1_000_000
        dimensions.append((R.timestamp / width * width).alias("bucket"))
    clauses = where_clauses(where)
    if "severity" in by and where.ranks is None and where.min_rank is None:
        # Naming every rank lets SQLite count each one in its (severity_rank,
        # timestamp) index instead of visiting every row of the time range.
        clauses.append(R.severity_rank.in_(list(RANKS.values())))
    query = R.select(*dimensions, pw.fn.COUNT(R.id).alias("count"))
    if clauses:
        query = query.where(*clauses)
    if dimensions:
        query = query.group_by(*dimensions).order_by(*dimensions)
    return query


_HOURLY = ("SELECT {columns}SUM(count) AS count FROM record_count WHERE {clauses}"
           " GROUP BY {groups} HAVING SUM(count) > 0")


def hourly_counts(where, by, interval):
    """Counts from record_count (see migration 7) and the records of the partial hours at the
    ends of the range, or None where they cannot answer (another filter, another grouping,
    buckets finer than an hour, a range within one hour)."""
    if (not set(by) <= {"severity", "service"} or (interval and interval % 3600)
            or replace(where, services=None, ranks=None, min_rank=None, since=None,
                       until=None) != RecordFilter()):
        return None
    first = None if where.since is None else -(-where.since // HOUR)  # the first whole hour
    end = None if where.until is None else where.until // HOUR  # past the last whole hour
    if first is not None and end is not None and first >= end:
        return None
    names = [("severity_rank" if name == "severity" else "service") for name in by]
    columns = list(names)
    params = []
    if interval:
        width = interval * 1_000_000
        columns.append(f"hour * {HOUR} / {width} * {width} AS bucket")
    clauses, values = ["1"], []
    if first is not None:
        clauses.append("hour >= ?")
        values.append(first)
    if end is not None:
        clauses.append("hour < ?")
        values.append(end)
    if where.services is not None:
        clauses.append(f"service IN ({', '.join('?' * len(where.services))})")
        values += where.services
    if where.ranks is not None:
        clauses.append(f"severity_rank IN ({', '.join('?' * len(where.ranks))})")
        values += where.ranks
    if where.min_rank is not None:
        clauses.append("severity_rank >= ?")
        values.append(where.min_rank)
    keys = names + (["bucket"] if interval else [])
    sql = _HOURLY.format(columns="".join(f"{column}, " for column in columns),
                         clauses=" AND ".join(clauses),
                         groups=", ".join(keys) if keys else "()")
    if not keys:
        sql = sql.replace(" GROUP BY () HAVING SUM(count) > 0", "")
    totals = {}
    for row in database.execute_sql(sql, params + values):
        totals[row[:-1]] = totals.get(row[:-1], 0) + (row[-1] or 0)
    edges = []
    if first is not None:
        edges.append(replace(where, until=first * HOUR if where.until is None
                             else min(where.until, first * HOUR)))
    if end is not None:
        edges.append(replace(where, since=max(end * HOUR, where.since or 0)))
    for edge in edges:
        for row in run(count_query(edge, by, interval).tuples()):
            totals[row[:-1]] = totals.get(row[:-1], 0) + row[-1]
    rows = [dict(zip([*keys, "count"], (*key, count), strict=True))
            for key, count in sorted(totals.items()) if count or not keys]
    return rows or ([] if keys else [{"count": 0}])


def _dimension(name):
    """The grouped column of a ``by`` name (see Store.counts)."""
    if name == "severity":
        return R.severity_rank
    if name == "service":
        return R.service
    if name == "host":
        return R.host
    # The attribute as JSON text (SQLite's ->), decoded: a string stays apart from the
    # number it spells, and true from 1, as they are stored.
    return (pw.fn.json(pw.Expression(R.attributes, "->", _json_path(name[len("attr."):])))
            .python_value(_json_value).alias(name))


def _json_value(text):
    return None if text is None else orjson.loads(text)


# A histogram with no filter but time and severity is counted bucket by bucket, one count of
# an index range each (the (severity_rank, timestamp) index, or the time index), instead of
# sorting every row of the range into its bucket: on 1,000,000 records over a week, by
# severity in 3-hour buckets, 75-115 ms instead of 730-1,190 ms (measured on the 2-core
# machine). Past this many buckets the seeks would cost more than the sort.
MAX_SEEK_BUCKETS = 5000
_BUCKETS = ("WITH RECURSIVE bucket(start) AS (SELECT ? UNION ALL SELECT start + ? FROM bucket"
            " WHERE start < ?), ")
_BUCKET_COUNT = ("(SELECT COUNT(*) FROM log_record WHERE {ranks} timestamp >= max(bucket.start, ?)"
                 " AND timestamp < min(bucket.start + ?, ?)) AS count")


def bucket_count_query(where, by, interval):
    """The SQL and parameters of a histogram counted bucket by bucket (see MAX_SEEK_BUCKETS),
    or None where the grouped count_query is the one to run."""
    if (not interval or not set(by) <= {"severity"} or where.since is None
            or replace(where, since=None, until=None, ranks=None, min_rank=None) != RecordFilter()):
        return None
    until = where.until
    if until is None:
        newest = database.execute_sql("SELECT max(timestamp) FROM log_record").fetchone()[0]
        if newest is None:
            return None
        until = newest + 1
    width = interval * 1_000_000
    first, last = where.since // width * width, (until - 1) // width * width
    if not 0 <= (last - first) // width < MAX_SEEK_BUCKETS:
        return None
    ranks = sorted(set(where.ranks if where.ranks is not None else RANKS.values()))
    if where.min_rank is not None:
        ranks = [rank for rank in ranks if rank >= where.min_rank]
    if not ranks:
        return None
    bounds = [where.since, width, until]
    values = ", ".join("(?)" for _ in ranks)
    if "severity" in by:
        count = _BUCKET_COUNT.format(ranks="severity_rank = rank.value AND")
        sql = (f"{_BUCKETS}rank(value) AS (VALUES {values}), counted AS MATERIALIZED ("
               f"SELECT rank.value AS severity_rank, bucket.start AS bucket, {count}"
               " FROM rank, bucket) SELECT severity_rank, bucket, count FROM counted"
               " WHERE count > 0 ORDER BY severity_rank, bucket")
        return sql, [first, width, last, *ranks, *bounds]
    restricted = len(ranks) < len(RANKS)
    count = _BUCKET_COUNT.format(
        ranks=f"severity_rank IN ({', '.join('?' for _ in ranks)}) AND" if restricted else "")
    sql = (f"{_BUCKETS}counted AS MATERIALIZED (SELECT bucket.start AS bucket, {count}"
           " FROM bucket) SELECT bucket, count FROM counted WHERE count > 0 ORDER BY bucket")
    return sql, [first, width, last, *(ranks if restricted else []), *bounds]


def stored(query):
    """Run a query of ``_COLUMNS`` and the pattern id; its Stored records."""
    return [Stored._make(row) for row in run(query)]


def run(query):
    """Run a read query; an FTS5 query SQLite rejects is an InvalidInput naming q."""
    with fts_errors_are_bad_parameters():
        return list(query)


@contextlib.contextmanager
def fts_errors_are_bad_parameters():
    try:
        yield
    except pw.OperationalError as exc:
        if "fts5" in str(exc):
            raise InvalidInput("invalid_parameter", f"q: {exc}", parameter="q",
                               errors={"q": [str(exc)]}) from None
        raise
