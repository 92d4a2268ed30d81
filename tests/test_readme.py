"""The README's examples work as printed, in order, against a server started like `make run`."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.server import Server

pytestmark = pytest.mark.e2e

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
# Shell blocks that talk to the server, without their `make` lines (those read the database
# directly; tests/test_search.py covers the export command behind them).
EXAMPLES = [
    "\n".join(line for line in block.splitlines() if not line.startswith("make "))
    for block in re.findall(r"```sh\n(.*?)```", README, re.S)
    if "localhost:8000" in block
]
SHOWN_ERRORS = {"validation_failed"}  # the README shows this one on purpose


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's examples use curl")
def test_every_curl_example_works_verbatim(tmp_path):
    assert len(EXAMPLES) >= 8
    with Server(tmp_path, tmp_path / "collector.db") as server:
        for block in EXAMPLES:
            here = f"127.0.0.1:{server.port}"
            script = "set -e -o pipefail\n" + block.replace("localhost:8000", here)
            result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True,
                                    text=True, timeout=60)
            assert result.returncode == 0, (block, result.stderr)
            if "| grep" in block:  # text filtered by the example itself (e.g. /metrics)
                assert result.stdout.strip(), block
                continue
            for body in json_documents(result.stdout):
                assert body.get("error") in SHOWN_ERRORS | {None}, (block, body)


def json_documents(text):
    """The JSON documents printed one after another (curl adds no newline)."""
    decoder, position, documents = json.JSONDecoder(), 0, []
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        document, position = decoder.raw_decode(text, position)
        documents.append(document)
    return documents
