"""Severity levels: the canonical names, their ranks and the aliases shippers send."""

# Canonical level -> rank. Ranks leave gaps so a level can be added between two
# without renumbering stored records.
RANKS = {
    "TRACE": 10,
    "DEBUG": 20,
    "INFO": 30,
    "NOTICE": 40,
    "WARN": 50,
    "ERROR": 60,
    "CRITICAL": 70,
    "FATAL": 80,
}

# Rank -> canonical level.
LEVELS = {rank: name for name, rank in RANKS.items()}

# Spellings from syslog, log4j/logback, java.util.logging, Serilog, Python and Go.
ALIASES = {
    "VERBOSE": "TRACE",
    "FINEST": "TRACE",
    "FINER": "DEBUG",
    "FINE": "DEBUG",
    "DBG": "DEBUG",
    "INFORMATION": "INFO",
    "INFORMATIONAL": "INFO",
    "CONFIG": "INFO",
    "WARNING": "WARN",
    "WRN": "WARN",
    "ERR": "ERROR",
    "SEVERE": "ERROR",
    "CRIT": "CRITICAL",
    "ALERT": "CRITICAL",
    "EMERG": "FATAL",
    "EMERGENCY": "FATAL",
    "PANIC": "FATAL",
}

# Every accepted spelling (upper case) -> canonical level.
CANONICAL = {**{name: name for name in RANKS}, **ALIASES}


def canonical_level(name):
    """The canonical level for ``name`` in any case, or None when it is not a level."""
    return CANONICAL.get(name.upper())


# Syslog's numeric severities (RFC 5424): 0 emergency ... 7 debug.
SYSLOG_NUMBERS = {
    0: "FATAL",  # emerg
    1: "CRITICAL",  # alert
    2: "CRITICAL",  # crit
    3: "ERROR",  # err
    4: "WARN",  # warning
    5: "NOTICE",
    6: "INFO",
    7: "DEBUG",
}

# OpenTelemetry's SeverityNumber (1 to 24), four to a level: TRACE 1-4, DEBUG 5-8, INFO 9-12,
# WARN 13-16, ERROR 17-20, FATAL 21-24. The second to fourth of INFO and ERROR are NOTICE and
# CRITICAL, as the data model's own mapping of syslog puts notice at INFO2, crit at ERROR2.
OTEL_NUMBERS = {
    number: level
    for first, levels in ((1, ("TRACE",) * 4), (5, ("DEBUG",) * 4),
                          (9, ("INFO",) + ("NOTICE",) * 3), (13, ("WARN",) * 4),
                          (17, ("ERROR",) + ("CRITICAL",) * 3), (21, ("FATAL",) * 4))
    for number, level in enumerate(levels, start=first)
}

# The scales a number may be read on, by name.
NUMBER_SCALES = {"syslog": SYSLOG_NUMBERS, "otel": OTEL_NUMBERS}


def number_level(number, scale):
    """The level a severity number stands for on ``scale`` (a NUMBER_SCALES entry), or None."""
    return NUMBER_SCALES[scale].get(number)
