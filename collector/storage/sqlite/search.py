"""The read queries in SQLite: filters as WHERE clauses, full text through FTS5, keyset pages,
follows and grouped counts. Every value reaches SQL as a bound parameter."""

import contextlib

import peewee as pw

from ...errors import InvalidInput
from ...records import Stored
from ...severity import RANKS
from ..base import OPERATORS
from .db import database
from .models import LogRecord as R
from .patterns import pattern_clause, with_pattern_ids

_COLUMNS = [R.id, R.received_at, R.timestamp, R.service, R.severity, R.severity_rank, R.message,
            R.host, R.trace_id, R.span_id, R.attributes, R.event_id, R.api_key_id]
_FTS_MATCH = "(SELECT rowid FROM log_record_fts WHERE log_record_fts MATCH ?)"
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
        clauses.append(R.trace_id == where.trace_id)
    if where.api_key_id is not None:
        clauses.append(R.api_key_id == where.api_key_id)
    if where.text is not None:
        clauses.append(_full_text_clause(fts5_expression(where.text)))
    if where.pattern is not None:  # needs the patterns attached (patterns.attached)
        clauses.append(pattern_clause(where.pattern))
    for key, value in where.attributes.items():
        path = "$." + ".".join(f'"{part}"' for part in key.split("."))
        clauses.append(pw.fn.json_extract(R.attributes, path).in_(_attribute_values(value)))
    return clauses


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


def count_query(where, by, interval):
    """The grouped COUNT query behind ``counts``."""
    # The time bucket groups last: rows come from the (severity_rank | service,
    # timestamp) indexes in that order, so SQLite groups them as they stream by.
    dimensions = [R.severity_rank if name == "severity" else R.service for name in by]
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
