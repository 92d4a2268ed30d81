"""Fixtures: the app on a temporary SQLite file, migrated, and its test client."""

import pytest

from collector import create_app
from collector.storage.sqlite.db import database


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "collector.db"


@pytest.fixture
def make_app(db_path):
    """Build an app on the temporary database with some settings overridden."""
    apps = []

    def make(**overrides):
        app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{db_path}", **overrides})
        store = app.extensions["store"]
        with store.session():
            store.migrate()
        apps.append(app)
        return app

    yield make
    database.close_all()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def store(app):
    """The app's Store."""
    return app.extensions["store"]


@pytest.fixture
def stored_count(app):
    """The number of stored log records."""

    def count():
        with database.connection_context():
            return database.execute_sql("SELECT COUNT(*) FROM log_record").fetchone()[0]

    return count
