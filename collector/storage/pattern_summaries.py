"""The patterns among the records a read matches, in peewee's words: the query behind
``Store.patterns`` for any backend, given its three models (records, each record's
pattern, the patterns)."""

import peewee as pw

from .base import PatternSummary


def summaries(models, clauses, new_since, span, limit):
    """The PatternSummary rows of the records ``clauses`` match, most records first.

    ``models``: the backend's (LogRecord, RecordPattern, PatternRow).
    """
    record, record_pattern, pattern = models
    columns = [pattern.canonical_id, pw.fn.COUNT(record.id), pw.fn.MIN(record.timestamp),
               pw.fn.MAX(record.timestamp), pw.fn.MAX(record.id)]
    group = [pattern.canonical_id]
    if span:
        columns.append((record.timestamp - span.start) / span.width)
        group.append(pw.SQL(str(len(columns))))  # the bucket, by its place in the select list
    query = (record.select(*columns)
             .join(record_pattern, on=(record_pattern.record_id == record.id))
             .join(pattern, on=(pattern.id == record_pattern.pattern_id))
             .switch(record))
    if new_since is not None:
        clauses = [*clauses, pattern.canonical_id.in_(
            pattern.select(pattern.canonical_id).group_by(pattern.canonical_id)
            .having(pw.fn.MIN(pattern.first_seen) >= new_since))]
    if clauses:
        query = query.where(*clauses)
    found = {}
    for canonical, count, first, last, sample, *bucket in query.group_by(*group).tuples():
        summary = found.get(canonical)
        if summary is None:
            summary = found[canonical] = PatternSummary(
                canonical, "", "", 0, first, last, sample, None,
                [0] * span.buckets if span else [])
        summary.records += count
        summary.first_seen, summary.last_seen = min(summary.first_seen, first), max(
            summary.last_seen, last)
        summary.sample_id = max(summary.sample_id, sample)
        if span and 0 <= bucket[0] < span.buckets:
            summary.counts[bucket[0]] += count
    chosen = sorted(found.values(), key=lambda s: (-s.records, s.id))[:limit]
    _describe(pattern, chosen)
    return chosen


def _describe(pattern, summaries):
    """Fill in each summary's service, text and first_ever from its pattern rows."""
    ids = [summary.id for summary in summaries]
    if not ids:
        return
    rows = {pattern_id: (service, text) for pattern_id, service, text in
            pattern.select(pattern.id, pattern.service, pattern.text)
            .where(pattern.id.in_(ids)).tuples()}
    first = dict(pattern.select(pattern.canonical_id, pw.fn.MIN(pattern.first_seen))
                 .where(pattern.canonical_id.in_(ids))
                 .group_by(pattern.canonical_id).tuples())
    for summary in summaries:
        summary.service, summary.text = rows[summary.id]
        summary.first_ever = first.get(summary.id)
