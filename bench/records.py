"""Realistic log records: LogHub message text, 24 services, a real severity mix, 5-10 attributes.

The text comes from ../shared/data/loghub (https://github.com/logpai/loghub) beside the
checkout. Where that folder is absent, synthetic lines of similar shape and length stand in,
and the corpus says so.
"""

import csv
import datetime as dt
import random
from dataclasses import dataclass

import orjson

from .modes import REPO

LOGHUB = REPO.parent / "shared" / "data" / "loghub"

SERVICES = (
    "api-gateway", "auth", "billing", "cart", "catalog", "checkout", "fraud", "inventory",
    "ledger", "mailer", "media", "notifications", "orders", "payments", "pricing",
    "recommendations", "reporting", "scheduler", "search", "sessions", "shipping",
    "user-profile", "webhooks", "analytics",
)
# A few services are chatty, most are quiet: weights fall off as 1/rank.
SERVICE_WEIGHTS = tuple(1 / rank for rank in range(1, len(SERVICES) + 1))
SEVERITIES = ("INFO", "DEBUG", "WARN", "ERROR")
SEVERITY_WEIGHTS = (75, 12, 9, 4)
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-1")
TENANTS = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne")
HTTP_METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
HTTP_STATUSES = (200, 200, 200, 200, 201, 204, 304, 400, 404, 500, 503)
RESOURCES = ("orders", "users", "items", "carts")
ONE_WEEK = 7 * 24 * 3600


@dataclass(frozen=True)
class Corpus:
    """Log lines as (system, component, message) tuples, and where they came from."""

    lines: list
    source: str


def load_corpus(directory=LOGHUB):
    """The LogHub lines under ``directory``, or synthetic lines when it holds none."""
    lines = []
    for path in sorted(directory.glob("*/*_2k.log_structured.csv")):
        system = path.parent.name
        with path.open(newline="", encoding="utf-8", errors="replace") as file:
            for row in csv.DictReader(file):
                # Systems without a Component column name the emitter Program or nothing.
                component = row.get("Component") or row.get("Program") or system.lower()
                if row.get("Content"):
                    lines.append((system, component, row["Content"]))
    if lines:
        systems = len({system for system, _, _ in lines})
        return Corpus(lines, f"LogHub: {len(lines):,} lines from {systems} systems in {directory}")
    return synthetic_corpus(random.Random(0), directory)


_TEMPLATES = (
    "GET /api/v1/orders/{n} 200 in {ms} ms",
    "POST /api/v1/payments returned {status} after {ms} ms (attempt {small})",
    "Connection to {ip}:{port} refused; retrying in {small}s",
    "User {n} logged in from {ip} using session {hex}",
    "Cache miss for key product:{n}:price, loading from primary",
    "Job {hex} finished: {n} rows processed, {small} skipped",
    "Slow query ({ms} ms): SELECT * FROM orders WHERE customer_id = {n} ORDER BY created_at",
    "Failed to deliver webhook {hex} to https://hooks.example.com/{n}: timeout after {ms} ms",
    "Received signal TERM; draining {small} open connections",
    "PacketResponder {small} for block blk_{n} terminating",
    "Scheduled task reindex-{small} started on worker-{small}",
    "Token refresh for client {hex} succeeded; expires in {n} s",
)


def synthetic_corpus(rng, missing):
    """2,000 lines made from templates, standing in for LogHub where ``missing`` is absent."""
    lines = []
    for _ in range(2_000):
        message = rng.choice(_TEMPLATES).format(
            n=rng.randint(1, 10**9),
            ms=rng.randint(1, 5_000),
            status=rng.choice(HTTP_STATUSES),
            small=rng.randint(0, 9),
            ip=f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            port=rng.choice((5432, 6379, 8080, 9092)),
            hex=f"{rng.getrandbits(64):016x}",
        )
        lines.append(("synthetic", rng.choice(("http", "db", "worker", "cache")), message))
    return Corpus(lines, f"synthetic text ({missing} not found)")


def generate(count, corpus, seed=0):
    """``count`` records as a client would send them, reproducible for a given ``seed``."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    services = rng.choices(SERVICES, SERVICE_WEIGHTS, k=count)
    severities = rng.choices(SEVERITIES, SEVERITY_WEIGHTS, k=count)
    # Oldest first: a shipper's batch covers a stretch of time in order, and the pool the
    # batches are cut from covers the last week.
    ages = sorted((rng.uniform(0, ONE_WEEK) for _ in range(count)), reverse=True)
    records = []
    for service, severity, age in zip(services, severities, ages, strict=True):
        system, component, message = rng.choice(corpus.lines)
        moment = now - dt.timedelta(seconds=age)
        record = {
            "timestamp": moment.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "service": service,
            "severity": severity,
            "message": message,
            "host": f"{service}-{rng.randint(1, 12):02d}",
            "attributes": _attributes(rng, system, component),
        }
        if rng.random() < 0.8:  # most records come from traced requests
            record["trace_id"] = f"{rng.getrandbits(128):032x}"
            record["span_id"] = f"{rng.getrandbits(64):016x}"
        records.append(record)
    return records


_OPTIONAL_ATTRIBUTES = {
    "thread": lambda rng: f"worker-{rng.randint(1, 32)}",
    "pid": lambda rng: rng.randint(100, 65_000),
    "request_id": lambda rng: f"{rng.getrandbits(96):024x}",
    "user_id": lambda rng: rng.randint(1, 5_000_000),
    "region": lambda rng: rng.choice(REGIONS),
    "tenant": lambda rng: rng.choice(TENANTS),
    "version": lambda rng: f"2.{rng.randint(0, 30)}.{rng.randint(0, 9)}",
    "duration_ms": lambda rng: round(rng.lognormvariate(3, 1), 3),
    "retry": lambda rng: rng.randint(0, 3),
    "http": lambda rng: {
        "method": rng.choice(HTTP_METHODS),
        "status": rng.choice(HTTP_STATUSES),
        "path": f"/api/v1/{rng.choice(RESOURCES)}/{rng.randint(1, 10**6)}",
    },
    "k8s": lambda rng: {"namespace": "prod", "pod": f"pod-{rng.getrandbits(24):06x}"},
}


def _attributes(rng, system, component):
    attributes = {"logger": component, "source": system}
    for name in rng.sample(sorted(_OPTIONAL_ATTRIBUTES), rng.randint(3, 8)):
        attributes[name] = _OPTIONAL_ATTRIBUTES[name](rng)
    return attributes


def request_bodies(records, batch_size):
    """``records`` cut into JSON-array request bodies of ``batch_size`` records each."""
    return [
        orjson.dumps(records[start : start + batch_size])
        for start in range(0, len(records) - batch_size + 1, batch_size)
    ]
