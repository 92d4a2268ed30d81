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

from dataclasses import dataclass, field

from config import ConfigError

from .severity import RANKS, canonical_level

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
        level_of = {rank: level for level, rank in RANKS.items()}
        return "; ".join([
            f"{self.default_days} days",
            *(f"{service}: {days} days" for service, days in self.service_days.items()),
            *(f"{level_of[rank]} and above: at least {days} days"
              for rank, days in sorted(self.severity_days.items())),
        ])

    def expired_sql(self, now):
        """An SQL condition on log_record, and its params: the record is expired at ``now`` (µs)."""
        cases = " ".join("WHEN ? THEN ?" for _ in self.service_days)
        base = f"CASE service {cases} ELSE ? END" if cases else "?"
        params = [
            *(value for service, days in self.service_days.items()
              for value in (service, now - days * MICROS_PER_DAY)),
            now - self.default_days * MICROS_PER_DAY,
        ]
        condition = f"timestamp < {base}"
        for rank, days in self.severity_days.items():
            condition += " AND (severity_rank < ? OR timestamp < ?)"
            params += [rank, now - days * MICROS_PER_DAY]
        return condition, params


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
