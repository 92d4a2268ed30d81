"""The server backend: one PostgreSQL database shared by any number of collector instances.

All of PostgreSQL lives in this folder: connections, transactions and errors (``db``), the
schema (``migrations``) and its daily partitions (``partitions``), the write path's SQL
with binary COPY (``writes``), the audit chain's head and links (``chain``), the read
queries (``search``), keys, patterns and maintenance with its advisory locks.
"""

import contextlib
from pathlib import Path
from urllib.parse import urlsplit

from ...times import now_micros
from .. import pattern_summaries
from ..base import Store
from . import chain, keys, maintenance, patterns, search
from .db import configure, database, storage_errors, write_transaction
from .migrations import LATEST_VERSION, current_version, migrate
from .models import LogRecord, PatternRow, RecordPattern
from .writes import PostgresWriteTransaction


class PostgresStore(Store):
    """The Store on the PostgreSQL database that ``config["DATABASE_URL"]`` names."""

    latest_version = LATEST_VERSION

    def __init__(self, config):
        self.config = config
        self.url = config["DATABASE_URL"]
        self.lock_timeout = config["WRITE_LOCK_TIMEOUT"]
        configure(config)

    # Lifecycle

    @contextlib.contextmanager
    def session(self):
        # A server that cannot be reached is StorageUnavailable here too, not a driver error.
        with storage_errors(), database.connection_context():
            yield

    def release(self):
        if not database.is_closed():
            database.close()

    def close(self):
        database.close_all()

    def describe(self):
        parts = urlsplit(self.url)  # never the password
        user = f"{parts.username}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        return f"postgresql://{user}{parts.hostname or ''}{port}{parts.path}"

    def key_file(self):
        return Path("data") / "admin.key"  # the database is elsewhere: the working directory's

    # Schema

    def migrate(self):
        with storage_errors():
            applied = migrate()
        maintenance.partitions_ahead(self.config, now_micros())
        return applied

    def schema_version(self):
        with storage_errors():
            return current_version()

    # Writes

    @contextlib.contextmanager
    def write(self, committed=None):
        with write_transaction(self.lock_timeout, committed) as connection:
            yield PostgresWriteTransaction(connection)

    # Reads

    def newest_id(self):
        with storage_errors():
            newest = LogRecord.select(LogRecord.id).order_by(LogRecord.id.desc()).limit(1)
            return newest.scalar() or 0

    def newest_received_at(self):
        with storage_errors():
            return (LogRecord.select(LogRecord.received_at)
                    .order_by(LogRecord.id.desc()).limit(1).scalar())

    def record(self, record_id):
        with storage_errors():
            found = search.stored(search.record_query(record_id))
        return found[0] if found else None

    def page(self, where, order, after, limit, max_id):
        with storage_errors():
            return search.stored(search.page_query(where, order, after, limit, max_id))

    def follow(self, where, after_id, max_id, limit):
        with storage_errors():
            return search.stored(search.follow_query(where, after_id, max_id, limit))

    def counts(self, where, by, interval):
        with storage_errors():
            return search.counts(where, by, interval)

    def patterns(self, where, new_since, span, limit):
        with storage_errors():
            return pattern_summaries.summaries(
                (LogRecord, RecordPattern, PatternRow), search.where_clauses(where), new_since,
                span, limit)

    # Patterns

    def pattern_miner(self):
        return patterns.miner_ledger(self.config)

    def mining_progress(self):
        with storage_errors():
            return patterns.progress()

    # API keys

    def create_key(self, name, key_hash, scopes, services, rate_limit, created_at):
        return keys.create(name, key_hash, scopes, services, rate_limit, created_at)

    def revoke_key(self, name, now):
        keys.revoke(name, now)

    def active_key(self, key_hash):
        with storage_errors():
            return keys.active(key_hash)

    def keys(self):
        return keys.every()

    def any_key_created(self):
        return keys.any_created()

    def note_key_use(self, key_id, now, resolution):
        keys.note_use(key_id, now, resolution)

    # The audit chain

    def verify(self, on_record=lambda: None):
        with storage_errors(), database.atomic():
            connection = database.connection()
            # One snapshot from the first record to the last.
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return chain.verify(connection, on_record)

    # Maintenance

    def count_expired(self, retention, now):
        return maintenance.count_expired(retention, now)

    def prune(self, retention, now, on_deleted=lambda count: None):
        return maintenance.prune(retention, now, self.config, on_deleted)

    def prune_schedule(self):
        return maintenance.prune_schedule(self.config)

    def peek_prune_schedule(self):
        return maintenance.peek_schedule()

    def backup(self, directory, on_progress=lambda copied, total: None):
        return maintenance.backup(self.url, directory)

    def latest_backup(self, directory):
        return maintenance.latest_backup(self.url, directory)

    def restore(self, source):
        maintenance.restore(self.url, source)

    def stats(self):
        return maintenance.stats(self.describe())

    def load(self, dump, on_progress=lambda copied: None):
        """Copy a SQLite store's dump into this empty database (make migrate-to-postgres)."""
        maintenance.load(dump, on_progress)

    def gauges(self):
        return maintenance.gauges()

    def readiness(self, min_free_mb):
        return maintenance.readiness()
