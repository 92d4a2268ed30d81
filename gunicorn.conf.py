"""gunicorn settings for the collector; `make run` starts gunicorn with this file.

Every value comes from the environment through config.ServerConfig (documented
in the README). Names are imported from config, never the module itself:
gunicorn reads this file's names as its settings, and it has one called "config".
"""

import atexit
import os
import pathlib
import shutil
import sys
import tempfile

from config import Config, ConfigError, ServerConfig

try:
    _server = ServerConfig()
    _app_settings = Config().as_dict()
except ConfigError as _invalid:  # one line, not gunicorn's traceback of this file
    sys.exit(f"collector: {_invalid}")

# prometheus_client reads PROMETHEUS_MULTIPROC_DIR once, when first imported;
# the master imports it with the collector package (below, and for logger_class)
# and its workers inherit it: so the directory is set up before anything else.
_metrics_dir = pathlib.Path(
    _server.METRICS_DIR or pathlib.Path(tempfile.gettempdir()) / f"collector-metrics-{os.getpid()}"
)
_metrics_dir.mkdir(parents=True, exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir)


def _remove_metrics_dir(master_pid):
    if os.getpid() == master_pid:  # workers run atexit handlers too
        shutil.rmtree(_metrics_dir, ignore_errors=True)


if not _server.METRICS_DIR:  # gunicorn's own directory goes when the master does
    atexit.register(_remove_metrics_dir, os.getpid())

# An invalid retention rule stops the master before any worker starts, too.
from collector.ops import logging as collector_logging  # noqa: E402  (after the metrics dir)
from collector.ops import malloc  # noqa: E402
from collector.retention import Retention  # noqa: E402

try:
    Retention.from_config(_app_settings)
except ConfigError as _invalid:
    sys.exit(f"collector: {_invalid}")

# In the master, before it forks: the workers inherit it. With 10,000-record batches a
# worker's peak RSS was 131 MiB instead of 149-151 (make bench), at the same records/s.
malloc.limit_arenas()

wsgi_app = "wsgi:app"

# Server socket
bind = f"{_server.HOST}:{_server.PORT}"
backlog = 2048

# Workers. gthread: each worker runs THREADS requests at once, so slow clients
# and long polls don't hold a whole process. SQLite serialises writes anyway;
# more workers than cores only adds contention.
workers = _server.WORKERS
worker_class = "gthread"
threads = _server.THREADS
worker_connections = _server.WORKER_CONNECTIONS
timeout = _server.TIMEOUT
graceful_timeout = 30
keepalive = 5

# gunicorn's control socket (gunicornc): one per instance at CONTROL_SOCKET, or none.
# Its default path is one per user, so instances on one machine would take it from each
# other (each fork of a master re-creates it) and gunicornc would manage the wrong one.
control_socket_disable = not _server.CONTROL_SOCKET
if _server.CONTROL_SOCKET:
    control_socket = _server.CONTROL_SOCKET

# Request limits. gunicorn answers requests over these itself, with HTML:
# query strings of long filters need the largest request line it allows.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Forwarded headers: the app believes them from TRUSTED_PROXIES only (collector/web/proxies.py);
# gunicorn's own reading of X-Forwarded-Proto, from loopback peers by default, is off.
secure_scheme_headers = {}
forwarded_allow_ips = ""

# Logging: JSON lines on stdout, gunicorn's and the app's alike; successful
# health probes are not access-logged; ACCESS_LOG=0 drops access lines.
accesslog = "-" if _server.ACCESS_LOG else None
errorlog = "-"
loglevel = _server.LOG_LEVEL
logger_class = "collector.ops.logging.ProbeQuietLogger"
logconfig_dict = collector_logging.logging_config(_server.LOG_LEVEL)

# The pattern miner (collector/ops/miner.py): one process beside the workers, gunicorn's
# dirty worker, which gunicorn starts, starts again when it dies, and stops with the server.
# It mines at idle CPU priority, never in a request. PATTERN_MINER=off leaves it out.
if _server.PATTERN_MINER:
    dirty_apps = ["collector.ops.miner_worker:MinerApp"]
    dirty_workers = 1


# Hooks: every worker's metric samples, kept in files under _metrics_dir (see
# above), add up in a scrape answered by any worker.
def on_starting(server):
    """Start the metrics from zero: samples of an earlier run would count again."""
    for stale in _metrics_dir.glob("*.db"):
        stale.unlink()


def child_exit(server, worker):
    """Drop a dead worker's live gauges; its counters stay, so totals do not go down."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(_metrics_dir))


def on_dirty_starting(arbiter):
    """Name the miner's supervisor, so that it is told from the workers in ps."""
    from collector.ops.miner import name_process
    from collector.ops.miner_worker import ARBITER_NAME

    name_process(ARBITER_NAME)


def post_worker_init(worker):
    """With PRUNE_INTERVAL set, start the worker's automatic-prune thread on its app.

    Each worker has one; the store's prune lock lets one prune run per interval
    across them all (see collector/ops/autoprune.py).
    """
    from collector.ops import autoprune

    autoprune.start(worker.wsgi)
