"""The read queries in PostgreSQL: filters as WHERE clauses, full text through a GIN index on
to_tsvector('simple', ...), keyset pages, follows and grouped counts. Every value reaches SQL
as a bound parameter."""

from dataclasses import replace

import orjson
import peewee as pw

from ...records import Stored
from ..base import RecordFilter
from .db import database
from .models import LogRecord as R
from .patterns import pattern_clause, with_pattern_ids
from .text import decode, decode_row, encode
from .writes import HOUR

_COLUMNS = [R.id, R.received_at, R.timestamp, R.service, R.severity, R.severity_rank, R.message,
            R.host, R.trace_id, R.span_id, R.attributes, R.event_id, R.api_key_id]
# The expression of the GIN index log_record_message (migration 1), word for word.
_DOCUMENT = "to_tsvector('simple', collector_fts_text(message))"
# The attributes as jsonb, which refuses the escape \u0000 that json keeps: it reads as U+FFFD.
ATTRIBUTES = r"replace(attributes::text, '\u0000', '\ufffd')::jsonb"


def tsquery(text):
    """A full-text query (Terms and operators) as tsquery text, with SQLite's meaning.

    Each term goes through collector_fts_text, as the indexed messages do, and becomes
    its words in a row (``<->``), the last one a prefix for ``word*``; NOT binds
    tightest, then the implied AND, then OR, as in FTS5, and as ``!``, ``&`` and ``|``
    do in a tsquery. None when no term has a word left to match.
    """
    terms = [part for part in text if not isinstance(part, str)]
    words = dict(zip(range(len(terms)), (row[0].split() for row in database.execute_sql(
        "SELECT collector_fts_text(t) FROM unnest(%s::text[]) WITH ORDINALITY AS u (t, n)"
        " ORDER BY n", ([term.text for term in terms],))), strict=True))
    parts, index, operator = [], 0, "&"
    for part in text:
        if isinstance(part, str):  # OR, NOT
            operator = "|" if part == "OR" else "& !"
            continue
        lexemes = ["'{}'".format(word.replace("\\", "\\\\").replace("'", "''"))
                   for word in words[index]]
        index += 1
        if lexemes:
            if terms[index - 1].prefix:
                lexemes[-1] += ":*"
            phrase = "(" + " <-> ".join(lexemes) + ")"
            parts.append(phrase if not parts else f"{operator} {phrase}")
        operator = "&"
    return " ".join(parts) if parts else None


def where_clauses(where):
    """The WHERE clauses of a RecordFilter."""
    clauses = []
    if where.services is not None:
        clauses.append(R.service.in_([encode(service) for service in where.services]))
    if where.ranks is not None:
        clauses.append(R.severity_rank.in_(where.ranks))
    if where.min_rank is not None:
        clauses.append(R.severity_rank >= where.min_rank)
    if where.since is not None:
        clauses.append(R.timestamp >= where.since)
    if where.until is not None:
        clauses.append(R.timestamp < where.until)
    if where.host is not None:
        clauses.append(R.host == encode(where.host))
    if where.trace_id is not None:
        clauses.append(R.trace_id == encode(where.trace_id))
    if where.api_key_id is not None:
        clauses.append(R.api_key_id == where.api_key_id)
    if where.text is not None:
        query = tsquery(where.text)
        clauses.append(pw.SQL("FALSE") if query is None
                       else pw.SQL(f"{_DOCUMENT} @@ %s::tsquery", (query,)))
    if where.pattern is not None:
        clauses.append(pattern_clause(where.pattern))
    for key, value in where.attributes.items():
        clauses.append(pw.SQL(f"({ATTRIBUTES} #> %s::text[]) IN ({_attribute_values(value)})",
                              (key.split("."), *_attribute_params(value))))
    return clauses


def _attribute_params(text):
    """The stored JSON values a query string matches: the string, and the number it spells."""
    values = [orjson.dumps(text).decode()]
    try:
        number = orjson.loads(text)
    except orjson.JSONDecodeError:
        return values
    if isinstance(number, (int, float)) and not isinstance(number, bool):
        values.append(text.strip())
    return values


def _attribute_values(text):
    return ", ".join("%s::jsonb" for _ in _attribute_params(text))


def page_query(where, order, after, limit, max_id):
    """The query of records after Position ``after`` in (timestamp, id) ``order``, among
    records up to ``max_id``."""
    query = with_pattern_ids(R.select(*_COLUMNS)).where(R.id <= max_id, *where_clauses(where))
    if after:
        timestamp, record_id = after
        # A row comparison PostgreSQL seeks in the (timestamp, id) index.
        position = pw.Tuple(R.timestamp, R.id)
        query = query.where(position < pw.Tuple(timestamp, record_id) if order == "desc"
                            else position > pw.Tuple(timestamp, record_id))
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
    """The rows of Store.counts: from the hourly counts where they answer it, else grouped."""
    hourly = hourly_counts(where, by, interval)
    rows = list(count_query(where, by, interval).dicts()) if hourly is None else hourly
    for row in rows:
        for name in ("service", "host"):
            if name in row:
                row[name] = decode(row[name])
    return rows


def count_query(where, by, interval):
    """The grouped COUNT query behind ``counts``."""
    dimensions = [_dimension(name) for name in by]
    if interval:
        width = interval * 1_000_000
        dimensions.append((R.timestamp / width * width).alias("bucket"))
    clauses = where_clauses(where)
    query = R.select(*dimensions, pw.fn.COUNT(R.id).alias("count"))
    if clauses:
        query = query.where(*clauses)
    if dimensions:
        positions = range(1, len(dimensions) + 1)
        # NULLS FIRST: records without the value come first, as on SQLite.
        query = (query.group_by(*(pw.SQL(str(place)) for place in positions))
                 .order_by(*(pw.SQL(f"{place} NULLS FIRST") for place in positions)))
    return query


def _dimension(name):
    """The grouped column of a ``by`` name (see Store.counts)."""
    if name == "severity":
        return R.severity_rank
    if name == "service":
        return R.service
    if name == "host":
        return R.host
    # jsonb, decoded by psycopg: a string stays apart from the number it spells.
    return pw.SQL(f"{ATTRIBUTES} #> %s::text[]",
                  (name[len("attr."):].split("."),)).alias(name)


_HOURLY = ("SELECT {columns}SUM(count) AS count FROM record_count WHERE {clauses}"
           "{groups}")


def hourly_counts(where, by, interval):
    """Counts from record_count and the records of the partial hours at the ends of the range,
    or None where they cannot answer (another filter, another grouping, buckets finer than an
    hour, a range within one hour)."""
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
    if interval:
        width = interval * 1_000_000
        columns.append(f"hour * {HOUR} / {width} * {width} AS bucket")
    clauses, values = ["TRUE"], []
    if first is not None:
        clauses.append("hour >= %s")
        values.append(first)
    if end is not None:
        clauses.append("hour < %s")
        values.append(end)
    if where.services is not None:
        clauses.append("service = ANY(%s)")
        values.append([encode(service) for service in where.services])
    if where.ranks is not None:
        clauses.append("severity_rank = ANY(%s::smallint[])")
        values.append(list(where.ranks))
    if where.min_rank is not None:
        clauses.append("severity_rank >= %s")
        values.append(where.min_rank)
    keys = names + (["bucket"] if interval else [])
    groups = ""
    if keys:
        places = ", ".join(str(place) for place in range(1, len(keys) + 1))
        groups = f" GROUP BY {places} HAVING SUM(count) > 0"
    sql = _HOURLY.format(columns="".join(f"{column}, " for column in columns),
                         clauses=" AND ".join(clauses), groups=groups)
    totals = {}
    for row in database.execute_sql(sql, values):
        totals[row[:-1]] = totals.get(row[:-1], 0) + int(row[-1] or 0)
    edges = []
    if first is not None:
        edges.append(replace(where, until=first * HOUR if where.until is None
                             else min(where.until, first * HOUR)))
    if end is not None:
        edges.append(replace(where, since=max(end * HOUR, where.since or 0)))
    for edge in edges:
        for row in count_query(edge, by, interval).tuples():
            totals[row[:-1]] = totals.get(row[:-1], 0) + row[-1]
    rows = [dict(zip([*keys, "count"], (*key, count), strict=True))
            for key, count in sorted(totals.items()) if count or not keys]
    return rows or ([] if keys else [{"count": 0}])


def stored(query):
    """Run a query of ``_COLUMNS`` and the pattern id; its Stored records."""
    return [Stored._make(decode_row(row, 1)) for row in query]
