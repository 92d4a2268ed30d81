"""API keys: who may ingest, read and administer.

A key is a random token shown once, at creation; the database keeps its
SHA-256 only. A request presents it as ``Authorization: Bearer <key>`` or
``X-API-Key: <key>`` and is looked up by that hash, so no comparison of secrets
can leak timing. Scopes: ``ingest`` (POST /ingest), ``read`` (the /logs
endpoints and /metrics), ``admin`` (everything, /audit too). Health probes and
the API documentation need no key.

With AUTH_REQUIRED off (a collector that listens on loopback only, by default)
a request without a key may do everything; a key that is presented is still
checked, and its restrictions apply.
"""

import hashlib
import math
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import current_app, g, request

from .db import database, write_transaction
from .errors import APIError
from .models import ApiKey
from .times import now_micros

SCOPES = ("ingest", "read", "admin")
TOKEN_PREFIX = "clk_"  # makes a leaked key easy to recognise, e.g. by secret scanners
FIRST_KEY_NAME = "admin"
LAST_USED_RESOLUTION = 60_000_000  # µs: a key's last use is recorded to the minute
MIN_RATE_LIMIT = 0.001  # records a second: one every 17 minutes


class ApiKeyError(ValueError):
    """A key cannot be created or revoked; the message says why."""


@dataclass(frozen=True)
class Caller:
    """Who sent the request: an API key, or no one when no key was needed."""

    key_id: int | None
    name: str
    scopes: frozenset
    services: frozenset | None = None  # the services it may write; None: any
    rate_limit: float | None = None  # records a second; None: no limit

    def may(self, scope):
        return scope in self.scopes or "admin" in self.scopes


ANONYMOUS = Caller(None, "anonymous", frozenset(SCOPES))


def hash_key(key):
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(name, scopes, services=None, rate_limit=None):
    """Create a key; return (ApiKey, the key itself), which is not stored and not shown again."""
    name = name.strip()
    if not name or len(name) > 64 or "," in name:
        raise ApiKeyError("a key needs a name of 1 to 64 characters without commas")
    scopes = sorted({scope.lower() for scope in _words(scopes)})
    unknown = [scope for scope in scopes if scope not in SCOPES]
    if not scopes or unknown:
        raise ApiKeyError(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(scopes)}")
    services = sorted(set(_words(services))) if services else None
    if rate_limit is not None and not MIN_RATE_LIMIT <= rate_limit < math.inf:
        raise ApiKeyError(f"the rate limit must be at least {MIN_RATE_LIMIT} records a second")
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_transaction():
        if ApiKey.active().where(ApiKey.name == name).exists():
            raise ApiKeyError(f"an active key is already named {name!r}; revoke it first")
        api_key = ApiKey.create(
            name=name, key_hash=hash_key(key), scopes=",".join(scopes),
            services=",".join(services) if services else None, rate_limit=rate_limit,
            created_at=now_micros(),
        )
    return api_key, key


def revoke_key(name):
    """Revoke the active key named ``name``; it stops working at once."""
    with write_transaction():
        revoked = (ApiKey.update(revoked_at=now_micros())
                   .where(ApiKey.name == name, ApiKey.revoked_at.is_null()).execute())
    if not revoked:
        raise ApiKeyError(f"no active key is named {name!r}")


def create_first_key(key_file):
    """When no key was ever created, create an admin key and write it to ``key_file``.

    The file is readable by its owner only. Returns its path, or None when keys
    exist. This is how the first key reaches the operator of a collector that
    requires keys: it never goes to a log.
    """
    if ApiKey.select().exists():
        return None
    try:
        _api_key, key = create_key(FIRST_KEY_NAME, "admin")
    except ApiKeyError:  # another start created it meanwhile
        return None
    path = Path(key_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(path.name + ".new")
    staging.unlink(missing_ok=True)
    # Created readable by its owner only, before the key is written to it.
    with open(staging, "x", opener=lambda name, flags: os.open(name, flags, 0o600)) as out:
        out.write(key + "\n")
    staging.replace(path)
    return path


def _words(text):
    """A comma-separated list as its words."""
    return [word.strip() for word in text.split(",") if word.strip()]


REQUIRED_SCOPES = {}  # blueprint name -> the scope its requests need


def protect(blueprint, scope):
    """Let only callers with ``scope`` use ``blueprint``'s endpoints."""
    REQUIRED_SCOPES[blueprint.name] = scope
    blueprint.before_request(_require(scope))


def _require(scope):
    def check():
        caller = authenticate()
        if not caller.may(scope):
            raise APIError(403, "insufficient_scope",
                           f"this API key lacks the {scope!r} scope", required_scope=scope)
        g.caller = caller

    return check


def current_caller():
    """The Caller of this request, set by the blueprint's ``protect``."""
    return g.caller


def authenticate():
    """The Caller whose key the request presents; ANONYMOUS when none is needed, else 401."""
    key = _presented_key()
    if key is None:
        if current_app.config["AUTH_REQUIRED"]:
            raise _unauthorized("missing_api_key", "this endpoint needs an API key: send"
                                " 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        return ANONYMOUS
    found = ApiKey.active().where(ApiKey.key_hash == hash_key(key)).first()
    if found is None:
        raise _unauthorized("invalid_api_key", "the API key is unknown or revoked")
    _note_use(found.id)
    return Caller(
        found.id, found.name, frozenset(found.scopes.split(",")),
        frozenset(found.services.split(",")) if found.services else None, found.rate_limit,
    )


def _presented_key():
    # Another scheme (a proxy's Basic credentials, say) is not meant for the
    # collector: it counts as no key at all.
    scheme, _, key = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        if not key.strip():
            raise _unauthorized("invalid_api_key", "the Authorization header has no key")
        return key.strip()
    key = request.headers.get("X-API-Key")
    if key is not None and not key.strip():
        raise _unauthorized("invalid_api_key", "the X-API-Key header is empty")
    return None if key is None else key.strip()


def _unauthorized(error, message):
    return APIError(401, error, message, headers={"WWW-Authenticate": 'Bearer realm="collector"'})


_last_noted = {}  # key id -> when this worker last recorded its use (µs)
_noting = threading.Lock()


def _note_use(key_id):
    """Record the key's last use, at most once a minute per worker."""
    now = now_micros()
    with _noting:
        if now - _last_noted.get(key_id, 0) < LAST_USED_RESOLUTION:
            return
        _last_noted[key_id] = now
    try:
        with write_transaction():
            database.execute_sql(
                "UPDATE api_key SET last_used_at = ? WHERE id = ? AND"
                " (last_used_at IS NULL OR last_used_at < ?)",
                (now, key_id, now - LAST_USED_RESOLUTION),
            )
    except APIError:  # the database is busy or full: the request matters more
        with _noting:
            _last_noted.pop(key_id, None)
