"""Who is calling: the API key a request presents, checked against the store, and the scope
each blueprint needs (see ``collector.keys`` for keys and scopes)."""

import base64
import binascii

from flask import current_app, g, request

from ..errors import Forbidden, StorageUnavailable, Unauthenticated
from ..ingest.protocols.base import KEY_SCHEMES
from ..keys import ANONYMOUS, LAST_USED_RESOLUTION, TOKEN_PREFIX, Caller, hash_key
from ..throttle import Throttle
from ..times import now_micros


class Authenticator:
    """Finds the Caller of a request in ``store``; keys are needed when ``required``."""

    def __init__(self, store, required):
        self.store = store
        self.required = required
        self._noted = Throttle(LAST_USED_RESOLUTION)  # a key's last use, once a minute a worker

    def caller(self, key):
        """The Caller presenting ``key`` (None: no key was presented)."""
        if key is None:
            if self.required:
                raise Unauthenticated("missing_api_key", "this endpoint needs an API key: send"
                                      " 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
            return ANONYMOUS
        found = self.store.active_key(hash_key(key))
        if found is None:
            raise Unauthenticated("invalid_api_key", "the API key is unknown or revoked")
        self._note_use(found.id)
        return Caller.of(found)

    def _note_use(self, key_id):
        now = now_micros()
        if not self._noted.due(now, key_id):
            return
        try:
            self.store.note_key_use(key_id, now, LAST_USED_RESOLUTION)
        except StorageUnavailable:  # the database is busy or full: the request matters more
            self._noted.forget(key_id)


def init_app(app, store):
    """Check the key of every request to a protected blueprint against ``store``.

    AUTH_REQUIRED says whether a key is needed at all.
    """
    app.extensions["auth"] = Authenticator(store, app.config["AUTH_REQUIRED"])
    app.extensions["scopes"] = {}  # blueprint name -> the scope its requests need
    app.extensions["key_schemes"] = {}  # blueprint name -> its Authorization schemes

    @app.before_request
    def check_scope():
        authorize(request.blueprint)


def authorize(blueprint_name):
    """Check this request's key as ``blueprint_name``'s endpoints need it; set its Caller."""
    scope = current_app.extensions["scopes"].get(blueprint_name)
    if scope is None:  # open: health probes, documentation, the explorer's page
        return
    schemes = current_app.extensions["key_schemes"][blueprint_name]
    caller = current_app.extensions["auth"].caller(presented_key(schemes))
    if not caller.may(scope):
        raise Forbidden("insufficient_scope", f"this API key lacks the {scope!r} scope",
                        required_scope=scope)
    g.caller = caller


def protect(app, blueprint, scope, schemes=KEY_SCHEMES):
    """Let only callers with ``scope`` use ``blueprint``'s endpoints.

    ``schemes`` are the Authorization schemes that present a key there (see
    ``presented_key``).
    """
    app.extensions["scopes"][blueprint.name] = scope
    app.extensions["key_schemes"][blueprint.name] = schemes


def current_caller():
    """The Caller of this request, set by its blueprint's ``protect``."""
    return g.caller


def presented_key(schemes=KEY_SCHEMES):
    """The key the request presents, or None.

    ``Authorization: <scheme> <credentials>`` for a scheme of ``schemes`` (``bearer``,
    ``apikey``, ``splunk``: the key itself; ``basic``: the key as the password), else
    the ``X-API-Key`` header.
    """
    # Another scheme (a proxy's Basic credentials in front of /ingest, say) is not meant
    # for the collector: it counts as no key at all.
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    scheme = scheme.lower()
    if scheme in schemes:
        key = _READERS.get(scheme, str.strip)(credentials.strip())
        if not key:
            raise Unauthenticated("invalid_api_key",
                                  f"the Authorization header's {scheme} credentials hold no key")
        return key
    key = request.headers.get("X-API-Key")
    if key is not None and not key.strip():
        raise Unauthenticated("invalid_api_key", "the X-API-Key header is empty")
    return None if key is None else key.strip()


def _basic_password(credentials):
    """The password of Basic credentials (the user name when the password is empty)."""
    try:
        user, _, password = base64.b64decode(credentials, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("invalid_api_key",
                              "the Authorization header's Basic credentials are not base64 "
                              "of user:password") from None
    return (password or user).strip()


def _api_key(credentials):
    """An ``ApiKey`` credential: the key, or Elasticsearch's base64 of ``id:key``."""
    if credentials.startswith(TOKEN_PREFIX):
        return credentials
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return credentials
    return decoded.partition(":")[2].strip() if ":" in decoded else credentials


_READERS = {"basic": _basic_password, "apikey": _api_key}
