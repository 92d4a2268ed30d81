"""Liveness and readiness probes."""

import os

import pytest
from conftest import BACKEND

from collector import create_app

# PostgreSQL's disk is the server's, out of the collector's sight: no disk check there.
CHECKS = ("drain", "database", "writable") + (() if BACKEND == "postgres" else ("disk",))


def test_healthz_answers_without_a_database(tmp_path):
    # A database path that cannot even be opened: liveness must not care.
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/missing.db"})
    client = app.test_client()
    for method in (client.get, client.head):
        response = method("/healthz")
        assert response.status_code == 200
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert not (tmp_path / "missing.db").exists()


def test_readyz_when_everything_is_fine(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ok",
        "checks": dict.fromkeys(CHECKS, "ok"),
    }
    assert client.head("/readyz").status_code == 200


def test_readyz_fails_before_migration(tmp_path):
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/new.db"})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "fail"
    assert "make migrate" in body["checks"]["database"]


@pytest.mark.sqlite_only("the disk floor is that of the SQLite file's disk")
def test_readyz_fails_below_the_disk_floor(make_app):
    response = make_app(READY_MIN_FREE_MB=10**9).test_client().get("/readyz")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert "below the floor" in checks["disk"]
    assert checks["database"] == "ok"


def test_readyz_names_an_unwritable_database(client, monkeypatch, db_path):
    real_access = os.access
    monkeypatch.setattr(
        os, "access",
        lambda path, mode: False if str(path) == str(db_path) else real_access(path, mode),
    )
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["writable"] == f"{db_path} is not writable"


def test_a_drained_instance_is_not_ready_and_serves_everything_else(make_app, tmp_path):
    drain = tmp_path / "drain"
    client = make_app(DRAIN_FILE=str(drain)).test_client()
    assert client.get("/readyz").status_code == 200
    drain.touch()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {
        "status": "draining",
        "checks": {**dict.fromkeys(CHECKS, "ok"),
                   "drain": f"draining: {drain} exists (make undrain)"},
    }
    assert client.head("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
    assert client.post("/ingest", json={"service": "a", "severity": "info",
                                        "message": "still taken"}).status_code == 201
    assert client.get("/logs").get_json()["items"][0]["message"] == "still taken"
    drain.unlink()
    assert client.get("/readyz").get_json()["status"] == "ok"


def test_a_drained_instance_with_a_failing_check_says_fail(tmp_path):
    drain = tmp_path / "drain"
    drain.touch()
    app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path}/new.db",
                      "DRAIN_FILE": str(drain)})
    body = app.test_client().get("/readyz").get_json()
    assert body["status"] == "fail"
    assert body["checks"]["drain"].startswith("draining:")


def test_drain_and_undrain_commands(runner, app, tmp_path):
    drain = tmp_path / "data" / "drain"
    app.config["DRAIN_FILE"] = str(drain)
    result = runner.invoke(args=["drain"])
    assert result.exit_code == 0, result.output
    assert drain.exists() and "until `make undrain`" in result.output
    assert app.test_client().get("/readyz").status_code == 503
    result = runner.invoke(args=["undrain"])
    assert result.exit_code == 0, result.output
    assert not drain.exists()
    assert app.test_client().get("/readyz").status_code == 200
