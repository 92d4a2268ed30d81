"""Request bodies to records: Content-Encoding undone, JSON and NDJSON read.

The pieces every wire protocol's decoder is built from; each protocol in
``collector.ingest.protocols`` picks its own by Content-Type.
"""

import zlib

import orjson

from ..errors import InvalidInput, TooLarge, UnsupportedFormat

# zlib's wbits: 16 + MAX_WBITS reads gzip, MAX_WBITS reads zlib-wrapped deflate,
# -MAX_WBITS reads raw deflate (which some clients send as "deflate").
_WBITS = {"gzip": (16 + zlib.MAX_WBITS,), "deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS)}

# orjson builds a tree of the whole document before its Python objects and holds some 15
# times the body's size at its peak (68 MiB for a 4.4 MiB array of 10,000 records): a larger
# array is parsed a piece of this size at a time, cut between two of its objects.
PIECE_BYTES = 1024 * 1024
CUT_TRIES = 4  # candidate cuts tried for a piece (a "},{" may lie inside a string)
_WHITESPACE = b" \t\r\n"  # JSON's
_OPEN, _CLOSE = ord("["), ord("]")


def decompress(body, encoding, limit):
    """The body with its Content-Encoding undone, refusing to expand beyond ``limit`` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding == "x-gzip":
        encoding = "gzip"
    if encoding not in _WBITS:
        raise UnsupportedFormat(
            "unsupported_encoding",
            f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or identity",
        )
    for wbits in _WBITS[encoding]:
        try:
            return _inflate(body, wbits, limit)
        except zlib.error as exc:
            error = exc
    raise InvalidInput("bad_encoding", f"the body is not valid {encoding} data: {error}")


def _inflate(body, wbits, limit):
    parts, size = [], 0
    data = body
    while data:  # a gzip body may hold several members, one after another
        inflater = zlib.decompressobj(wbits)
        # Ask for one byte past the limit: getting it proves the body is too large.
        part = inflater.decompress(data, limit - size + 1)
        size += len(part)
        if size > limit:
            raise TooLarge("payload_too_large", f"the decompressed body exceeds {limit} bytes")
        if not inflater.eof:
            raise zlib.error("the compressed data is truncated")
        parts.append(part)
        data = inflater.unused_data if wbits > zlib.MAX_WBITS else b""
    return b"".join(parts)


def malformed(exc, line=None):
    where = f"line {line}" if line is not None else f"line {exc.lineno} column {exc.colno}"
    return InvalidInput(
        "malformed_json",
        f"the body is not valid JSON at {where}: {exc.msg}",
        line=line or exc.lineno,
        column=exc.colno,
    )


def not_utf8(body, start=0):
    """The InvalidInput naming the first byte of ``body`` that is not UTF-8, or None.

    ``start`` is where ``body`` begins in the request's body (a line of NDJSON).
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        return InvalidInput("malformed_json", f"the body is not valid UTF-8 at byte {offset}"
                            f" (counting from 0): {exc.reason}", byte=offset)
    return None


def decode_json(body):
    """A JSON array of records, or one record object as a batch of one."""
    if not body.strip():
        return []  # no records, as `[]` is: the same answer
    try:
        document = _parse(body)
    except orjson.JSONDecodeError as exc:
        error = not_utf8(body) or malformed(exc)
        if exc.msg == "unexpected content after document" and exc.colno == 1:
            error.message += ("; one JSON document a line is NDJSON: send it with"
                              " Content-Type: application/x-ndjson")
        raise error from None
    if document.__class__ is dict:
        return [document]
    if document.__class__ is not list:
        raise InvalidInput(
            "invalid_shape",
            f"expected a JSON array of records or one record object, got {json_type(document)}",
        )
    return document


def _parse(body):
    """orjson.loads(body); a large array parsed piece by piece to the same list."""
    bounds = _array_bounds(body) if len(body) > PIECE_BYTES else None
    if bounds is None:
        return orjson.loads(body)
    records, (start, end) = [], bounds
    while start < end:
        cut = _next_cut(body, start + PIECE_BYTES, end)
        for _ in range(CUT_TRIES):
            try:
                records += orjson.loads(b"[" + body[start:cut] + b"]")
                break
            except orjson.JSONDecodeError:
                if cut == end:  # the body is not a valid array: the whole says where
                    return orjson.loads(body)
                cut = _next_cut(body, cut + 1, end)
        else:  # no cut between two objects found: the whole, as for a small body
            return orjson.loads(body)
        start = cut + 1  # past the comma
    return records


def _array_bounds(body):
    """(just after its "[", its "]") when ``body`` looks like a JSON array, else None."""
    start, end = 0, len(body) - 1
    while start < end and body[start] in _WHITESPACE:
        start += 1
    while end > start and body[end] in _WHITESPACE:
        end -= 1
    if body[start] == _OPEN and body[end] == _CLOSE:
        return start + 1, end
    return None


def _next_cut(body, start, end):
    """Where a piece ending in an object closed at a "},{" after ``start`` ends, or ``end``."""
    found = body.find(b"},{", start, end)
    return end if found < 0 else found + 1


def decode_ndjson(body):
    """Newline-delimited JSON: one record object a line; blank lines are skipped."""
    records, start = [], 0
    for number, line in enumerate(body.split(b"\n"), start=1):
        if line.strip():
            try:
                records.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                raise not_utf8(line, start) or malformed(exc, line=number) from None
        start += len(line) + 1
    return records


def json_type(value):
    return {str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        value.__class__, "null"
    )
