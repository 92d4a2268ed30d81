"""Matching records as an NDJSON byte stream, optionally gzip-compressed: the hand-off
to downstream stores, shared by GET /logs/export and `flask export`."""

import zlib

import orjson

from .search import export_documents


def export_stream(params, compress=False):
    """Yield the NDJSON bytes of every record matching ``params``, in constant memory."""
    lines = (orjson.dumps(document) + b"\n" for document in export_documents(params))
    return _gzip(lines) if compress else lines


def _gzip(chunks):
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for chunk in chunks:
        compressed = compressor.compress(chunk)
        if compressed:
            yield compressed
    yield compressor.flush()
