"""The records' daily partitions: named by their UTC day, created ahead and on demand, listed.

There is no DEFAULT partition (it would keep ``DETACH ... CONCURRENTLY`` out and take every
stray row). A record of a day that has no partition yet (a late record older than the
oldest, or one beyond the newest) gets its day's partition in the write transaction that
stores it: the writer holds the chain's head, so two instances cannot race to create it,
and ATTACH PARTITION takes only a SHARE UPDATE EXCLUSIVE lock on the parent, which lets
readers and other statements on ``log_record`` go on. Whole days go by DROP at prune time.
"""

import datetime as dt

DAY = 86_400_000_000  # µs
_PREFIX = "log_record_"
_EPOCH = dt.date(1970, 1, 1)


def name(day):
    """The table of day ``day`` (days since the epoch)."""
    return f"{_PREFIX}{_EPOCH + dt.timedelta(days=day):%Y%m%d}"


def day_of(table):
    """The day (since the epoch) of a partition's table name."""
    return (dt.datetime.strptime(table.removeprefix(_PREFIX), "%Y%m%d").date() - _EPOCH).days


def days_of(timestamps):
    """The days that records of ``timestamps`` (µs) fall in."""
    return {timestamp // DAY for timestamp in timestamps}


def missing(connection, days):
    """Which of ``days`` have no partition."""
    names = {name(day): day for day in days}
    rows = connection.execute(
        "SELECT n FROM unnest(%s::text[]) n WHERE to_regclass(n) IS NULL", (list(names),))
    return sorted(names[found] for (found,) in rows)


def create(connection, days):
    """Create and attach the partitions of ``days`` that are missing (bounds are literals:
    DDL takes no bound parameters)."""
    for day in missing(connection, days):
        table, start = name(day), day * DAY
        connection.execute(f"CREATE TABLE {table} (LIKE log_record INCLUDING DEFAULTS)")
        # The constraint proves the bounds, so ATTACH skips its scan.
        connection.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_day"
                           f" CHECK (timestamp >= {start} AND timestamp < {start + DAY})")
        connection.execute(f"ALTER TABLE log_record ATTACH PARTITION {table}"
                           f" FOR VALUES FROM ({start}) TO ({start + DAY})")
        connection.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_day")


def ahead(connection, now, days_ahead):
    """Create the partitions from the day of ``now`` (µs) to ``days_ahead`` days after it."""
    today = now // DAY
    create(connection, range(today, today + days_ahead + 1))


def attached(connection):
    """The days that have a partition, oldest first."""
    rows = connection.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'log_record'::regclass")
    return sorted(day_of(table) for (table,) in rows)
