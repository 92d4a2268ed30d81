"""The embedded backend: one SQLite file in WAL mode, shared by every worker of one machine.

All of SQLite lives in this folder: the pragmas and write transactions
(``database``), the tables (``models``, ``migrations``), the write path's SQL
(``writes``), the audit chain's (``chain``), the read queries (``search``), keys,
maintenance and the prune lock file.
"""

import contextlib
import os

from .. import pattern_summaries
from ..base import Store
from . import chain, files, keys, maintenance, patterns, prune_lock, search
from .db import configure, database, storage_errors, write_transaction
from .files import private_file
from .migrations import LATEST_VERSION, current_version, migrate
from .models import LogRecord
from .patterns import PatternRow, RecordPattern
from .writes import SqliteWriteTransaction


class SqliteStore(Store):
    """The Store on the SQLite file ``path``."""

    latest_version = LATEST_VERSION

    def __init__(self, path, config):
        self.path = path
        self.patterns_path = patterns.path_beside(path)
        self.lock_timeout = config["WRITE_LOCK_TIMEOUT"]
        configure(path, config)

    # Lifecycle

    def session(self):
        return database.connection_context()

    def release(self):
        if not database.is_closed():
            database.close()

    def close(self):
        database.close_all()

    def describe(self):
        return self.path

    def exists(self):
        return os.path.exists(self.path)

    def create(self):
        for path in (self.path, self.patterns_path):
            private_file(path)

    def exposure(self):
        return files.exposure(self.path, self.patterns_path)

    # Schema

    def migrate(self):
        applied = migrate()
        patterns.migrate(self.patterns_path, self.lock_timeout)  # derived data: not versioned here
        return applied

    def schema_version(self):
        with storage_errors():
            return current_version()

    # Writes

    @contextlib.contextmanager
    def write(self, committed=None):
        with write_transaction(committed) as connection:
            yield SqliteWriteTransaction(connection)

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
        with storage_errors(), self._patterns():
            found = search.stored(search.record_query(record_id))
        return found[0] if found else None

    def page(self, where, order, after, limit, max_id):
        with storage_errors(), self._patterns():
            return search.stored(search.page_query(where, order, after, limit, max_id))

    def follow(self, where, after_id, max_id, limit):
        with storage_errors(), self._patterns():
            return search.stored(search.follow_query(where, after_id, max_id, limit))

    def counts(self, where, by, interval):
        with storage_errors(), self._patterns(where.pattern is not None):
            return search.counts(where, by, interval)

    def patterns(self, where, new_since, span, limit):
        with storage_errors(), self._patterns():
            return pattern_summaries.summaries(
                (LogRecord, RecordPattern, PatternRow), search.where_clauses(where), new_since,
                span, limit)

    def _patterns(self, needed=True):
        return patterns.attached(self.patterns_path) if needed else contextlib.nullcontext()

    # Patterns

    def pattern_miner(self):
        return patterns.miner_ledger(self.path, self.patterns_path, self.lock_timeout)

    def mining_progress(self):
        with storage_errors():
            return patterns.progress(self.patterns_path)

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
        with storage_errors(), database.atomic():  # one snapshot from the first record to the last
            return chain.verify(database.connection(), on_record)

    # Maintenance

    def count_expired(self, retention, now):
        return maintenance.count_expired(retention, now)

    def prune(self, retention, now, on_deleted=lambda count: None):
        return maintenance.prune(retention, now, on_deleted)

    def prune_schedule(self):
        return prune_lock.held(self.path)

    def peek_prune_schedule(self):
        return prune_lock.peek(self.path)

    def backup(self, directory, on_progress=lambda copied, total: None):
        return maintenance.backup(directory, self.path, on_progress)

    def latest_backup(self, directory):
        return maintenance.latest_backup(directory, self.path)

    def restore(self, source):
        maintenance.restore(source, self.path)
        patterns.reset(self.patterns_path, self.lock_timeout)  # mined again, from the first

    def stats(self):
        return maintenance.stats(self.path)

    @contextlib.contextmanager
    def dump(self):
        """Everything a move to another backend carries (see maintenance.dump), in one
        snapshot held for the block."""
        with storage_errors(), database.connection_context(), database.atomic():
            yield maintenance.dump(database.connection())

    def gauges(self):
        return maintenance.gauges(self.path)

    def readiness(self, min_free_mb):
        return maintenance.readiness(self.path, min_free_mb)

