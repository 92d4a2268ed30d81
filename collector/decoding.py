"""Request bodies to lists of records: content decoding and one decoder per format.

A new ingest format is one more entry in ``DECODERS``: a function from the
body's bytes to a list of record objects, which then take the one write path.
"""

import zlib

import orjson

from .errors import APIError

# zlib's wbits: 16 + MAX_WBITS reads gzip, MAX_WBITS reads zlib-wrapped deflate,
# -MAX_WBITS reads raw deflate (which some clients send as "deflate").
_WBITS = {"gzip": (16 + zlib.MAX_WBITS,), "deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS)}


def decompress(body, encoding, limit):
    """The body with its Content-Encoding undone, refusing to expand beyond ``limit`` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding == "x-gzip":
        encoding = "gzip"
    if encoding not in _WBITS:
        raise APIError(
            415,
            "unsupported_encoding",
            f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or identity",
        )
    for wbits in _WBITS[encoding]:
        try:
            return _inflate(body, wbits, limit)
        except zlib.error as exc:
            error = exc
    raise APIError(400, "bad_encoding", f"the body is not valid {encoding} data: {error}")


def _inflate(body, wbits, limit):
    parts, size = [], 0
    data = body
    while data:  # a gzip body may hold several members, one after another
        inflater = zlib.decompressobj(wbits)
        # Ask for one byte past the limit: getting it proves the body is too large.
        part = inflater.decompress(data, limit - size + 1)
        size += len(part)
        if size > limit:
            raise APIError(
                413, "payload_too_large", f"the decompressed body exceeds {limit} bytes"
            )
        if not inflater.eof:
            raise zlib.error("the compressed data is truncated")
        parts.append(part)
        data = inflater.unused_data if wbits > zlib.MAX_WBITS else b""
    return b"".join(parts)


def _malformed(exc, line=None):
    where = f"line {line}" if line is not None else f"line {exc.lineno} column {exc.colno}"
    return APIError(
        400,
        "malformed_json",
        f"the body is not valid JSON at {where}: {exc.msg}",
        line=line or exc.lineno,
        column=exc.colno,
    )


def decode_json(body):
    """A JSON array of records, or one record object as a batch of one."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _malformed(exc) from None
    if document.__class__ is dict:
        return [document]
    if document.__class__ is not list:
        raise APIError(
            400,
            "invalid_shape",
            f"expected a JSON array of records or one record object, got {_json_type(document)}",
        )
    return document


def decode_ndjson(body):
    """Newline-delimited JSON: one record object a line; blank lines are skipped."""
    records = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise _malformed(exc, line=number) from None
    return records


def _json_type(value):
    return {str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        value.__class__, "null"
    )


# Content-Type (without parameters) -> decoder.
DECODERS = {
    "application/json": decode_json,
    "application/x-ndjson": decode_ndjson,
    "application/ndjson": decode_ndjson,
    "application/jsonl": decode_ndjson,
    "application/x-jsonlines": decode_ndjson,
}


def format_name(content_type):
    """The name of the format a Content-Type stands for ("json", "ndjson"), or None."""
    decoder = DECODERS.get((content_type or "").lower())
    return None if decoder is None else decoder.__name__.removeprefix("decode_")


def decode_records(body, content_type, content_encoding, max_bytes):
    """Decode a request body into a list of records, or raise the matching APIError."""
    decoder = DECODERS.get((content_type or "").lower())
    if decoder is None:
        raise APIError(
            415,
            "unsupported_media_type",
            f"Content-Type {content_type or '(none)'!r} is not supported;"
            f" use one of {', '.join(DECODERS)}",
        )
    return decoder(decompress(body, content_encoding, max_bytes))
