"""Flask's JSON through orjson: several times faster than the stdlib on large batches."""

import orjson
from flask import current_app
from flask.json.provider import JSONProvider

# Validation errors are keyed by record index, an int.
_OPTIONS = orjson.OPT_NON_STR_KEYS


class OrjsonProvider(JSONProvider):
    """Serialize responses and parse JSON request bodies with orjson."""

    def dumps(self, obj, **kwargs):
        return orjson.dumps(obj, option=_OPTIONS).decode()

    def loads(self, s, **kwargs):
        return orjson.loads(s)

    def response(self, *args, **kwargs):
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(dumps(obj), mimetype="application/json")


def dumps(obj):
    """``obj`` as JSON bytes, ending in a newline as a line of text does (for curl's prompt)."""
    return orjson.dumps(obj, option=_OPTIONS | orjson.OPT_APPEND_NEWLINE)


def respond(status, body, headers=None, content_type="application/json"):
    """A response of ``status`` whose body is ``body``: bytes as they are, else JSON."""
    if not isinstance(body, bytes | str):
        body = dumps(body)
    return current_app.response_class(body, status=status, headers=headers,
                                      content_type=content_type)
