"""API keys: who may ingest, read and administer.

A key is a random token shown once, at creation; the database keeps its
SHA-256 only, and a request's key is found by that hash, so no comparison of
secrets can leak timing. Scopes: ``ingest`` (POST /ingest), ``read`` (the /logs
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
from dataclasses import dataclass
from pathlib import Path

from .times import now_micros

SCOPES = ("ingest", "read", "admin")
TOKEN_PREFIX = "clk_"  # makes a leaked key easy to recognise, e.g. by secret scanners
FIRST_KEY_NAME = "admin"
LAST_USED_RESOLUTION = 60_000_000  # µs: a key's last use is recorded to the minute
MIN_RATE_LIMIT = 0.001  # records a second: one every 17 minutes
MAX_RATE_LIMIT = 1_000_000  # records a second: more than a collector stores; a typo above it


class ApiKeyError(ValueError):
    """A key cannot be created or revoked; the message says why, ``field`` of which argument."""

    def __init__(self, message, field=None, value=None):
        super().__init__(message)
        self.field = field
        self.value = value


@dataclass(frozen=True)
class ApiKey:
    """A stored key, as the storage returns it (never the key itself)."""

    id: int
    name: str
    scopes: str  # comma-separated: ingest, read, admin
    services: str | None  # comma-separated services it may write; None: any
    rate_limit: float | None  # records a second it may write; None: no limit
    created_at: int
    last_used_at: int | None = None  # to the minute
    revoked_at: int | None = None


@dataclass(frozen=True)
class Caller:
    """Who sent the request: an API key, or no one when no key was needed."""

    key_id: int | None
    name: str
    scopes: frozenset
    services: frozenset | None = None  # the services it may write; None: any
    rate_limit: float | None = None  # records a second; None: no limit

    @classmethod
    def of(cls, key):
        """The Caller presenting the stored ``key``."""
        return cls(
            key.id, key.name, frozenset(key.scopes.split(",")),
            frozenset(key.services.split(",")) if key.services else None, key.rate_limit,
        )

    def may(self, scope):
        return scope in self.scopes or "admin" in self.scopes


ANONYMOUS = Caller(None, "anonymous", frozenset(SCOPES))


def hash_key(key):
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(store, name, scopes, services=None, rate_limit=None):
    """Create a key in ``store``; return (ApiKey, the key itself), which is not stored."""
    given = name
    name = name.strip()
    if not name or len(name) > 64 or "," in name:
        raise ApiKeyError("a name of 1 to 64 characters without commas", "name", given)
    words = sorted({scope.lower() for scope in _words(scopes)})
    if not words or any(scope not in SCOPES for scope in words):
        raise ApiKeyError(f"comma-separated scopes among {', '.join(SCOPES)}", "scopes", scopes)
    if services is not None:
        given, services = services, sorted(set(_words(services)))
        if not services:  # an empty list is not "any": leave it out for that
            raise ApiKeyError("comma-separated service names; leave it out for any service",
                              "services", given)
    rate_limit = _rate(rate_limit)
    key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    api_key = store.create_key(
        name=name, key_hash=hash_key(key), scopes=",".join(words),
        services=",".join(services) if services else None, rate_limit=rate_limit,
        created_at=now_micros(),
    )
    return api_key, key


def create_first_key(store, key_file):
    """When no key was ever created, create an admin key and write it to ``key_file``.

    The file is readable by its owner only. Returns its path, or None when keys
    exist. This is how the first key reaches the operator of a collector that
    requires keys: it never goes to a log.
    """
    if store.any_key_created():
        return None
    try:
        _api_key, key = create_key(store, FIRST_KEY_NAME, "admin")
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


def _rate(given):
    """A rate limit (text or a number) as a float within the bounds, or None for none."""
    if given is None:
        return None
    try:
        rate = float(given)
    except ValueError:
        rate = math.nan
    if not MIN_RATE_LIMIT <= rate <= MAX_RATE_LIMIT:  # also refuses nan and inf
        raise ApiKeyError(f"records a second, a number from {MIN_RATE_LIMIT:g} to"
                          f" {MAX_RATE_LIMIT:,}", "rate_limit", given)
    return rate


def _words(text):
    """A comma-separated list as its words."""
    return [word.strip() for word in text.split(",") if word.strip()]
