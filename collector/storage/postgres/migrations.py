"""The PostgreSQL schema: ordered migrations, each applied once, recorded in ``schema_version``.

Records are range-partitioned by day on their timestamp (see ``partitions``); every
uniqueness the collector needs across partitions ((service, event_id), idempotency keys)
lives in an unpartitioned table, since a partitioned table's unique keys must include
the partition key.
"""

import time

from .db import database, transaction

# One text the full-text index and the queries both go through (collector_fts_text): accents
# removed, lower case, every run of characters that is neither letter nor digit a space, so
# that words split where SQLite's unicode61 tokenizer splits them (IPs, paths, ids).
_FTS_TEXT = r"""CREATE OR REPLACE FUNCTION collector_fts_text(text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT lower(regexp_replace(public.unaccent('public.unaccent'::regdictionary, $1),
                                      '[^[:alnum:]]+', ' ', 'g')) $$"""

MIGRATIONS = [
    (
        1,
        "records partitioned by day, event ids, idempotency keys, API keys, rate buckets,"
        " the audit chain and its head, hourly counts, patterns, the prune schedule",
        [
            "CREATE EXTENSION IF NOT EXISTS unaccent SCHEMA public",
            _FTS_TEXT,
            # attributes: json keeps the text exactly as the audit chain hashed it (jsonb
            # would reorder keys and respace it); filters read it as jsonb.
            """CREATE TABLE log_record (
                id bigint NOT NULL,
                received_at bigint NOT NULL,
                timestamp bigint NOT NULL,
                service text NOT NULL,
                severity text NOT NULL,
                severity_rank smallint NOT NULL,
                message text NOT NULL,
                host text,
                trace_id text,
                span_id text,
                attributes json,
                event_id text,
                api_key_id integer,
                chain bytea NOT NULL
            ) PARTITION BY RANGE (timestamp)""",
            "CREATE INDEX log_record_id ON log_record (id)",
            "CREATE INDEX log_record_timestamp_id ON log_record (timestamp, id)",
            "CREATE INDEX log_record_service_timestamp ON log_record (service, timestamp, id)",
            "CREATE INDEX log_record_severity_rank_timestamp"
            " ON log_record (severity_rank, timestamp)",
            "CREATE INDEX log_record_trace_id ON log_record (trace_id) WHERE trace_id IS NOT NULL",
            "CREATE INDEX log_record_message ON log_record"
            " USING gin (to_tsvector('simple', collector_fts_text(message)))",
            # (service, event_id) of every stored record with one: the dedup across partitions.
            """CREATE TABLE event_key (
                service text NOT NULL,
                event_id text NOT NULL,
                PRIMARY KEY (service, event_id)
            )""",
            """CREATE TABLE idempotency_key (
                key text PRIMARY KEY,
                request_hash text NOT NULL,
                created_at bigint NOT NULL,
                outcome text NOT NULL
            )""",
            "CREATE INDEX idempotency_key_created_at ON idempotency_key (created_at)",
            """CREATE TABLE api_key (
                id serial PRIMARY KEY,
                name text NOT NULL,
                key_hash text NOT NULL UNIQUE,
                scopes text NOT NULL,
                services text,
                rate_limit double precision,
                created_at bigint NOT NULL,
                last_used_at bigint,
                revoked_at bigint
            )""",
            "CREATE UNIQUE INDEX api_key_active_name ON api_key (name) WHERE revoked_at IS NULL",
            """CREATE TABLE rate_bucket (
                api_key_id integer PRIMARY KEY,
                tokens double precision NOT NULL,
                updated_at bigint NOT NULL
            )""",
            # The one row every writer locks to take the next ids: gapless, in commit order.
            """CREATE TABLE chain_head (
                id integer PRIMARY KEY CHECK (id = 1),
                last_id bigint NOT NULL,
                link bytea NOT NULL
            )""",
            "INSERT INTO chain_head (id, last_id, link) VALUES (1, 0, '\\x"
            + "00" * 32 + "'::bytea)",
            """CREATE TABLE audit_gap (
                first_id bigint PRIMARY KEY,
                last_id bigint NOT NULL,
                link bytea NOT NULL
            )""",
            """CREATE TABLE audit_checkpoint (
                id bigserial PRIMARY KEY,
                created_at bigint NOT NULL,
                after_id bigint NOT NULL,
                pruned bigint NOT NULL,
                gaps_digest bytea NOT NULL,
                link bytea NOT NULL
            )""",
            "CREATE INDEX audit_checkpoint_after_id ON audit_checkpoint (after_id, id)",
            """CREATE TABLE record_count (
                hour bigint NOT NULL,
                service text NOT NULL,
                severity_rank smallint NOT NULL,
                count bigint NOT NULL,
                PRIMARY KEY (hour, service, severity_rank)
            )""",
            """CREATE TABLE prune_schedule (
                id integer PRIMARY KEY CHECK (id = 1),
                state text NOT NULL
            )""",
            """CREATE TABLE miner_state (
                id integer PRIMARY KEY CHECK (id = 1),
                generation text NOT NULL,
                mined_id bigint NOT NULL,
                updated_at bigint NOT NULL
            )""",
            """CREATE TABLE pattern_cluster (
                service text NOT NULL,
                cluster_id bigint NOT NULL,
                created text NOT NULL,
                template text NOT NULL,
                places text NOT NULL,
                PRIMARY KEY (service, cluster_id)
            )""",
            """CREATE TABLE pattern (
                id bigint PRIMARY KEY,
                service text NOT NULL,
                cluster_id bigint NOT NULL,
                key text NOT NULL,
                canonical_id bigint NOT NULL,
                text text NOT NULL,
                first_seen bigint,
                last_seen bigint,
                records bigint NOT NULL
            )""",
            "CREATE INDEX pattern_canonical_id ON pattern (canonical_id)",
            """CREATE TABLE record_pattern (
                record_id bigint PRIMARY KEY,
                pattern_id bigint NOT NULL
            )""",
            "CREATE INDEX record_pattern_pattern_id ON record_pattern (pattern_id, record_id)",
        ],
    ),
]

LATEST_VERSION = MIGRATIONS[-1][0]
# pg_advisory_xact_lock keys of the collector (the prune and miner locks are session ones).
MIGRATE_LOCK, PRUNE_LOCK, MINER_LOCK = 0x636F6C01, 0x636F6C02, 0x636F6C03


def current_version():
    """The newest migration applied to the database, 0 for an empty one."""
    if database.execute_sql("SELECT to_regclass('schema_version')").fetchone()[0] is None:
        return 0
    return database.execute_sql("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0


def migrate():
    """Apply every pending migration; the versions applied (none when up to date)."""
    applied = []
    with transaction() as connection:
        # Two concurrent runs (two instances starting) apply each migration once.
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version"
                           " (version integer PRIMARY KEY, applied_at bigint NOT NULL)")
        for version, _description, statements in MIGRATIONS:
            if current_version() >= version:
                continue
            for statement in statements:
                connection.execute(statement)
            connection.execute("INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)",
                               (version, time.time_ns() // 1000))
            applied.append(version)
    return applied
