"""Fixtures: the app on a throwaway database, migrated, and its test client.

The backend is SQLite (a temporary file) unless COLLECTOR_TEST_BACKEND=postgres: then
every app fixture gets a database of its own on the PostgreSQL server of
COLLECTOR_TEST_POSTGRES (``make test-postgres``), copied from a migrated template and
dropped afterwards. Tests that are SQLite's by nature skip there, saying why.
"""

import inspect
import itertools
import os

import pytest

from collector import create_app

BACKEND = os.environ.get("COLLECTOR_TEST_BACKEND", "sqlite")
# The server's maintenance database: the test databases are created and dropped from it.
POSTGRES_ADMIN_URL = os.environ.get("COLLECTOR_TEST_POSTGRES",
                                    "postgresql://postgres@127.0.0.1:5432/postgres")
# What a test's source names when it reaches into SQLite itself (its file, its tables
# through the sqlite backend's database object, the sqlite3 module).
_SQLITE_WORDS = ("sqlite", "database.execute_sql", "db_path", "-wal", "wal_")


def postgres_admin():
    """An autocommit connection to the test server's maintenance database, or None."""
    try:
        import psycopg

        connection = psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3, autocommit=True)
    except Exception:  # no driver, no server: the PostgreSQL tests skip
        return None
    return connection


def pytest_collection_modifyitems(config, items):
    if BACKEND != "postgres":
        return
    for item in items:
        if item.get_closest_marker("postgres"):
            continue
        if item.get_closest_marker("sqlite_only"):
            reason = item.get_closest_marker("sqlite_only").args[0]
        else:
            try:
                source = inspect.getsource(item.function)
            except (OSError, TypeError):
                continue
            words = [word for word in _SQLITE_WORDS if word in source]
            if not words:
                continue
            reason = f"reaches into SQLite itself ({', '.join(words)})"
        item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only(reason): the test is SQLite's by nature")
    config.addinivalue_line("markers", "postgres: the test needs a PostgreSQL server")


class PostgresDatabases:
    """Throwaway databases on the test server, each a copy of one migrated template."""

    def __init__(self, admin):
        self.admin = admin
        self.prefix = f"collector_test_{os.getpid()}"
        self.template = f"{self.prefix}_template"
        self.counter = itertools.count(1)
        self.created = []
        self.kept = []
        self._drop(self.template)
        self.admin.execute(f"CREATE DATABASE {self.template}")
        app = create_app({"TESTING": True, "DATABASE_URL": self.url(self.template)})
        store = app.extensions["store"]
        with store.session():
            store.migrate()
        store.close()

    def url(self, name):
        return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    def new(self, until_session_end=False):
        """The URL of a new database, migrated, dropped after the test (or the session)."""
        name = f"{self.prefix}_{next(self.counter)}"
        self.admin.execute(f"CREATE DATABASE {name} TEMPLATE {self.template} STRATEGY FILE_COPY")
        (self.kept if until_session_end else self.created).append(name)
        return self.url(name)

    def drop_created(self):
        while self.created:
            self._drop(self.created.pop())

    def _drop(self, name):
        self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def close(self):
        self.drop_created()
        while self.kept:
            self._drop(self.kept.pop())
        self._drop(self.template)
        self.admin.close()


@pytest.fixture(scope="session")
def postgres_databases():
    """The session's PostgreSQL test databases; skips when no server answers."""
    admin = postgres_admin()
    if admin is None:
        pytest.skip(f"no PostgreSQL server answers at {POSTGRES_ADMIN_URL}"
                    " (set COLLECTOR_TEST_POSTGRES)")
    databases = PostgresDatabases(admin)
    yield databases
    databases.close()


@pytest.fixture
def postgres_url(postgres_databases):
    """A throwaway, migrated PostgreSQL database's URL, dropped after the test."""
    yield postgres_databases.new()
    from collector.storage.postgres.db import database

    database.close_all()
    postgres_databases.drop_created()


class ServerDatabases:
    """The databases of tests/server.py's servers (and helpers.create_key): the SQLite file a
    test names, or under COLLECTOR_TEST_BACKEND=postgres a throwaway PostgreSQL database
    standing for it, one per file, dropped at the session's end (module fixtures' servers
    outlive a test)."""

    request = None  # the session's, to reach its PostgreSQL databases
    urls = {}

    @classmethod
    def url(cls, database):
        """The URL of ``database``: a URL as it is, a SQLite file's path on the backend."""
        if "://" in str(database):
            return str(database)
        if BACKEND != "postgres":
            return f"sqlite:///{database}"
        if str(database) not in cls.urls:
            databases = cls.request.getfixturevalue("postgres_databases")
            cls.urls[str(database)] = databases.new(until_session_end=True)
        return cls.urls[str(database)]


@pytest.fixture(scope="session", autouse=True)
def server_databases(request):
    """Let the session's servers have their databases."""
    ServerDatabases.request = request
    yield ServerDatabases
    ServerDatabases.request = None
    ServerDatabases.urls.clear()


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "collector.db"


@pytest.fixture
def database_url(request, db_path):
    """The URL of the test's database on the backend under test."""
    if BACKEND == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{db_path}"


@pytest.fixture
def make_app(database_url):
    """Build an app on the test's database with some settings overridden."""
    apps = []

    def make(**overrides):
        app = create_app({"TESTING": True, "DATABASE_URL": database_url, **overrides})
        store = app.extensions["store"]
        with store.session():
            store.migrate()
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["store"].close()


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
    store = app.extensions["store"]

    def count():
        with store.session():
            return store.stats().records

    return count
