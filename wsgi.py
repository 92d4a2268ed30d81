"""The WSGI entry point for gunicorn and ``flask --app wsgi``."""

import sys

from collector import create_app
from config import ConfigError

try:
    app = create_app()
except ConfigError as invalid:  # a setting the collector cannot run with: one line, no traceback
    sys.exit(f"collector: {invalid}")
