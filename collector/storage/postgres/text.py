"""Text PostgreSQL cannot store as it is: a NUL character (valid in JSON and in SQLite's text).

A NUL is stored as U+FFFF then ``0``, and a U+FFFF of the record's own as U+FFFF then ``1``,
so every text comes back exactly as it was sent (the audit chain hashed that text). Only
text holding one of the two characters is touched.
"""

import re

from ...records import COLUMNS

_MARK = "\uffff"
_ENCODED = re.compile(f"{_MARK}[01]")
# The text columns of a record, by their place in COLUMNS (attributes are JSON: a NUL
# there is the escape \u0000, never the character).
_TEXT = [place for place, name in enumerate(COLUMNS)
         if name in ("service", "severity", "message", "host", "trace_id", "span_id", "event_id")]


def encode(text):
    """``text`` as PostgreSQL stores it."""
    if text is None or ("\0" not in text and _MARK not in text):
        return text
    return text.replace(_MARK, _MARK + "1").replace("\0", _MARK + "0")


def decode(text):
    """A stored text as it was sent."""
    if text is None or _MARK not in text:
        return text
    return _ENCODED.sub(lambda found: "\0" if found[0][1] == "0" else _MARK, text)


def encode_row(row, offset=0):
    """A row (COLUMNS from ``offset`` on) with its texts encoded; the row itself when none
    needs it."""
    return _map(row, offset, encode)


def decode_row(row, offset=0):
    """A stored row (COLUMNS from ``offset`` on) with its texts as they were sent."""
    return _map(row, offset, decode)


def _map(row, offset, convert):
    changed = None
    for place in _TEXT:
        value = row[offset + place]
        converted = convert(value)
        if converted is not value:
            changed = changed or list(row)
            changed[offset + place] = converted
    return row if changed is None else type(row)(changed) if type(row) in (list, tuple) \
        else type(row)._make(changed)
