"""Who is calling: the API key a request presents, checked against the store, and the scope
each blueprint needs (see ``collector.keys`` for keys and scopes)."""

from flask import g, request

from ..errors import Forbidden, StorageUnavailable, Unauthenticated
from ..keys import ANONYMOUS, LAST_USED_RESOLUTION, Caller, hash_key
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
    authenticator = Authenticator(store, app.config["AUTH_REQUIRED"])
    scopes = app.extensions["scopes"] = {}  # blueprint name -> the scope its requests need

    @app.before_request
    def check_scope():
        scope = scopes.get(request.blueprint)
        if scope is None:  # open: health probes, documentation
            return
        caller = authenticator.caller(presented_key())
        if not caller.may(scope):
            raise Forbidden("insufficient_scope", f"this API key lacks the {scope!r} scope",
                            required_scope=scope)
        g.caller = caller


def protect(app, blueprint, scope):
    """Let only callers with ``scope`` use ``blueprint``'s endpoints."""
    app.extensions["scopes"][blueprint.name] = scope


def current_caller():
    """The Caller of this request, set by its blueprint's ``protect``."""
    return g.caller


def presented_key():
    """The key the request presents, or None."""
    # Another scheme (a proxy's Basic credentials, say) is not meant for the
    # collector: it counts as no key at all.
    scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        if not key.strip():
            raise Unauthenticated("invalid_api_key", "the Authorization header has no key")
        return key.strip()
    key = request.headers.get("X-API-Key")
    if key is not None and not key.strip():
        raise Unauthenticated("invalid_api_key", "the X-API-Key header is empty")
    return None if key is None else key.strip()
