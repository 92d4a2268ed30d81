"""The collector as `make run` starts it: migrate, then `gunicorn -c gunicorn.conf.py`.

It listens on a free loopback port, on the database it is given; every other
setting comes from the environment exactly as for `make run`.
"""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from collector.ops.miner_worker import ARBITER_NAME

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
BIN = Path(sys.executable).parent  # the venv's bin, where `make run` finds python and gunicorn
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 40.0  # gunicorn.conf.py gives workers 30 s to finish their requests
PROC = Path("/proc")


def free_port():
    """A loopback port nothing listens on: bind port 0 and let the kernel pick one."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Server:
    """gunicorn on ``database`` (a URL, or a SQLite file: on the backend under test, see
    conftest.ServerDatabases) serving ``app`` (gunicorn.conf.py's wsgi_app when None).

    Use it as a context manager: it is up and answering /healthz inside the block.
    """

    def __init__(self, workdir, database, app=None, env=None):
        self.port = free_port()
        self.app = app
        self.env = {
            **os.environ,
            "HOST": HOST,
            "PORT": str(self.port),
            "DATABASE_URL": database_url(database),
            "ACCESS_LOG": "0",
            **(env or {}),
        }
        self.log_path = Path(workdir) / f"gunicorn-{self.port}.log"
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def start(self):
        """Migrate (for the collector's own app), start gunicorn and wait until it answers."""
        if self.app is None:
            migrate = subprocess.run(
                [BIN / "python", "-m", "collector", "migrate"],
                cwd=REPO, env=self.env, capture_output=True, text=True,
            )
            if migrate.returncode != 0:
                raise RuntimeError(f"migrate failed:\n{migrate.stdout}{migrate.stderr}")
        command = [BIN / "gunicorn", "-c", "gunicorn.conf.py"]
        if self.app is not None:  # a command-line app overrides the config file's wsgi_app
            command.append(self.app)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """SIGTERM the master and wait for a graceful exit; SIGKILL it past STOP_TIMEOUT."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _wait_until_healthy(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited at start-up:\n{self.log_tail()}")
            connection = http.client.HTTPConnection(HOST, self.port, timeout=1)
            try:
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass  # not listening yet
            finally:
                connection.close()
            time.sleep(0.05)
        raise RuntimeError(
            f"gunicorn did not answer /healthz in {STARTUP_TIMEOUT:.0f} s:\n{self.log_tail()}"
        )

    def log_tail(self, lines=30):
        """The last lines gunicorn wrote."""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def worker_pids(self):
        """The pids of the master's children but the miner's arbiter: the workers (empty
        without /proc)."""
        return [pid for pid, name in self._children(self.process.pid) if name != ARBITER_NAME]

    def miner_pids(self):
        """The pids of the pattern miner's process and of its arbiter (gunicorn's dirty ones)."""
        arbiters = [pid for pid, name in self._children(self.process.pid) if name == ARBITER_NAME]
        return arbiters + [pid for arbiter in arbiters for pid, _ in self._children(arbiter)]

    @staticmethod
    def _children(parent):
        """(pid, command name) of the processes whose parent is ``parent``."""
        found = []
        for entry in PROC.glob("[0-9]*"):
            stat = read_proc(entry / "stat")
            # The command name in parentheses may hold spaces: split after it.
            if stat and int(stat.rpartition(")")[2].split()[1]) == parent:
                found.append((int(entry.name), stat.partition("(")[2].rpartition(")")[0]))
        return found


def database_url(database):
    """The URL of ``database``, a URL or a SQLite file's path, on the backend under test."""
    try:
        from conftest import ServerDatabases
    except ImportError:  # bench/ starts servers outside the test suite, on SQLite files
        return str(database) if "://" in str(database) else f"sqlite:///{database}"
    return ServerDatabases.url(database)


def read_proc(path):
    """The text of a /proc file, or None when its process exited meanwhile."""
    try:
        return path.read_text()
    except OSError:
        return None
