"""The README's examples work as printed, in order, against a server started like `make run`."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from server import Server

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
# Shell blocks that talk to the server; their `make` lines (make key, make export) run in the
# collector's directory on the server's database, as they would beside a `make run`.
EXAMPLES = [
    block for block in re.findall(r"```sh\n(.*?)```", README, re.S) if "localhost:8000" in block
]
SHOWN_ERRORS = {"validation_failed"}  # the README shows this one on purpose


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's examples use curl")
@pytest.mark.skipif(shutil.which("make") is None, reason="the README's examples use make")
def test_every_curl_example_works_verbatim(tmp_path):
    assert len(EXAMPLES) >= 10
    database = tmp_path / "collector.db"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    make = bin_dir / "make"
    make.write_text(f'#!/bin/sh\nexec {shutil.which("make")} --no-print-directory -C {REPO} "$@"\n')
    make.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}",
           "DATABASE_URL": f"sqlite:///{database}"}
    with Server(tmp_path, database) as server:
        for block in EXAMPLES:
            here = f"127.0.0.1:{server.port}"
            script = "set -e -o pipefail\n" + block.replace("localhost:8000", here)
            result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True,
                                    text=True, timeout=60, env=env)
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
