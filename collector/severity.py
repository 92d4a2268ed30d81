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
