"""collector: an HTTP log collector on Flask, marshmallow, peewee and SQLite."""

from flask import Flask

from config import Config

from . import db, metrics, requestid
from .api import audit as audit_api
from .api import docs, health, ingest, logs
from .api import metrics as metrics_api
from .cli import (
    backup_command,
    export_command,
    keys_command,
    migrate_command,
    prune_command,
    restore_command,
    stats_command,
    verify_command,
)
from .errors import register_error_handlers
from .jsonprovider import OrjsonProvider
from .schemas import record_schema


def create_app(overrides=None):
    """Build the collector app from the environment's settings and ``overrides``."""
    app = Flask(__name__)
    app.config.from_mapping(Config().as_dict())
    if overrides:
        app.config.update(overrides)
    # werkzeug answers 413 for bodies over this before any view reads them.
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_BODY_BYTES"]
    app.json = OrjsonProvider(app)

    db.init_app(app)
    app.extensions["record_schema"] = record_schema(app.config)
    register_error_handlers(app)
    requestid.init_app(app)  # X-Request-ID on every answer
    metrics.init_app(app)  # request timings and overload answers

    # Blueprints, one per concern
    app.register_blueprint(health.bp)  # /healthz, /readyz
    app.register_blueprint(ingest.bp)  # POST /ingest
    app.register_blueprint(logs.bp)  # GET /logs/<id>
    app.register_blueprint(metrics_api.bp)  # GET /metrics
    app.register_blueprint(docs.bp)  # GET /openapi.json, /docs (Swagger UI)
    app.register_blueprint(audit_api.bp)  # GET /audit/verify

    app.cli.add_command(migrate_command)
    app.cli.add_command(export_command)
    app.cli.add_command(prune_command)
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)
    app.cli.add_command(stats_command)
    app.cli.add_command(keys_command)
    app.cli.add_command(verify_command)
    return app
