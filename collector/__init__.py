"""collector: an HTTP log collector on Flask, marshmallow, peewee and SQLite.

``create_app`` is the table of contents: settings, then storage and the write
path, then the web layer (errors, request ids, timing, keys), the blueprints
(one per concern, one per ingest protocol), the automatic pruner and the CLI.
"""

from flask import Flask

from config import Config

from . import storage
from .ingest.protocols import PROTOCOLS
from .ingest.schemas import record_schema
from .ingest.writer import Writer
from .ops import autoprune, cli
from .retention import Retention
from .web import auth, jsonprovider, proxies, requestid, timing
from .web import errors as web_errors
from .web.blueprints import audit as audit_views
from .web.blueprints import docs, explorer, health, logs, patterns
from .web.blueprints import ingest as ingest_views
from .web.blueprints import metrics as metrics_views

# (The views of audit, ingest and metrics take other names here: the package's
# own modules of those names must not be shadowed.)


def create_app(overrides=None):
    """Build the collector app from the environment's settings and ``overrides``."""
    app = Flask(__name__)
    app.config.from_mapping(Config().as_dict())
    if overrides:
        app.config.update(overrides)
    # werkzeug answers 413 for bodies over this before any view reads them.
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_BODY_BYTES"]
    retention = app.extensions["retention"] = Retention.from_config(app.config)  # checks rules

    # Storage, and the one write path over it (a group-commit queue per worker)
    store = app.extensions["store"] = storage.open_store(app.config)
    app.teardown_request(lambda exc: store.release())  # connections go back to the pool
    schema = app.extensions["record_schema"] = record_schema(app.config)
    app.extensions["writer"] = Writer(store, schema, app.config)

    # The web layer
    app.json = jsonprovider.OrjsonProvider(app)
    web_errors.init_app(app)  # every error as JSON, domain errors mapped in one table
    timing.init_app(app)  # request timings and overload answers, into the metrics
    requestid.init_app(app)  # X-Request-ID on every answer
    proxies.init_app(app)  # X-Forwarded-For and -Proto, from TRUSTED_PROXIES only
    auth.init_app(app, store)  # API keys, and the scope each blueprint needs

    # Blueprints, one per concern, with the scope their callers need
    app.register_blueprint(health.bp)  # /healthz, /readyz: open
    for protocol in PROTOCOLS:  # POST /ingest, one blueprint per wire protocol
        bp = ingest_views.blueprint(protocol, app.config)
        auth.protect(app, bp, "ingest", protocol.key_schemes)
        app.register_blueprint(bp)
    auth.protect(app, logs.bp, "read")
    app.register_blueprint(logs.bp)  # GET /logs, /logs/stats, /logs/export, /logs/<id>
    auth.protect(app, patterns.bp, "read")
    app.register_blueprint(patterns.bp)  # GET /logs/patterns
    auth.protect(app, metrics_views.bp, "read")
    app.register_blueprint(metrics_views.bp)  # GET /metrics
    app.register_blueprint(docs.bp)  # GET /openapi.json, /docs (Swagger UI): open
    app.register_blueprint(explorer.bp)  # GET / (the log explorer) and its assets: open
    auth.protect(app, audit_views.bp, "admin")
    app.register_blueprint(audit_views.bp)  # GET /audit/verify

    # Operations
    autoprune.init_app(app, store, retention)  # started in each worker by gunicorn.conf.py
    cli.init_app(app)  # flask --app wsgi migrate | prune | backup | keys | ...
    return app
