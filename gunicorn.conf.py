"""gunicorn settings for the collector; `make run` starts gunicorn with this file.

Every value comes from the environment through config.ServerConfig (documented
in the README). config.py is loaded under another module name: gunicorn has a
setting called "config", and a plain `import config` here collides with it.
"""

import importlib.util
import pathlib

_spec = importlib.util.spec_from_file_location(
    "collector_settings", pathlib.Path(__file__).with_name("config.py")
)
_settings = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_settings)
_server = _settings.ServerConfig()
_settings.Config()  # an invalid app setting stops the master before any worker starts

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
timeout = _server.TIMEOUT
graceful_timeout = 30
keepalive = 5

# Request limits. gunicorn answers requests over these itself, with HTML:
# query strings of long filters need the largest request line it allows.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Logging: to stdout/stderr; successful health probes are not access-logged.
accesslog = "-" if _server.ACCESS_LOG else None
errorlog = "-"
loglevel = _server.LOG_LEVEL
logger_class = "collector.gunicorn_logging.ProbeQuietLogger"
