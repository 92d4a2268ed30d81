"""The load generator: client processes apart from the server's, each on one keep-alive connection.

Every client posts pre-serialized bodies from a shared start instant until the end of the
measured window, in a closed loop (the next request leaves when the previous answer is read)
or, with a ``rate``, open: requests are due at fixed intervals whatever the answers, and each
latency counts from when its request was due (wrk2's correction: a server that stalls is
charged for the requests that should have left meanwhile). Throughput and latencies count the
requests completed inside the window, after a warm-up; status codes count every request.
"""

import http.client
import math
import multiprocessing
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field

HOST = "127.0.0.1"
REQUEST_TIMEOUT = 120.0  # seconds; a 10,000-record batch queued behind seven others is slow
SPAWN_MARGIN = 0.5  # seconds between forking the clients and their common start


@dataclass(frozen=True)
class Load:
    """What to send: bodies of ``records_per_body`` records each, by ``clients`` processes."""

    port: int
    bodies: list
    records_per_body: int
    headers: dict
    clients: int
    warmup: float
    duration: float
    path: str = "/ingest"
    rate: float | None = None  # requests a second, all clients together; None: closed loop


@dataclass
class LoadResult:
    """The aggregate of every client's report."""

    load: Load
    latencies: list  # seconds, sorted, of the requests completed in the window
    completions: list  # when (time.time()) each of them completed, sorted
    statuses: Counter  # status code -> count, over every request
    failures: int  # requests that got no answer (connection reset, timeout)
    client_cpu_seconds: float
    server_cpu_seconds: float | None  # from the sampler, over the window
    # Open loop: how late each client woke for a request it was idle before (seconds,
    # sorted): the load generator's own share of a latency, on cores it shares with the server.
    oversleeps: list = field(default_factory=list)

    @property
    def requests(self):
        return len(self.latencies)

    @property
    def records(self):
        return self.requests * self.load.records_per_body

    @property
    def non_2xx(self):
        """Answers outside 200-299, plus requests that got no answer."""
        answered = sum(n for status, n in self.statuses.items() if not 200 <= status < 300)
        return self.failures + answered

    def percentile_ms(self, fraction):
        """The latency that ``fraction`` of the window's requests stayed within (nearest rank)."""
        return _percentile_ms(self.latencies, fraction)

    def share_over_ms(self, ms):
        """The share of the window's requests that took longer than ``ms`` milliseconds."""
        if not self.latencies:
            return None
        return sum(1 for latency in self.latencies if latency * 1000 > ms) / len(self.latencies)

    def figures(self):
        """The result as JSON-ready figures."""
        window = self.load.duration
        cpu_per_record = None
        if self.server_cpu_seconds is not None and self.records:
            cpu_per_record = self.server_cpu_seconds / self.records * 1e6
        return {
            "records_per_request": self.load.records_per_body,
            "clients": self.load.clients,
            "offered_requests_per_s": self.load.rate,
            "window_seconds": window,
            "requests": self.requests,
            "records": self.records,
            "requests_per_s": self.requests / window,
            "records_per_s": self.records / window,
            "p50_ms": self.percentile_ms(0.50),
            "p99_ms": self.percentile_ms(0.99),
            "max_ms": self.latencies[-1] * 1000 if self.latencies else None,
            "non_2xx": self.non_2xx,
            "statuses": {str(status): n for status, n in sorted(self.statuses.items())},
            "server_cpu_us_per_record": cpu_per_record,
            "client_cpu_seconds": self.client_cpu_seconds,
            "client_oversleep_p99_ms": _percentile_ms(self.oversleeps, 0.99),
        }


def _percentile_ms(seconds, fraction):
    """The nearest-rank ``fraction`` percentile of sorted ``seconds``, in ms (None if empty)."""
    if not seconds:
        return None
    return seconds[max(1, math.ceil(fraction * len(seconds))) - 1] * 1000


def run(load, sample=None, during=None):
    """Drive the server with ``load`` and return the LoadResult.

    ``sample``, when given, is called when the window opens and when it closes; the
    difference of its two answers is reported as the server's CPU seconds. ``during`` as
    for run_many.
    """
    return run_many([load], sample, during)[0]


def run_many(loads, sample=None, during=None):
    """Drive the server with several loads at once, over the window of the first; a LoadResult
    each (the server's CPU seconds are those of them all). ``during``, when given, is called
    with the window's end while the loads run (to sample the server meanwhile)."""
    # fork: the clients inherit the bodies instead of receiving megabytes of pickles.
    context = multiprocessing.get_context("fork")
    first = loads[0]
    start = time.time() + SPAWN_MARGIN
    window = (start + first.warmup, start + first.warmup + first.duration)
    queues = [context.Queue() for _ in loads]
    clients = [
        context.Process(target=_client, args=(load, index, start, window, queue), daemon=True)
        for load, queue in zip(loads, queues, strict=True) for index in range(load.clients)
    ]
    for client in clients:
        client.start()
    server_cpu = None
    if sample is not None:
        _sleep_until(window[0])
        opened = sample()
    if during is not None:
        during(window[1])
    if sample is not None:
        _sleep_until(window[1])
        server_cpu = sample() - opened
    patience = SPAWN_MARGIN + first.warmup + first.duration + REQUEST_TIMEOUT
    results = []
    for load, queue in zip(loads, queues, strict=True):
        collected = [queue.get(timeout=patience) for _ in range(load.clients)]
        failed = [report for report in collected if isinstance(report, str)]
        if failed:
            raise RuntimeError(f"a load-generator client failed:\n{failed[0]}")
        latencies, completions, oversleeps = [], [], []
        statuses, failures, cpu = Counter(), 0, 0.0
        for report in collected:
            latencies.extend(report["latencies"])
            oversleeps.extend(report["oversleeps"])
            completions.extend(report["completions"])
            statuses.update(report["statuses"])
            failures += report["failures"]
            cpu += report["cpu_seconds"]
        latencies.sort()
        completions.sort()
        oversleeps.sort()
        results.append(LoadResult(load, latencies, completions, statuses, failures, cpu,
                                  server_cpu, oversleeps))
    for client in clients:
        client.join()
    return results


def _client(load, index, start, window, reports):
    try:
        reports.put(_send_until_window_closes(load, index, start, window))
    except BaseException:  # the parent must hear of it rather than wait for a report
        reports.put(traceback.format_exc())


def _send_until_window_closes(load, index, start, window):
    opens, closes = window
    bodies = load.bodies
    # Clients start at different bodies so concurrent requests carry different records.
    position = index * len(bodies) // load.clients
    connection = http.client.HTTPConnection(HOST, load.port, timeout=REQUEST_TIMEOUT)
    latencies, completions, oversleeps, statuses, failures = [], [], [], Counter(), 0
    # Open loop: this client's requests are due every ``interval`` s, the clients staggered.
    interval = load.clients / load.rate if load.rate else None
    due = time.perf_counter() + (start - time.time()) + (index * interval / load.clients
                                                         if interval else 0)
    _sleep_until(start)
    cpu_started = time.process_time()
    while time.time() < closes:
        body = bodies[position % len(bodies)]
        position += 1
        overslept = None
        if interval:
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
                overslept = time.perf_counter() - due
            sent, due = due, due + interval
        else:
            sent = time.perf_counter()
        try:
            connection.request("POST", load.path, body, load.headers)
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            failures += 1
            connection.close()  # the next request reconnects
            continue
        latency = time.perf_counter() - sent
        statuses[response.status] += 1
        now = time.time()
        if opens <= now <= closes:
            latencies.append(latency)
            completions.append(now)
            if overslept is not None:
                oversleeps.append(overslept)
    connection.close()
    return {
        "latencies": latencies,
        "completions": completions,
        "oversleeps": oversleeps,
        "statuses": statuses,
        "failures": failures,
        "cpu_seconds": time.process_time() - cpu_started,
    }


def _sleep_until(moment):
    delay = moment - time.time()
    if delay > 0:
        time.sleep(delay)
