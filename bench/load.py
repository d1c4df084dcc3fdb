"""A bounded HTTP load loop for benches: keep-alive connections from worker threads.

Run in a second process (`hammer_in_subprocess`) so the client does not share the server's
interpreter; each thread sends its share of requests back to back and records latencies.
"""

from __future__ import annotations

import http.client
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context


@dataclass
class LoadResult:
    latencies_ns: list[int]
    """One per request that got a 2xx/3xx answer, sorted."""
    errors: int
    """Requests answered with a 4xx/5xx or failing at the socket."""
    seconds: float
    """Wall clock from the first request to the last answer."""


def hammer(host: str, port: int, path: str, requests: int, concurrency: int) -> LoadResult:
    """Send `requests` GETs of `path` over `concurrency` keep-alive connections."""
    per_thread = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
    latencies: list[list[int]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    barrier = threading.Barrier(concurrency + 1)

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=30)
        barrier.wait()
        for _ in range(per_thread[index]):
            start = time.perf_counter_ns()
            try:
                connection.request("GET", path, headers={"User-Agent": "siyu-bench"})
                response = connection.getresponse()
                response.read()
                ok = response.status < 400
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=30)
            elapsed = time.perf_counter_ns() - start
            if ok:
                latencies[index].append(elapsed)
            else:
                errors[index] += 1
        connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return LoadResult(sorted(ns for part in latencies for ns in part), sum(errors), seconds)


def hammer_in_subprocess(host: str, port: int, path: str, requests: int, concurrency: int) -> LoadResult:
    """`hammer` in a fresh process (spawned, so it shares nothing with the caller)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(hammer, host, port, path, requests, concurrency).result()


def percentile(sorted_ns: list[int], fraction: float) -> float:
    """Nearest-rank percentile in seconds (0 for no samples)."""
    if not sorted_ns:
        return 0.0
    index = min(len(sorted_ns) - 1, max(0, round(fraction * len(sorted_ns)) - 1))
    return sorted_ns[index] / 1e9
