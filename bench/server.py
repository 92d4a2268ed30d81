"""The server under load: the tests' gunicorn harness, with its workers' CPU and memory read
from /proc.

Access logs are off (the tests' Server turns them off); every other setting
(WORKERS, THREADS, SQLITE_SYNCHRONOUS, ...) comes from the environment exactly
as for `make run`.
"""

import os

from tests.server import PROC, Server, read_proc


class BenchServer(Server):
    """A Server whose workers' CPU time and peak RSS can be read."""

    def workers_cpu_seconds(self):
        """User plus system CPU seconds the workers have used so far."""
        ticks = 0
        for pid in self.worker_pids():
            stat = read_proc(PROC / str(pid) / "stat")
            if stat:
                fields = stat.rpartition(")")[2].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def workers_peak_rss_mb(self):
        """Each worker's peak resident set (VmHWM) in MiB, by pid."""
        peaks = {}
        for pid in self.worker_pids():
            for line in (read_proc(PROC / str(pid) / "status") or "").splitlines():
                if line.startswith("VmHWM:"):
                    peaks[pid] = int(line.split()[1]) / 1024  # kB
        return peaks

    def workers_io(self):
        """Each worker's bytes written so far, by pid: (write_bytes reaching the disk, wchar)."""
        written = {}
        for pid in self.worker_pids():
            fields = dict(line.split(": ", 1) for line in
                          (read_proc(PROC / str(pid) / "io") or "").splitlines() if ": " in line)
            if "write_bytes" in fields:
                written[pid] = (int(fields["write_bytes"]), int(fields["wchar"]))
        return written
