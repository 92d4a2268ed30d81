"""Records as an NDJSON byte stream, optionally gzip-compressed: the hand-off to
downstream stores, shared by GET /logs/export and `flask export`."""

import zlib

import orjson


def ndjson_stream(documents, compress=False):
    """Yield the NDJSON bytes of ``documents``, one at a time: constant memory."""
    lines = (orjson.dumps(document) + b"\n" for document in documents)
    return _gzip(lines) if compress else lines


def _gzip(chunks):
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    for chunk in chunks:
        compressed = compressor.compress(chunk)
        if compressed:
            yield compressed
    yield compressor.flush()
