"""The marshmallow schema that validates incoming log records and normalizes them."""

import time

import orjson
from marshmallow import RAISE, Schema, ValidationError

from ..fields import BoundedString, HexId, RecordField, Severity, parse_rfc3339, type_error


class Message(RecordField):
    """A non-empty string of at most ``max_bytes`` bytes in UTF-8."""

    def __init__(self, max_bytes, **kwargs):
        super().__init__(**kwargs)
        self.max_bytes = max_bytes

    def _deserialize(self, value, attr, data, **kwargs):
        if value.__class__ is not str:
            raise type_error(value, "string")
        if not value:
            raise ValidationError("Must not be empty.")
        # A character is at most 4 bytes in UTF-8: encode only when it may matter.
        if len(value) * 4 > self.max_bytes and len(value.encode()) > self.max_bytes:
            raise ValidationError(f"Longer than {self.max_bytes} bytes.")
        return value


class Timestamp(RecordField):
    """RFC 3339 / ISO 8601 (naive means UTC) or epoch seconds; loads as epoch microseconds."""

    def __init__(self, max_future_skew, **kwargs):
        super().__init__(**kwargs)
        self.max_future_skew = max_future_skew

    def _deserialize(self, value, attr, data, **kwargs):
        kind = value.__class__
        if kind is str:
            micros = parse_rfc3339(value)
        elif kind is int or kind is float:
            # Clamped first (a float like 1e300 would overflow as microseconds);
            # the clamped value still fails the range checks below.
            micros = round(min(max(value, -1), 1e12) * 1_000_000)
        else:
            raise type_error(value, "timestamp (RFC 3339 string or epoch seconds)")
        if micros < 0:
            raise ValidationError("Timestamp is before 1970-01-01T00:00:00Z.")
        if micros > (time.time() + self.max_future_skew) * 1_000_000:
            raise ValidationError(
                f"Timestamp is more than {self.max_future_skew} s in the future"
                " (epoch numbers are seconds, not milliseconds)."
            )
        return micros


class Attributes(RecordField):
    """A JSON object of structured fields; loads as its serialized JSON text.

    Bounded in nesting depth, total key count and serialized size.
    """

    def __init__(self, max_keys, max_depth, max_bytes, **kwargs):
        super().__init__(**kwargs)
        self.max_keys = max_keys
        self.max_depth = max_depth
        self.max_bytes = max_bytes

    def _deserialize(self, value, attr, data, **kwargs):
        if value.__class__ is not dict:
            raise type_error(value, "object")
        self._check_shape(value)
        try:
            text = orjson.dumps(value)
        except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits
            raise ValidationError(f"Not serializable: {exc}.") from None
        if len(text) > self.max_bytes:
            raise ValidationError(f"Longer than {self.max_bytes} bytes when serialized.")
        return text.decode()

    def _check_shape(self, value):
        keys = 0
        level = [value]
        for _level in range(self.max_depth):
            nested = []
            for container in level:
                children = container.values() if container.__class__ is dict else container
                if container.__class__ is dict:
                    keys += len(container)
                nested.extend(c for c in children if c.__class__ is dict or c.__class__ is list)
            if keys > self.max_keys:
                raise ValidationError(f"More than {self.max_keys} keys.")
            if not nested:
                return
            level = nested
        raise ValidationError(f"Nested deeper than {self.max_depth} levels.")


class RecordSchema(Schema):
    """Base of the record schema: the rules that do not depend on configured limits."""

    class Meta:
        unknown = RAISE  # an unknown field is an error that names it

    error_messages = {"type": "A log record must be a JSON object."}


def record_schema(config):
    """A schema instance that loads a list of records under the configured limits."""
    record_fields = {
        "timestamp": Timestamp(config["MAX_FUTURE_SKEW"], allow_none=True),
        "service": BoundedString(128, required=True),
        "severity": Severity(required=True),
        "message": Message(config["MAX_MESSAGE_BYTES"], required=True),
        "host": BoundedString(255, allow_none=True),
        "trace_id": HexId(32, allow_none=True),
        "span_id": HexId(16, allow_none=True),
        "attributes": Attributes(
            config["MAX_ATTRIBUTES_KEYS"],
            config["MAX_ATTRIBUTES_DEPTH"],
            config["MAX_ATTRIBUTES_BYTES"],
            allow_none=True,
        ),
        "event_id": BoundedString(128, allow_none=True),
    }
    return RecordSchema.from_dict(record_fields, name="LogRecordSchema")(many=True)
