"""Section: the collector on PostgreSQL beside PostgreSQL's own limit, measured in the same run.

The limit is binary COPY of the same rows (linked into the chain) into the same schema,
1,000 rows a transaction, the chain's head locked and moved as the collector does; the
time the head is held per transaction is the chain lock's cost. Then 1,000-record batches
through one instance and through two instances (two gunicorns on one database), and
single records beside the bare-Flask floor. Skipped, with the reason in the table, when no
PostgreSQL answers at BENCH_POSTGRES.
"""

import itertools
import os
import statistics
import time

import psycopg

from collector import audit, create_app
from collector.storage.postgres import chain, partitions
from collector.storage.postgres.writes import COPY_SQL, COPY_TYPES

from . import loadgen
from .ingest import BATCH, MINIMAL, load_server
from .report import Row, target_row
from .server import BenchServer

ADMIN_URL = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGETS = {"batch_1000_vs_copy": 0.5, "single_record_vs_bare_flask": 0.5}


def postgres_section(bench):
    """Section: PostgreSQL's COPY limit, the chain lock's cost, one and two instances."""
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        reason = f"no PostgreSQL at BENCH_POSTGRES ({str(exc).strip().splitlines()[0]})"
        return {"skipped": reason}, [Row("PostgreSQL", f"skipped: {reason}")]
    made = []

    def fresh(name):
        database = f"collector_bench_{os.getpid()}_{name}"
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {database}")
        made.append(database)
        url = ADMIN_URL.rsplit("/", 1)[0] + "/" + database
        store = create_app({"DATABASE_URL": url}).extensions["store"]
        with store.session():
            store.migrate()
        store.close()
        return url

    try:
        limit = copy_limit(fresh("limit"), bench.rows, bench.mode.raw_rows)
        one = _drive(bench, [fresh("one")], BATCH)
        two_url = fresh("two")
        two = _drive(bench, [two_url, two_url], BATCH)
        single = _drive(bench, [fresh("single")], 1)
    finally:
        for database in made:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()
    floor = bench.results.get("http_floor", {}).get("requests_per_s")
    ratios = {"batch_1000_vs_copy": max(one, two) / limit["records_per_s"],
              "single_record_vs_bare_flask": single / floor if floor else None}
    figures = {"copy_limit": limit, "one_instance_records_per_s": one,
               "two_instances_records_per_s": two, "single_record_requests_per_s": single,
               "ratios": ratios}
    rows = [
        Row(f"binary COPY, {limit['records']:,} rows, 1,000 a transaction",
            f"{limit['records_per_s']:,.0f} records/s"),
        Row("  chain head held per 1,000-row transaction (median, max)",
            f"{limit['head_held_ms_median']:.1f} ms, {limit['head_held_ms_max']:.1f} ms"),
        Row("1,000 records/request, one instance: records/s", f"{one:,.0f}"),
        Row("1,000 records/request, two instances: records/s", f"{two:,.0f}"),
        Row("1 record/request, one instance: requests/s", f"{single:,.0f}"),
        target_row("1,000-record batches (best of one and two instances) / COPY limit",
                   ratios["batch_1000_vs_copy"], "{:.2f}", ">= 0.50",
                   lambda ratio: ratio >= TARGETS["batch_1000_vs_copy"]),
        target_row("1-record requests/s on PostgreSQL / bare Flask",
                   ratios["single_record_vs_bare_flask"], "{:.2f}", ">= 0.50",
                   lambda ratio: ratio >= TARGETS["single_record_vs_bare_flask"]),
    ]
    return figures, rows


def copy_limit(url, rows, count):
    """Records/s of binary COPY of ``count`` rows cycled from ``rows`` into ``url``'s schema,
    1,000 a transaction with the head locked and moved; and how long the head was held."""
    cycled = itertools.cycle(rows)
    held = []
    with psycopg.connect(url) as connection:
        with connection.transaction():
            chain.lock_head(connection)
            partitions.create(connection, partitions.days_of(row.timestamp for row in rows))
        started = time.perf_counter()
        for done in range(0, count, 1_000):
            chunk = list(itertools.islice(cycled, min(1_000, count - done)))
            with connection.transaction():
                locked = time.perf_counter()
                last_id, link = chain.lock_head(connection)
                linked = audit.link_rows(last_id, link, chunk)
                with connection.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
                    copy.set_types(COPY_TYPES)
                    for row in linked:
                        copy.write_row(row)
                chain.move_head(connection, linked[-1][0], linked[-1][-1])
            held.append(time.perf_counter() - locked)
        seconds = time.perf_counter() - started
    return {"records": count, "seconds": seconds, "records_per_s": count / seconds,
            "head_held_ms_median": 1000 * statistics.median(held),
            "head_held_ms_max": 1000 * max(held)}


def _drive(bench, urls, batch_size):
    """Records/s (requests/s for single records) through one gunicorn per URL, loaded at once."""
    servers = [BenchServer(bench.workdir, None, env={
        "DATABASE_URL": url, "PATTERN_MINER": "OFF",
        # Two gunicorns of one user would share its one control socket: none, here.
        "GUNICORN_CMD_ARGS": "--no-control-socket"})
        for url in urls]
    for server in servers:
        server.start()
    try:
        if len(servers) == 1:
            figures = load_server(bench, servers[0], bench.bodies(batch_size), batch_size,
                                  bench.mode.duration, MINIMAL)
            return figures["records_per_s"] if batch_size > 1 else figures["requests_per_s"]
        loads = [loadgen.Load(port=server.port, bodies=bench.bodies(batch_size),
                              records_per_body=batch_size, headers=MINIMAL,
                              clients=bench.mode.clients, warmup=bench.mode.warmup,
                              duration=bench.mode.duration) for server in servers]
        return sum(result.figures()["records_per_s"] for result in loadgen.run_many(loads))
    finally:
        for server in servers:
            server.stop()
