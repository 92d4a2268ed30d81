"""Storage: the Store interface (``base``) and one folder per backend, holding all of its SQL.

``DATABASE_URL`` picks the backend; a new one is a sibling folder and a line here.
"""

from .base import Store


def open_store(config):
    """The Store that the DATABASE_URL of ``config`` names."""
    url = config["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"), config)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(config)
    raise ValueError(f"DATABASE_URL={url!r} names no storage backend")


__all__ = ["Store", "open_store"]
