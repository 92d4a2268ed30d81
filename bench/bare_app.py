"""The HTTP floor: a bare Flask app with the collector's routes and nothing behind them.

Served with the collector's own gunicorn.conf.py (`gunicorn -c gunicorn.conf.py
bench.bare_app:app`), it shows what gunicorn plus Flask cost per request before any
validation or storage.
"""

from flask import Flask, request

app = Flask(__name__)


@app.get("/healthz")
def healthz():
    """Liveness, so the harness can wait for this server as for the collector."""
    return {"status": "ok"}


@app.post("/ingest")
def ingest():
    """Read the body and answer 201 with a tiny JSON body, like the collector's minimal answer."""
    request.get_data(cache=False)
    return {"accepted": 1}, 201
