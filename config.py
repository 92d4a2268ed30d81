"""Settings of the collector, read from environment variables.

This module is the only place that reads ``os.environ``. Every setting has a
documented default (the README's table lists them); an invalid value stops
start-up with a message naming the setting.
"""

import ipaddress
import os


class ConfigError(ValueError):
    """A setting has a value the collector cannot run with."""


DEFAULT_HOST = "127.0.0.1"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
UNIX_PATH_MAX = 107  # bytes of a Unix socket's path, Linux's sun_path less its NUL


def is_loopback(host):
    """Whether ``host`` (an address gunicorn binds) is reachable from this machine only."""
    host = host.strip().lower().removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def _integer(environ, name, default, minimum=None, maximum=None):
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is below the minimum of {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name}={value} is above the maximum of {maximum}")
    return value


def _number(environ, name, default, minimum=0.0):
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value >= minimum:  # also catches nan
        raise ConfigError(f"{name}={raw} must be at least {minimum}")
    return value


def _networks(environ, name):
    raw = environ.get(name, "")
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False)
                     for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: comma-separated IP addresses or networks"
                          " (such as 127.0.0.1,10.0.0.0/8)") from None


def _choice(environ, name, default, choices):
    value = environ.get(name, default).strip().upper()
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


class Config:
    """The collector's settings, taken from ``environ`` (``os.environ`` by default)."""

    def __init__(self, environ=None):
        env = os.environ if environ is None else environ

        # Storage
        self.DATABASE_URL = env.get("DATABASE_URL", "sqlite:///data/collector.db")
        if not self.DATABASE_URL.startswith(("sqlite:///", *POSTGRES_SCHEMES)):
            raise ConfigError(f"DATABASE_URL={self.DATABASE_URL!r}: use sqlite:///<path>"
                              " or postgresql://user@host/database")
        self._postgres(env)
        # NORMAL: a commit survives a process crash; FULL: it also survives power loss.
        self.SQLITE_SYNCHRONOUS = _choice(env, "SQLITE_SYNCHRONOUS", "NORMAL", ("NORMAL", "FULL"))
        self.SQLITE_CACHE_MB = _integer(env, "SQLITE_CACHE_MB", 2, minimum=1)
        # A cap on the database file; writes past it answer 507 (0: none).
        self.SQLITE_MAX_SIZE_MB = _integer(env, "SQLITE_MAX_SIZE_MB", 0, minimum=0)
        # How long a write waits for SQLite's write lock before answering 503.
        self.WRITE_LOCK_TIMEOUT = _number(env, "WRITE_LOCK_TIMEOUT", 5.0, minimum=0.01)
        # The write-ahead log: a commit that leaves it past WAL_CHECKPOINT_MB copies it into
        # the database and empties it; past WAL_MAX_MB (readers kept it from emptying) the
        # writer retries for up to WAL_CHECKPOINT_WAIT seconds before going on.
        self.WAL_CHECKPOINT_MB = _integer(env, "WAL_CHECKPOINT_MB", 16, minimum=1)
        self.WAL_MAX_MB = _integer(env, "WAL_MAX_MB", 48, minimum=1)
        if self.WAL_MAX_MB < self.WAL_CHECKPOINT_MB:
            raise ConfigError(f"WAL_MAX_MB={self.WAL_MAX_MB} is below"
                              f" WAL_CHECKPOINT_MB={self.WAL_CHECKPOINT_MB}")
        self.WAL_CHECKPOINT_WAIT = _number(env, "WAL_CHECKPOINT_WAIT", 2.0, minimum=0.0)

        # Limits of a request and of a record
        # Seconds a client has to send its whole body: slow clients don't hold threads.
        self.BODY_READ_TIMEOUT = _number(env, "BODY_READ_TIMEOUT", 30.0, minimum=0.1)
        self.MAX_BODY_BYTES = _integer(env, "MAX_BODY_BYTES", 5 * 1024 * 1024, minimum=1024)
        self.MAX_BATCH_RECORDS = _integer(env, "MAX_BATCH_RECORDS", 10_000, minimum=1)
        self.MAX_MESSAGE_BYTES = _integer(env, "MAX_MESSAGE_BYTES", 64 * 1024, minimum=1)
        self.MAX_ATTRIBUTES_KEYS = _integer(env, "MAX_ATTRIBUTES_KEYS", 64, minimum=0)
        self.MAX_ATTRIBUTES_DEPTH = _integer(env, "MAX_ATTRIBUTES_DEPTH", 5, minimum=1, maximum=100)
        self.MAX_ATTRIBUTES_BYTES = _integer(env, "MAX_ATTRIBUTES_BYTES", 16 * 1024, minimum=2)
        # Records stamped further than this in the future are rejected.
        self.MAX_FUTURE_SKEW = _integer(env, "MAX_FUTURE_SKEW", 3600, minimum=0)
        # How long a batch's Idempotency-Key is remembered, in seconds.
        self.IDEMPOTENCY_TTL = _integer(env, "IDEMPOTENCY_TTL", 24 * 3600, minimum=1)

        # Access control. auto: API keys are required unless the collector listens
        # on a loopback address only; a key that is presented is checked either way.
        auth = _choice(env, "AUTH", "AUTO", ("AUTO", "ON", "OFF"))
        self.AUTH_REQUIRED = auth == "ON" or (
            auth == "AUTO" and not is_loopback(env.get("HOST", DEFAULT_HOST))
        )

        # The reverse proxies (addresses or networks) whose X-Forwarded-For and
        # X-Forwarded-Proto say who the client is; from anyone else they are ignored.
        self.TRUSTED_PROXIES = _networks(env, "TRUSTED_PROXIES")

        # Readiness
        self.READY_MIN_FREE_MB = _integer(env, "READY_MIN_FREE_MB", 100, minimum=0)
        # While this file exists /readyz answers 503 and every other endpoint serves on, so
        # that a load balancer takes the instance out (make drain / make undrain).
        self.DRAIN_FILE = env.get("DRAIN_FILE", "data/drain").strip()
        if not self.DRAIN_FILE:
            raise ConfigError("DRAIN_FILE='': the path of a file, e.g. data/drain")

        # Retention
        self.RETENTION_DAYS = _integer(env, "RETENTION_DAYS", 30, minimum=1)
        # Kept as text (the form tests override); collector.retention parses it when
        # the app is built, and gunicorn.conf.py before any worker starts.
        self.RETENTION_RULES = env.get("RETENTION_RULES", "").strip()
        # Seconds between automatic prunes, run by one worker at a time (0: off, use make prune).
        self.PRUNE_INTERVAL = _integer(env, "PRUNE_INTERVAL", 0, minimum=0)
        self.BACKUP_DIR = env.get("BACKUP_DIR", "backups")

        # Patterns: how alike two messages must be (the share of their words that agree)
        # to share a template. Changing it mines every record again, with new pattern ids.
        self.PATTERN_SIMILARITY = _number(env, "PATTERN_SIMILARITY", 0.7, minimum=0.0)
        if self.PATTERN_SIMILARITY > 1:
            raise ConfigError(f"PATTERN_SIMILARITY={self.PATTERN_SIMILARITY} is above 1")

        # Metrics: set by gunicorn.conf.py (from METRICS_DIR) so that workers add up
        # their samples there; unset, metrics are those of this process alone.
        self.PROMETHEUS_MULTIPROC_DIR = env.get("PROMETHEUS_MULTIPROC_DIR") or None

    def _postgres(self, env):
        """The PostgreSQL backend's settings (DATABASE_URL=postgresql://...); unused on SQLite."""
        # Connections each worker process keeps (its threads, the pruner, the long polls).
        self.POSTGRES_POOL_SIZE = _integer(env, "POSTGRES_POOL_SIZE", 16, minimum=1)
        # A statement running longer is cancelled and answered 503 (0: no limit).
        self.POSTGRES_STATEMENT_TIMEOUT = _number(env, "POSTGRES_STATEMENT_TIMEOUT", 30.0)
        # How long opening a connection may take before the request is answered 503.
        self.POSTGRES_CONNECT_TIMEOUT = _integer(env, "POSTGRES_CONNECT_TIMEOUT", 5, minimum=1)
        # Daily partitions of the records kept created ahead of today.
        self.POSTGRES_PARTITIONS_AHEAD = _integer(env, "POSTGRES_PARTITIONS_AHEAD", 7, minimum=1)

    def as_dict(self):
        """The settings as a mapping, for ``app.config.from_mapping``."""
        return {name: value for name, value in vars(self).items() if name.isupper()}


class ServerConfig:
    """gunicorn's settings, read by gunicorn.conf.py from the same environment."""

    def __init__(self, environ=None):
        env = os.environ if environ is None else environ
        self.HOST = env.get("HOST", DEFAULT_HOST)
        self.PORT = _integer(env, "PORT", 8000, minimum=0, maximum=65535)
        self.WORKERS = _integer(env, "WORKERS", max(2, os.cpu_count() or 1), minimum=1)
        self.THREADS = _integer(env, "THREADS", 8, minimum=1)
        # Clients a worker holds at once (THREADS being served, the rest waiting);
        # past it, connections wait in the kernel's listen backlog.
        self.WORKER_CONNECTIONS = _integer(env, "WORKER_CONNECTIONS", 1000, minimum=1)
        self.TIMEOUT = _integer(env, "WORKER_TIMEOUT", 30, minimum=1)
        self.LOG_LEVEL = env.get("LOG_LEVEL", "info").lower()
        if self.LOG_LEVEL not in ("debug", "info", "warning", "error", "critical"):
            raise ConfigError(f"LOG_LEVEL={self.LOG_LEVEL!r} is not a log level")
        self.ACCESS_LOG = env.get("ACCESS_LOG", "1") not in ("0", "false", "no", "off")
        # Where workers keep their metrics' samples; empty: a fresh temporary directory.
        self.METRICS_DIR = env.get("METRICS_DIR", "").strip()
        # The pattern miner, one process beside the workers (off: `flask --app wsgi mine`).
        self.PATTERN_MINER = _choice(env, "PATTERN_MINER", "ON", ("ON", "OFF")) == "ON"
        # gunicorn's control socket (gunicornc) is at one path per user by default, which
        # instances on one machine would take from each other: off unless given a path.
        self.CONTROL_SOCKET = env.get("CONTROL_SOCKET", "").strip()
        socket_path = os.fsencode(os.path.abspath(self.CONTROL_SOCKET))
        if self.CONTROL_SOCKET and len(socket_path) > UNIX_PATH_MAX:
            raise ConfigError(f"CONTROL_SOCKET={self.CONTROL_SOCKET!r}: a socket's path is"
                              f" at most {UNIX_PATH_MAX} bytes")
