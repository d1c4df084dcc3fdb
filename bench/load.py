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


Request = tuple[str, str, bytes | None, dict[str, str]]
"""(method, path, body, extra headers) of one request."""


def _hammer(host: str, port: int, shares: list[list[Request]], timeout: float) -> LoadResult:
    """Send each thread's share of requests back to back over its own keep-alive connection."""
    latencies: list[list[int]] = [[] for _ in shares]
    errors = [0] * len(shares)
    barrier = threading.Barrier(len(shares) + 1)

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        barrier.wait()
        for method, path, body, headers in shares[index]:
            start = time.perf_counter_ns()
            try:
                connection.request(method, path, body=body, headers={"User-Agent": "siyu-bench", **headers})
                response = connection.getresponse()
                response.read()
                ok = response.status < 400
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=timeout)
            elapsed = time.perf_counter_ns() - start
            if ok:
                latencies[index].append(elapsed)
            else:
                errors[index] += 1
        connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(shares))]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return LoadResult(sorted(ns for part in latencies for ns in part), sum(errors), seconds)


def hammer(host: str, port: int, path: str, requests: int, concurrency: int) -> LoadResult:
    """Send `requests` GETs of `path` over `concurrency` keep-alive connections."""
    get: Request = ("GET", path, None, {})
    per_thread = [requests // concurrency + (1 if i < requests % concurrency else 0) for i in range(concurrency)]
    return _hammer(host, port, [[get] * n for n in per_thread], timeout=30)


def load_process() -> ProcessPoolExecutor:
    """One load-client process for a whole bench run: spawned (it shares nothing with the caller)
    once, because a spawned child imports the caller's main module again (the `siyu` CLI, seconds)."""
    return ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))


def hammer_in_subprocess(
    pool: ProcessPoolExecutor, host: str, port: int, path: str, requests: int, concurrency: int
) -> LoadResult:
    """`hammer` in the load process `pool` (see `load_process`)."""
    return pool.submit(hammer, host, port, path, requests, concurrency).result()


def percentile(sorted_ns: list[int], fraction: float) -> float:
    """Nearest-rank percentile in seconds (0 for no samples)."""
    if not sorted_ns:
        return 0.0
    index = min(len(sorted_ns) - 1, max(0, round(fraction * len(sorted_ns)) - 1))
    return sorted_ns[index] / 1e9


def hammer_posts(
    host: str, port: int, requests: list[tuple[str, bytes]], concurrency: int, content_type: str = "text/xml"
) -> LoadResult:
    """POST each (path, body) of `requests` once, spread over `concurrency` keep-alive connections."""
    posts: list[Request] = [("POST", path, body, {"Content-Type": content_type}) for path, body in requests]
    return _hammer(host, port, [posts[i::concurrency] for i in range(concurrency)], timeout=60)
