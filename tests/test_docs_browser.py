"""Swagger UI at /docs in a real browser: headless Chromium, no internet, every endpoint listed."""

import re
import shutil
import subprocess

import pytest
from server import Server

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags keep Chromium off the network (this machine has none) and out of first-run chores.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it)")
def test_docs_page_lists_every_endpoint(tmp_path):
    with Server(tmp_path, tmp_path / "collector.db") as server:
        page = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'chromium'}",
             "--virtual-time-budget=10000", "--dump-dom", f"http://127.0.0.1:{server.port}/docs"],
            capture_output=True, text=True, timeout=120,
        )
    assert page.returncode == 0, page.stderr[-2000:]
    listed = set(re.findall(r'data-path="([^"]+)"', page.stdout))
    assert {"/ingest", "/logs", "/logs/stats", "/logs/export", "/logs/{record_id}", "/healthz",
            "/readyz", "/metrics"} <= listed, listed
