"""Retention: how long a record is kept, from RETENTION_DAYS and RETENTION_RULES.

RETENTION_RULES is a comma-separated list of ``SELECTOR:DAYS`` rules:

- ``service=NAME:DAYS`` keeps records of service NAME for DAYS instead of
  RETENTION_DAYS, longer or shorter;
- ``severity>=LEVEL:DAYS`` keeps records of LEVEL and above for at least DAYS.

A record is kept for its service's days (RETENTION_DAYS when no service rule
names it), extended by the longest severity rule it matches: a severity rule
never shortens retention. So ``severity>=ERROR:365,service=chatty:3`` keeps
chatty's errors a year and the rest of chatty three days.
"""

import statistics
from dataclasses import dataclass, field

from config import ConfigError

from .severity import LEVELS, RANKS, canonical_level

MICROS_PER_DAY = 86_400 * 1_000_000


def parse_rules(text):
    """The rules in ``text`` as ({service: days}, {severity rank: days}); raises ConfigError."""
    service_days, severity_days = {}, {}
    for rule in filter(None, (part.strip() for part in text.split(","))):
        selector, _, days = rule.rpartition(":")
        days = _days(rule, days)
        if selector.startswith("service="):
            service = selector.removeprefix("service=").strip()
            if not service or service in service_days:
                raise _invalid(rule, "needs a service named once: service=NAME:DAYS")
            service_days[service] = days
        elif selector.startswith("severity>="):
            level = canonical_level(selector.removeprefix("severity>=").strip())
            if level is None or RANKS[level] in severity_days:
                raise _invalid(rule, f"needs a level named once, one of {', '.join(RANKS)}")
            severity_days[RANKS[level]] = days
        else:
            raise _invalid(rule, "must be service=NAME:DAYS or severity>=LEVEL:DAYS")
    return service_days, severity_days


@dataclass(frozen=True)
class Retention:
    """The retention that applies to each record."""

    default_days: int
    service_days: dict = field(default_factory=dict)
    severity_days: dict = field(default_factory=dict)  # severity rank -> days

    @classmethod
    def from_config(cls, config):
        """The retention set by RETENTION_DAYS and RETENTION_RULES."""
        return cls(config["RETENTION_DAYS"], *parse_rules(config["RETENTION_RULES"]))

    def expired_before(self, now):
        """A time (µs) that every record expired at ``now`` is older than."""
        shortest = min([self.default_days, *self.service_days.values()])
        return now - shortest * MICROS_PER_DAY

    def describe(self):
        """The retention in words, e.g. ``30 days; chatty: 3 days; ERROR and above: 365 days``."""
        return "; ".join([
            f"{self.default_days} days",
            *(f"{service}: {days} days" for service, days in self.service_days.items()),
            *(f"{LEVELS[rank]} and above: at least {days} days"
              for rank, days in sorted(self.severity_days.items())),
        ])


@dataclass
class PruneReport:
    """What a prune did."""

    deleted: int = 0
    holds: list = field(default_factory=list)  # seconds each transaction held the write lock
    seconds: float = 0.0
    space: str = ""

    @property
    def max_hold_ms(self):
        return 1000 * max(self.holds, default=0.0)

    @property
    def median_hold_ms(self):
        return 1000 * statistics.median(self.holds) if self.holds else 0.0

    def summary(self):
        """One line: how many records in how many transactions, the lock held, the time."""
        return (
            f"pruned {self.deleted:,} records in {len(self.holds):,} transactions;"
            f" write lock held max {self.max_hold_ms:.1f} ms,"
            f" median {self.median_hold_ms:.1f} ms; {self.seconds:.1f} s"
        )


def _days(rule, text):
    try:
        days = int(text.strip())
    except ValueError:
        raise _invalid(rule, "must end in :DAYS, a whole number of days") from None
    if days < 1:
        raise _invalid(rule, "keeps records for at least 1 day")
    return days


def _invalid(rule, reason):
    return ConfigError(f"RETENTION_RULES: {rule!r} {reason}")
