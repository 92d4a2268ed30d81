"""The operator's experience: each make target's failures as one line, and the files' modes."""

import http.client
import json
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from tests.helpers import record

ROOT = Path(__file__).resolve().parent.parent
MAKE_OWN_LINE = re.compile(r"^make(\[\d+\])?: \*\*\* ")  # make's own "Error 1", not ours


def make(target, *args, env=None, stdout=subprocess.PIPE, timeout=120):
    """Run ``make target args`` in the checkout: (exit status, stdout, our stderr lines)."""
    environ = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"),
               **(env or {})}
    result = subprocess.run(["make", "--no-print-directory", target, *args], cwd=ROOT,
                            env=environ, stdout=stdout, stderr=subprocess.PIPE, text=True,
                            timeout=timeout)
    lines = [line for line in result.stderr.splitlines() if not MAKE_OWN_LINE.match(line)]
    return result.returncode, result.stdout, lines


def mode(path):
    return stat.S_IMODE(Path(path).stat().st_mode)


@pytest.fixture
def migrated(tmp_path):
    """The environment of a migrated database in a fresh folder of ``tmp_path``."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/data/collector.db",
           "BACKUP_DIR": str(tmp_path / "backups")}
    status, _out, errors = make("migrate", env=env)
    assert status == 0, errors
    return env


# (target, make arguments, environment, what the one line must say)
BAD = [
    ("prune", [], {"RETENTION_RULES": "service=chatty"}, "RETENTION_RULES"),
    ("prune", [], {"RETENTION_DAYS": "abc"}, "RETENTION_DAYS='abc'"),
    ("stats", [], {"DATABASE_URL": "mysql://x"}, "DATABASE_URL='mysql://x'"),
    # A PostgreSQL URL is a setting like any other: the server it names is not there.
    ("stats", [], {"DATABASE_URL": "postgresql://nobody@no-such-host.invalid/logs"},
     "postgresql://nobody@no-such-host.invalid/logs: the database cannot be reached"),
    ("stats", [], {"MAX_BATCH_RECORDS": "0"}, "MAX_BATCH_RECORDS"),
    ("verify", [], {"SQLITE_SYNCHRONOUS": "off"}, "SQLITE_SYNCHRONOUS"),
    ("backup", [], {"BACKUP_DIR": "/proc/nope"}, "BACKUP_DIR='/proc/nope'"),
    ("run", [], {"PORT": "abc"}, "PORT='abc'"),
    ("run", [], {"WORKERS": "0"}, "WORKERS=0"),
    ("run", [], {"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ("stats", [], {"TRUSTED_PROXIES": "the proxy"}, "TRUSTED_PROXIES='the proxy'"),
    ("key", ["NAME=a", "SCOPES=ingest", "RATE=abc"], {}, "RATE='abc'"),
    ("key", ["NAME=a", "SCOPES=ingest", "RATE=1e9"], {}, "RATE='1e9'"),
    ("key", ["NAME=a", "SCOPES=ingest", "SERVICES="], {}, "SERVICES=''"),
    ("key", ["NAME=a", "SCOPES=write"], {}, "SCOPES='write'"),
    ("key", ["NAME=a,b", "SCOPES=read"], {}, "NAME='a,b'"),
    ("revoke", ["NAME=nobody"], {}, "no active key is named 'nobody'"),
    ("export", ["SINCE=yesterday"], {}, "SINCE='yesterday'"),
    ("export", ["MIN_SEVERITY=loud"], {}, "MIN_SEVERITY='loud'"),
    ("export", ["Q=\"unclosed"], {}, "Q="),
    ("patterns", ["NEW_SINCE=soon"], {}, "NEW_SINCE='soon'"),
    ("restore", ["FILE=/nope.db"], {}, "FILE='/nope.db': no such file"),
    ("restore", ["FILE=latest"], {}, "FILE='latest': there is no backup of"),
]


@pytest.mark.parametrize("target, args, env, says", BAD,
                         ids=[f"{t}-{(a or list(e))[-1]}" for t, a, e, _ in BAD])
def test_a_bad_setting_or_argument_is_one_line_naming_it(migrated, target, args, env, says):
    status, out, errors = make(target, *args, env={**migrated, **env})
    assert status != 0
    mine = [line for line in errors if line.startswith("collector: ")]
    assert len(mine) == 1 and says in mine[0], errors
    assert not [line for line in errors if "Traceback" in line or "Usage:" in line], errors
    assert "Try '" not in out + "".join(errors) and "--rate-limit" not in "".join(errors)


def test_gunicorn_start_with_a_bad_setting_is_one_line():
    gunicorn = ROOT / ".venv" / "bin" / "gunicorn"
    for name, value in (("PORT", "abc"), ("WORKERS", "0"), ("RETENTION_RULES", "x"),
                        ("DATABASE_URL", "mysql://x")):
        result = subprocess.run([gunicorn, "--check-config", "-c", "gunicorn.conf.py"], cwd=ROOT,
                                env={"PATH": "/usr/bin:/bin", name: value},
                                capture_output=True, text=True, timeout=60)
        assert result.returncode != 0
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert result.stderr.startswith(f"collector: {name}"), result.stderr


def test_a_quote_in_a_make_variable_is_only_text(migrated):
    name = "it's \"quoted\" `id` ; echo"
    status, out, errors = make("key", f"NAME={name}", "SCOPES=read", env=migrated)
    assert status == 0, errors
    assert out.startswith("clk_")
    assert errors[0].startswith(f"created key {name!r} in ")
    status, out, _ = make("keys", env=migrated)
    assert name in out


@pytest.mark.parametrize("target, args", [
    ("stats", []), ("verify", []), ("keys", []), ("prune", []), ("backup", []), ("export", []),
    ("patterns", []), ("key", ["NAME=a", "SCOPES=read"]), ("revoke", ["NAME=a"]),
])
def test_a_missing_database_is_named_and_not_created(tmp_path, target, args):
    database = tmp_path / "nowhere" / "collector.db"
    status, _out, errors = make(target, *args, env={"DATABASE_URL": f"sqlite:///{database}"})
    assert status != 0
    assert errors == [f"collector: {database}: no such database; `make migrate` creates it"
                      " (check DATABASE_URL)"]
    assert not database.parent.exists()


def test_commands_name_their_database(migrated):
    path = migrated["DATABASE_URL"].removeprefix("sqlite:///")
    assert make("migrate", env=migrated)[1].startswith(f"{path} is up to date")
    _status, _out, errors = make("key", "NAME=dashboards", "SCOPES=read", env=migrated)
    assert f"in {path}" in errors[0]
    assert make("keys", env=migrated)[2] == [f"API keys of {path}:"]
    assert make("revoke", "NAME=dashboards", env=migrated)[1] == \
        f"revoked key 'dashboards' in {path}\n"
    assert f"database      {path}" in make("stats", env=migrated)[1]


def test_output_into_a_closed_pipe_ends_quietly(migrated):
    reading, writing = os.pipe()
    os.close(reading)  # `head` has read what it wanted and gone
    try:
        for target in ("keys", "stats"):
            status, _out, errors = make(target, env=migrated, stdout=writing)
            assert status == 0
            assert [line for line in errors if not line.startswith("API keys of ")] == []
    finally:
        os.close(writing)


# Files

def test_migrate_creates_the_data_for_its_owner_only(migrated, tmp_path, make_app):
    data = tmp_path / "data"
    assert mode(data) == 0o700
    assert mode(data / "collector.db") == 0o600
    assert mode(data / "collector-patterns.db") == 0o600
    app = make_app(DATABASE_URL=migrated["DATABASE_URL"])
    assert app.test_client().post("/ingest", json=[record()]).status_code == 201
    for side in ("collector.db-wal", "collector.db-shm", "collector.db.write-lock"):
        assert mode(data / side) == 0o600, side


def test_a_data_directory_others_can_read_is_reported(migrated, tmp_path):
    (tmp_path / "data").chmod(0o755)
    status, _out, errors = make("migrate", env=migrated)
    assert status == 0
    assert errors == [f"collector: warning: {tmp_path / 'data'} is readable by every user"
                      f" (mode 0755); `chmod 700 {tmp_path / 'data'}` keeps the logs to the"
                      " collector's user"]


def test_backups_are_private_named_after_their_database_and_restored_by_name(migrated, tmp_path):
    other = {**migrated, "DATABASE_URL": f"sqlite:///{tmp_path}/data/other.db"}
    assert make("migrate", env=other)[0] == 0
    assert make("key", "NAME=only-in-other", "SCOPES=read", env=other)[0] == 0
    status, out, errors = make("backup", env=migrated)
    assert status == 0, errors
    mine = Path(out.splitlines()[0])
    assert re.fullmatch(r"collector-\d{8}T\d{6}Z\.db", mine.name)
    assert mode(mine) == 0o600 and mode(mine.parent) == 0o700
    status, out, _ = make("backup", env=other)
    assert Path(out.splitlines()[0]).name.startswith("other-")
    # FILE=latest takes the newest backup of this database, never the other's
    status, out, errors = make("restore", "FILE=latest", env=migrated)
    assert status == 0, errors
    assert out == f"restored {tmp_path}/data/collector.db from {mine};" \
        " start the collector with `make run`\n"
    assert "only-in-other" not in make("keys", env=migrated)[1]
    assert mode(tmp_path / "data" / "collector.db") == 0o600


# HTTP answers a person can act on

BAD_REQUESTS = [
    # (body, content type, status, error, words in the message)
    (b'[{"service":"a","severity":"INFO","message":"ab\xff"}]', "application/json", 400,
     "malformed_json", "not valid UTF-8 at byte 47"),
    (b'{"service":"a","severity":"INFO","message":"x"}\n{"service":"a","severity":"INFO",'
     b'"message":"\xc3"}\n', "application/x-ndjson", 400, "malformed_json",
     "not valid UTF-8 at byte 92"),
    (b'{"service":"a","severity":"INFO","message":"x"}\n{"service":"a","severity":"INFO",'
     b'"message":"y"}\n', "application/json", 400, "malformed_json",
     "Content-Type: application/x-ndjson"),
    (b"", "application/json", 400, "empty_batch", "no records"),
    (b"  \n", "application/json", 400, "empty_batch", "no records"),
    (b"[]", "application/json", 400, "empty_batch", "no records"),
    (b"", "application/x-ndjson", 400, "empty_batch", "no records"),
]


@pytest.mark.parametrize("body, content_type, status, error, says", BAD_REQUESTS)
def test_a_bad_body_is_answered_with_what_to_change(client, body, content_type, status, error,
                                                    says):
    answer = client.post("/ingest", data=body, headers={"Content-Type": content_type})
    assert (answer.status_code, answer.json["error"]) == (status, error)
    assert says in answer.json["message"]
    assert answer.data.endswith(b"}\n")


def test_an_unknown_parameter_lists_the_valid_ones(client):
    answer = client.get("/logs?servce=api")
    assert answer.status_code == 400
    assert "servce: Unknown parameter. The valid ones are: after_id," in answer.json["message"]
    assert " service, " in answer.json["message"]


def test_a_plus_that_arrived_as_a_space_gets_a_hint(client):
    answer = client.get("/logs?since=2026-11-29T09:15:02+01:00")  # unencoded: '+' is a space
    assert answer.status_code == 400
    assert "send the offset's '+' as %2B" in answer.json["message"]
    assert client.get("/logs?since=2026-11-29T09:15:02%2B01:00").status_code == 200
    assert "%2B" not in client.get("/logs?since=soon").json["message"]


def test_every_json_answer_ends_with_a_newline(client):
    for path in ("/logs", "/logs/stats", "/healthz", "/nowhere"):
        assert client.get(path).data.endswith(b"\n"), path


def test_a_body_over_the_limit_is_a_413_naming_the_setting(tmp_path):
    from tests.server import Server

    limit = 64 * 1024
    with Server(tmp_path, tmp_path / "collector.db",
                env={"MAX_BODY_BYTES": str(limit), "WORKERS": "1", "PATTERN_MINER": "off"}) as s:
        body = b"[" + b" " * (64 * limit) + b"]"  # far more than socket buffers hold
        connection = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
        connection.request("POST", "/ingest", body=body,
                           headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        document = json.loads(answer.read())
        assert answer.status == 413
        assert document == {"error": "payload_too_large", "limit": limit, "message":
                            f"the body is over the limit of {limit:,} bytes (MAX_BODY_BYTES);"
                            " send smaller batches"}


def test_a_bad_server_setting_stops_make_run_before_a_database_is_made(tmp_path):
    database = tmp_path / "data" / "collector.db"
    status, _out, errors = make("run", env={"DATABASE_URL": f"sqlite:///{database}",
                                            "PORT": "99999"})
    assert status != 0
    assert errors == ["collector: PORT=99999 is above the maximum of 65535"]
    assert not database.parent.exists()
