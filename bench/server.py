"""The server under load: the tests' gunicorn harness, with its workers' CPU and memory read
from /proc.

Access logs are off (the tests' Server turns them off); every other setting
(WORKERS, THREADS, SQLITE_SYNCHRONOUS, ...) comes from the environment exactly
as for `make run`.
"""

import http.client
import os

from prometheus_client.parser import text_string_to_metric_families

from tests.server import HOST, PROC, Server, read_proc

REQUEST_DURATION = "collector_request_duration_seconds"


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

    def requests_handled_within(self, endpoint):
        """{bucket's upper bound in seconds: requests so far} of ``endpoint``'s view, every
        worker and answer together: the app's own histogram on /metrics, which times the view
        from Flask's start of the request to its answer (gunicorn's share is outside)."""
        within = {}
        for family in self._metric_families():
            if family.name != REQUEST_DURATION:
                continue
            for sample in family.samples:
                if sample.name.endswith("_bucket") and sample.labels["endpoint"] == endpoint:
                    bound = float(sample.labels["le"])
                    within[bound] = within.get(bound, 0) + sample.value
        return within

    def seconds_spent_in(self, histograms):
        """{histogram: seconds it has timed so far}, every worker and label together: the
        ``_sum`` of each of the app's ``histograms`` on /metrics."""
        spent = dict.fromkeys(histograms, 0.0)
        for family in self._metric_families():
            if family.name in spent:
                spent[family.name] += sum(sample.value for sample in family.samples
                                          if sample.name.endswith("_sum"))
        return spent

    def _metric_families(self):
        connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            connection.request("GET", "/metrics")
            text = connection.getresponse().read().decode()
        finally:
            connection.close()
        return text_string_to_metric_families(text)

    def workers_io(self):
        """Each worker's bytes written so far, by pid: (write_bytes reaching the disk, wchar)."""
        written = {}
        for pid in self.worker_pids():
            fields = dict(line.split(": ", 1) for line in
                          (read_proc(PROC / str(pid) / "io") or "").splitlines() if ": " in line)
            if "write_bytes" in fields:
                written[pid] = (int(fields["write_bytes"]), int(fields["wchar"]))
        return written
