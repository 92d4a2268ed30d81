"""Settings from the environment, and start-up refusing invalid ones."""

import subprocess
import sys
from pathlib import Path

import pytest

from config import Config, ConfigError, ServerConfig

ROOT = Path(__file__).resolve().parent.parent


def test_defaults():
    config = Config({})
    assert config.DATABASE_URL == "sqlite:///data/collector.db"
    assert config.SQLITE_SYNCHRONOUS == "NORMAL"
    assert config.MAX_BODY_BYTES == 5 * 1024 * 1024
    assert config.MAX_BATCH_RECORDS == 10_000
    assert config.MAX_MESSAGE_BYTES == 64 * 1024
    server = ServerConfig({})
    assert (server.HOST, server.PORT) == ("127.0.0.1", 8000)
    assert server.WORKERS >= 2
    assert (server.THREADS, server.WORKER_CONNECTIONS) == (8, 1000)
    assert server.CONTROL_SOCKET == "" and config.DRAIN_FILE == "data/drain"


def test_values_from_the_environment():
    config = Config({"MAX_BATCH_RECORDS": "500", "SQLITE_SYNCHRONOUS": "full",
                     "WRITE_LOCK_TIMEOUT": "0.5"})
    assert config.MAX_BATCH_RECORDS == 500
    assert config.SQLITE_SYNCHRONOUS == "FULL"
    assert config.WRITE_LOCK_TIMEOUT == 0.5
    assert ServerConfig({"PORT": "9001", "WORKERS": "3"}).PORT == 9001


@pytest.mark.parametrize(
    "environ, named",
    [
        ({"MAX_BATCH_RECORDS": "lots"}, "MAX_BATCH_RECORDS"),
        ({"MAX_BATCH_RECORDS": "0"}, "MAX_BATCH_RECORDS"),
        ({"SQLITE_SYNCHRONOUS": "OFF"}, "SQLITE_SYNCHRONOUS"),
        ({"WRITE_LOCK_TIMEOUT": "nan"}, "WRITE_LOCK_TIMEOUT"),
        ({"WRITE_LOCK_TIMEOUT": "-1"}, "WRITE_LOCK_TIMEOUT"),
        ({"DATABASE_URL": "mysql://localhost/logs"}, "DATABASE_URL"),
        ({"POSTGRES_POOL_SIZE": "0"}, "POSTGRES_POOL_SIZE"),
        ({"POSTGRES_STATEMENT_TIMEOUT": "soon"}, "POSTGRES_STATEMENT_TIMEOUT"),
        ({"POSTGRES_CONNECT_TIMEOUT": "0"}, "POSTGRES_CONNECT_TIMEOUT"),
        ({"POSTGRES_PARTITIONS_AHEAD": "0"}, "POSTGRES_PARTITIONS_AHEAD"),
        ({"MAX_ATTRIBUTES_DEPTH": "1000"}, "MAX_ATTRIBUTES_DEPTH"),
        ({"TRUSTED_PROXIES": "10.0.0.0/33"}, "TRUSTED_PROXIES"),
        ({"DRAIN_FILE": " "}, "DRAIN_FILE"),
    ],
)
def test_invalid_setting_is_named(environ, named):
    with pytest.raises(ConfigError, match=named):
        Config(environ)


@pytest.mark.parametrize(
    "environ, named",
    [({"PORT": "http"}, "PORT"), ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
     ({"WORKER_CONNECTIONS": "0"}, "WORKER_CONNECTIONS"), ({"THREADS": "many"}, "THREADS"),
     ({"CONTROL_SOCKET": "/tmp/" + "s" * 120}, "CONTROL_SOCKET")],
)
def test_invalid_server_setting_is_named(environ, named):
    with pytest.raises(ConfigError, match=named):
        ServerConfig(environ)


def test_gunicorn_config_is_valid():
    result = subprocess.run(
        [Path(sys.executable).with_name("gunicorn"), "--check-config", "-c", "gunicorn.conf.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_gunicorn_refuses_to_start_with_an_invalid_setting():
    result = subprocess.run(
        [Path(sys.executable).with_name("gunicorn"), "--check-config", "-c", "gunicorn.conf.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "WORKERS": "none"},
    )
    assert result.returncode != 0
    assert "WORKERS" in result.stderr


def test_trusted_proxies_are_addresses_and_networks():
    import ipaddress

    assert Config({}).TRUSTED_PROXIES == ()
    assert Config({"TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8,::1"}).TRUSTED_PROXIES == (
        ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize("url", ["postgresql://collector@db.internal/logs",
                                 "postgres://localhost/logs", "sqlite:///tmp/x.db"])
def test_database_urls_of_both_backends_are_accepted(url):
    config = Config({"DATABASE_URL": url})
    assert config.DATABASE_URL == url
    assert (config.POSTGRES_POOL_SIZE, config.POSTGRES_STATEMENT_TIMEOUT,
            config.POSTGRES_CONNECT_TIMEOUT, config.POSTGRES_PARTITIONS_AHEAD) == (16, 30.0, 5, 7)
