"""Times as the collector stores them: integer microseconds since the epoch, UTC."""

import datetime as dt
import functools
import time

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ONE_MICROSECOND = dt.timedelta(microseconds=1)


def now_micros():
    """The server clock, in microseconds since the epoch."""
    return time.time_ns() // 1000


def to_micros(moment):
    """An aware datetime as microseconds since the epoch."""
    return (moment - EPOCH) // ONE_MICROSECOND


def format_micros(micros):
    """Microseconds since the epoch as RFC 3339 in UTC, e.g. 2026-11-30T01:41:17.123456Z."""
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{_format_second(seconds)}.{fraction:06d}Z"


# Every stored record is formatted on its way out, twice (received and stamped),
# and the records of a batch or a page share a few seconds: 0.3 us instead of 1.6.
@functools.lru_cache(maxsize=4096)
def _format_second(seconds):
    return (EPOCH + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
