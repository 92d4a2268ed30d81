"""The collector's own protocol: POST /ingest, a JSON array (or object) or NDJSON of records.

Atomic by default (any invalid record refuses the batch, 422), or ``mode=partial``
(the valid records are stored and the rest listed, 200). An ``Idempotency-Key``
makes a retry replay the first answer. The answer gives the counts and ids;
``Prefer: return=representation`` (RFC 7240) adds the stored records, normalized.
Records are the collector's own shape unless the request names a field mapping
(``message_field=log``, ...: see ``mapping``), for shippers that send JSON of their own shape.
"""

import functools
import hashlib

from marshmallow import Schema, fields

from ... import records
from ...apidoc import RETRY_AFTER, error_response, json_content
from ...errors import InvalidInput, UnsupportedFormat
from ..decoding import decode_json, decode_ndjson, decompress
from ..writer import Batch
from . import mapping
from .base import KEY_SCHEMES, Answer, Protocol, Route

MAX_IDEMPOTENCY_KEY = 255

# Content-Type (without parameters) -> decoder.
DECODERS = {
    "application/json": decode_json,
    "application/x-ndjson": decode_ndjson,
    "application/ndjson": decode_ndjson,
    "application/jsonl": decode_ndjson,
    "application/x-jsonlines": decode_ndjson,
}


def decode_records(body, content_type, content_encoding, max_bytes, fieldmap=None):
    """Decode a request body into a list of records, or raise the matching domain error.

    With a ``fieldmap`` every JSON object is read through it (anything else is left for
    the schema to refuse).
    """
    decoder = DECODERS.get((content_type or "").lower())
    if decoder is None:
        raise UnsupportedFormat(
            "unsupported_media_type",
            f"Content-Type {content_type or '(none)'!r} is not supported;"
            f" use one of {', '.join(DECODERS)}",
        )
    documents = decoder(decompress(body, content_encoding, max_bytes))
    if fieldmap is None:
        return documents
    return [fieldmap.record(doc) if doc.__class__ is dict else doc for doc in documents]


class IngestAnswerSchema(Schema):
    """What a stored batch answers."""

    accepted = fields.Integer(required=True)
    duplicates = fields.Integer(required=True)
    first_id = fields.Integer(required=True, allow_none=True)
    last_id = fields.Integer(required=True, allow_none=True)
    rejected = fields.Integer(metadata={"description": "mode=partial only."})
    errors = fields.Dict(metadata={"description": "mode=partial only: record index to reasons."})
    items = fields.List(fields.Nested(records.StoredRecordSchema),
                        metadata={"description": "Only with Prefer: return=representation."})


class Native(Protocol):
    """POST /ingest."""

    name = "ingest"
    routes = (Route("/ingest", "post_ingest"),)
    # Basic credentials in front of /ingest are a proxy's, not a key (see the README).
    key_schemes = KEY_SCHEMES

    def batch(self, request):
        partial = _partial_mode(request.args)
        fieldmap = mapping.from_request(request.args, request.headers)
        body = request.read_body()
        # Decoded in the worker's write queue, possibly by another thread: bind its inputs now.
        batch = Batch(
            functools.partial(decode_records, body, request.content_type,
                              request.content_encoding, request.max_body_bytes, fieldmap),
            partial=partial,
            idempotency_key=_idempotency_key(request),
            caller=request.caller,
        )
        if batch.idempotency_key:
            batch.request_hash = _request_hash(request, body, partial, fieldmap)
        return batch

    def answer(self, request, batch, result):
        answer = {
            "accepted": len(result.rows),
            "duplicates": result.duplicates,
            "first_id": result.first_id,
            "last_id": result.last_id,
        }
        if batch.partial:
            answer["rejected"] = len(result.rejected)
            answer["errors"] = result.rejected
        headers = {}
        preference = _return_preference(request.headers)
        if preference is not None:
            headers["Preference-Applied"] = f"return={preference}"
        if preference == "representation":
            answer["items"] = result.documents()
        if result.replayed:
            headers["Idempotent-Replayed"] = "true"
        return Answer(200 if batch.partial else 201, answer, headers)

    def error(self, failure):
        return Answer(failure.status, failure.to_dict(), failure.headers)

    def format_name(self, request):
        decoder = DECODERS.get(request.content_type)
        return "other" if decoder is None else decoder.__name__.removeprefix("decode_")

    def openapi(self, config):
        return {"post_ingest": {"post": _operation(config)}}, {"IngestAnswer": IngestAnswerSchema}


PARAMETERS = ("mode", *mapping.PARAMETERS)


def _partial_mode(args):
    for name in args:
        if name not in PARAMETERS:
            raise InvalidInput("unknown_parameter",
                               f"unknown query parameter {name!r}; expected: mode, or the field"
                               f" mapping's {', '.join(mapping.PARAMETERS)}", parameter=name)
    mode = args.get("mode", "atomic")
    if mode not in ("atomic", "partial"):
        raise InvalidInput("invalid_parameter", "mode must be 'atomic' or 'partial'",
                           parameter="mode")
    return mode == "partial"


def _idempotency_key(request):
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters",
        )
    # Each API key has its own idempotency keys: no client sees another's outcomes.
    key_id = request.caller.key_id
    return key if key_id is None else f"{key_id}:{key}"


def _request_hash(request, body, partial, fieldmap):
    """What an idempotency key stands for: the body as sent, and how it is to be read and stored."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (request.content_type, request.content_encoding or "",
                 "partial" if partial else "atomic", repr(fieldmap)):
        digest.update(part.encode() + b"\0")
    digest.update(body)
    return digest.hexdigest()


def _return_preference(headers):
    """``minimal`` or ``representation``, as the Prefer header asks (the last one wins), or None."""
    preferences = headers.get("Prefer", "").replace(";", ",").split(",")
    asked = [p.strip().lower() for p in preferences]
    return next((p.removeprefix("return=") for p in reversed(asked)
                 if p in ("return=minimal", "return=representation")), None)


def _operation(config):
    stored_headers = {
        "Idempotent-Replayed": {"description": "true: the original answer to this key.",
                                "schema": {"type": "string", "enum": ["true"]}},
        "Preference-Applied": {"description": "The return preference applied: "
                                              "return=representation adds the items.",
                               "schema": {"type": "string"}},
    }
    return {
        "tags": ["ingest"],
        "parameters": [
            {"in": "query", "name": "mode", "schema": {"type": "string", "default": "atomic",
                                                       "enum": ["atomic", "partial"]},
             "description": "atomic: any invalid record refuses the batch (422); partial: "
                            "the valid ones are stored and the rest listed (200)."},
            {"in": "header", "name": "Content-Encoding",
             "schema": {"type": "string", "enum": ["gzip", "deflate"]}},
            {"in": "header", "name": "Prefer", "schema": {"type": "string",
                                                          "enum": ["return=representation",
                                                                   "return=minimal"]},
             "description": "return=representation: the answer adds the stored records, "
                            "normalized (items); return=minimal, the default: counts and ids."},
            {"in": "header", "name": "Idempotency-Key",
             "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
             "description": "The same key and body within IDEMPOTENCY_TTL store nothing and "
                            "get the original answer back."},
            *mapping.mapping_parameters(),
        ],
        "requestBody": {
            "required": True,
            "description": "A JSON array of records (a single object is a batch of one), or "
                           "NDJSON: one record object a line. Compressed with gzip or deflate "
                           "when Content-Encoding says so. With a field mapping (its "
                           "parameters), JSON objects of any shape.",
            "content": {
                "application/json": {"schema": {"oneOf": [
                    {"type": "array", "items": {"$ref": "#/components/schemas/LogRecord"},
                     "minItems": 1, "maxItems": config["MAX_BATCH_RECORDS"]},
                    {"$ref": "#/components/schemas/LogRecord"},
                ]}},
                **{mimetype: {"schema": {"type": "string", "description": "One record a line."}}
                   for mimetype in DECODERS if mimetype != "application/json"},
            },
        },
        "responses": {
            "201": {"description": "Stored (atomic).", "headers": stored_headers,
                    "content": json_content("IngestAnswer")},
            "200": {"description": "mode=partial: the valid records stored, the rest listed.",
                    "headers": stored_headers, "content": json_content("IngestAnswer")},
            "400": error_response(
                "malformed_json, invalid_shape, empty_batch, bad_encoding, unknown_parameter, "
                "invalid_parameter, invalid_idempotency_key"),
            "408": error_response(
                "request_timeout: the body did not arrive within BODY_READ_TIMEOUT"),
            "413": error_response(
                "payload_too_large (the body, or decompressed, over MAX_BODY_BYTES), "
                "too_many_records (over MAX_BATCH_RECORDS)"),
            "415": error_response("unsupported_media_type, unsupported_encoding"),
            "422": error_response(
                "validation_failed: `errors` maps record index to field to reasons; "
                "idempotency_key_reused"),
            "503": {**error_response("storage_busy, storage_read_only: nothing was stored"),
                    "headers": RETRY_AFTER},
            "507": {**error_response("storage_full: nothing was stored"), "headers": RETRY_AFTER},
            "500": error_response("internal_error: nothing of the batch was stored"),
        },
    }


PROTOCOL = Native()
