"""Plain helpers shared by the tests."""


def record(**fields):
    """A valid record, with ``fields`` replacing or adding to the defaults."""
    return {"service": "billing", "severity": "INFO", "message": "invoice 42 sent", **fields}


def create_key(database_path, name, scopes, services=None, rate_limit=None):
    """Create an API key in the database at ``database_path`` (migrated first); the key."""
    from collector import auth, create_app
    from collector.db import database
    from collector.migrations import migrate

    create_app({"DATABASE_URL": f"sqlite:///{database_path}"})
    with database.connection_context():
        migrate()
        _api_key, key = auth.create_key(name, scopes, services, rate_limit)
    database.close_all()
    return key
