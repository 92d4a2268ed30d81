"""The deployment: the systemd unit, TLS through Debian's nginx, and the trusted proxies."""

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import record
from tests.server import Server, free_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"


def access_lines(server, path):
    """The access log's lines of requests to ``path``, as dicts."""
    found = []
    for line in server.log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("path") == path and "remote" in entry:
            found.append(entry)
    return found


def logged(server, path):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = access_lines(server, path)
        if lines:
            return lines[-1]
        time.sleep(0.1)
    raise AssertionError(f"no access line for {path}:\n{server.log_tail()}")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (.ci/run installs systemd)")
def test_the_systemd_unit_is_valid(tmp_path):
    # Where the unit says /srv/collector, this checkout: verify checks its commands exist.
    unit = tmp_path / "collector.service"
    unit.write_text((DEPLOY / "collector.service").read_text().replace("/srv/collector",
                                                                        str(ROOT)))
    result = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr


@pytest.mark.parametrize("trusted, remote, scheme", [
    ("127.0.0.1", "203.0.113.9", "https"),  # the proxy is believed
    ("10.0.0.0/8", "127.0.0.1", "http"),  # another peer's headers are not
    ("", "127.0.0.1", "http"),
])
def test_forwarded_headers_are_honoured_from_trusted_proxies_only(tmp_path, trusted, remote,
                                                                   scheme):
    env = {"TRUSTED_PROXIES": trusted, "ACCESS_LOG": "1", "WORKERS": "1",
           "PATTERN_MINER": "off"}
    with Server(tmp_path, tmp_path / "collector.db", env=env) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/logs", headers={"X-Forwarded-For": "203.0.113.9",
                                                    "X-Forwarded-Proto": "https"})
        assert connection.getresponse().status == 200
        entry = logged(server, "/logs")
    assert (entry["remote"], entry["scheme"]) == (remote, scheme)


def nginx_config(tmp_path, port, upstream, certificate, key):
    """deploy/nginx.conf on loopback ``port`` in front of ``upstream``, in a whole nginx.conf."""
    site = (DEPLOY / "nginx.conf").read_text()
    for old, new in (("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;"),
                     ("listen [::]:443 ssl http2;", ""),
                     ("127.0.0.1:8000", f"127.0.0.1:{upstream}"),
                     ("/etc/ssl/certs/collector.pem", str(certificate)),
                     ("/etc/ssl/private/collector.key", str(key))):
        assert old in site, old
        site = site.replace(old, new)
    (tmp_path / "site.conf").write_text(site)
    temp = tmp_path / "nginx-temp"
    temp.mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""
{"user root;" if os.geteuid() == 0 else ""}
daemon off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/nginx-error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {tmp_path}/site.conf;
}}
""")
    return conf


@pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("openssl") is None,
                    reason="nginx or openssl is not installed (.ci/run installs them)")
def test_tls_through_nginx_end_to_end(tmp_path):
    certificate, key = tmp_path / "collector.pem", tmp_path / "collector.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", key, "-out", certificate], check=True, capture_output=True,
                   timeout=60)
    env = {"TRUSTED_PROXIES": "127.0.0.1", "ACCESS_LOG": "1", "WORKERS": "1",
           "PATTERN_MINER": "off", "MAX_BODY_BYTES": str(1024 * 1024)}
    with Server(tmp_path, tmp_path / "collector.db", env=env) as server:
        port = free_port()
        conf = nginx_config(tmp_path, port, server.port, certificate, key)
        check = subprocess.run(["nginx", "-t", "-c", conf, "-p", tmp_path],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        nginx = subprocess.Popen(["nginx", "-c", conf, "-p", tmp_path],
                                 stderr=subprocess.PIPE)
        try:
            wait_for_port(port)
            context = ssl.create_default_context(cafile=certificate)

            def https(method, path, body=None, headers=None):
                connection = http.client.HTTPSConnection("localhost", port, context=context,
                                                         timeout=30)
                connection.request(method, path, body=body, headers=headers or {})
                answer = connection.getresponse()
                return answer.status, answer.read()

            json_type = {"Content-Type": "application/json"}
            status, body = https("POST", "/ingest", json.dumps([record()]), json_type)
            assert status == 201, body
            status, body = https("GET", "/logs", headers={"X-Forwarded-For": "203.0.113.9"})
            assert status == 200 and json.loads(body)["items"][0]["message"] == "invoice 42 sent"
            # the client's own X-Forwarded-For is dropped by nginx; the scheme is https
            entry = logged(server, "/logs")
            assert (entry["remote"], entry["scheme"]) == ("127.0.0.1", "https")
            # a body over MAX_BODY_BYTES gets the collector's JSON 413, not nginx's page
            status, body = https("POST", "/ingest", b"[" + b" " * (2 * 1024 * 1024) + b"]",
                                 json_type)
            assert status == 413 and json.loads(body)["error"] == "payload_too_large"
        finally:
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(30)


def wait_for_port(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")
