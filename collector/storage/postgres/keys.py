"""API keys in PostgreSQL: created, revoked, looked up by hash, their last use noted."""

import peewee as pw

from ...keys import ApiKey as Key
from ...keys import ApiKeyError
from .db import database, storage_errors, transaction
from .models import ApiKey


def _key(model):
    return Key(model.id, model.name, model.scopes, model.services, model.rate_limit,
               model.created_at, model.last_used_at, model.revoked_at)


def create(name, key_hash, scopes, services, rate_limit, created_at):
    """Store a new key; ApiKeyError when an active key has the name."""
    try:
        with transaction():
            model = ApiKey.create(name=name, key_hash=key_hash, scopes=scopes, services=services,
                                  rate_limit=rate_limit, created_at=created_at)
    except pw.IntegrityError:  # api_key_active_name: decided by the index, across instances
        raise ApiKeyError(f"an active key is already named {name!r}; revoke it first") from None
    return _key(model)


def revoke(name, now):
    """Revoke the active key ``name``; ApiKeyError when there is none."""
    with transaction():
        revoked = (ApiKey.update(revoked_at=now)
                   .where(ApiKey.name == name, ApiKey.revoked_at.is_null()).execute())
    if not revoked:
        raise ApiKeyError(f"no active key is named {name!r}")


def active(key_hash):
    """The active key with ``key_hash``, or None."""
    found = ApiKey.active().where(ApiKey.key_hash == key_hash).first()
    return None if found is None else _key(found)


def every():
    """Every key, revoked ones too, oldest first."""
    with storage_errors():
        return [_key(model) for model in ApiKey.select().order_by(ApiKey.id)]


def any_created():
    """Whether a key was ever created."""
    with storage_errors():
        return ApiKey.select().exists()


def note_use(key_id, now, resolution):
    """Record the key's use at ``now`` unless one within ``resolution`` µs is recorded."""
    with storage_errors():
        database.execute_sql(
            "UPDATE api_key SET last_used_at = %s WHERE id = %s AND"
            " (last_used_at IS NULL OR last_used_at < %s)", (now, key_id, now - resolution))
