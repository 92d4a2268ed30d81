"""A server started as `make run` starts it: migrate, then `gunicorn -c gunicorn.conf.py`.

It listens on a free loopback port, on the database it is given, with access logs off;
every other setting (WORKERS, THREADS, SQLITE_SYNCHRONOUS, ...) comes from the environment
exactly as for `make run`. Its workers' CPU time and peak RSS are read from /proc.
"""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .modes import REPO

HOST = "127.0.0.1"
BIN = Path(sys.executable).parent  # the venv's bin, where `make run` finds flask and gunicorn
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 40.0  # gunicorn.conf.py gives workers 30 s to finish their requests
PROC = Path("/proc")


def free_port():
    """A loopback port nothing listens on: bind port 0 and let the kernel pick one."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Server:
    """gunicorn on ``database`` serving ``app`` (gunicorn.conf.py's wsgi_app when None).

    Use it as a context manager: it is up and answering /healthz inside the block.
    """

    def __init__(self, workdir, database, app=None, env=None):
        self.port = free_port()
        self.app = app
        self.env = {
            **os.environ,
            "HOST": HOST,
            "PORT": str(self.port),
            "DATABASE_URL": f"sqlite:///{database}",
            "ACCESS_LOG": "0",
            **(env or {}),
        }
        self.log_path = Path(workdir) / f"gunicorn-{self.port}.log"
        self.process = None

    def __enter__(self):
        if self.app is None:
            migrate = subprocess.run(
                [BIN / "flask", "--app", "wsgi", "migrate"],
                cwd=REPO, env=self.env, capture_output=True, text=True,
            )
            if migrate.returncode != 0:
                raise RuntimeError(f"flask migrate failed:\n{migrate.stdout}{migrate.stderr}")
        command = [BIN / "gunicorn", "-c", "gunicorn.conf.py"]
        if self.app is not None:  # a command-line app overrides the config file's wsgi_app
            command.append(self.app)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info):
        self.stop()

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
        """The pids of the master's children, the workers (empty without /proc)."""
        pids = []
        for entry in PROC.glob("[0-9]*"):
            stat = _read(entry / "stat")
            # The command name in parentheses may hold spaces: split after it.
            if stat and int(stat.rpartition(")")[2].split()[1]) == self.process.pid:
                pids.append(int(entry.name))
        return pids

    def workers_cpu_seconds(self):
        """User plus system CPU seconds the workers have used so far."""
        ticks = 0
        for pid in self.worker_pids():
            stat = _read(PROC / str(pid) / "stat")
            if stat:
                fields = stat.rpartition(")")[2].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def workers_peak_rss_mb(self):
        """Each worker's peak resident set (VmHWM) in MiB, by pid."""
        peaks = {}
        for pid in self.worker_pids():
            for line in (_read(PROC / str(pid) / "status") or "").splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = int(line.split()[1]) / 1024  # kB
        return peaks


def _read(path):
    try:
        return path.read_text()
    except OSError:  # the process exited meanwhile
        return None
