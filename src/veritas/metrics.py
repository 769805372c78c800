"""Process-local Prometheus metrics (each worker process reports its own series)."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.latency_sum: dict[str, float] = defaultdict(float)

    def count_request(self, method: str, status: int) -> None:
        self.requests[(method, status)] += 1

    def observe(self, name: str, seconds: float) -> None:
        counts = self.latency[name]
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                counts[i] += 1
                break
        else:
            counts[-1] += 1
        self.latency_sum[name] += seconds

    def render(self, gauges: dict[str, float]) -> str:
        pid = os.getpid()
        lines = ["# TYPE veritas_http_requests_total counter"]
        for (method, status), n in sorted(self.requests.items()):
            lines.append(f'veritas_http_requests_total{{pid="{pid}",method="{method}",'
                         f'status="{status}"}} {n}')
        lines.append("# TYPE veritas_latency_seconds histogram")
        for name, counts in sorted(self.latency.items()):
            total = 0
            for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                total += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'veritas_latency_seconds_bucket{{pid="{pid}",op="{name}",'
                             f'le="{le}"}} {total}')
            lines.append(f'veritas_latency_seconds_count{{pid="{pid}",op="{name}"}} {total}')
            lines.append(f'veritas_latency_seconds_sum{{pid="{pid}",op="{name}"}} '
                         f"{self.latency_sum[name]:.6f}")
        for name, value in sorted(gauges.items()):
            lines.append(f"# TYPE veritas_{name} gauge")
            lines.append(f'veritas_{name}{{pid="{pid}"}} {value}')
        return "\n".join(lines) + "\n"


def collection_timer(metrics: Metrics) -> Callable[[str, dict[str, Any]], None]:
    """A gc.callbacks entry that observes each collection's pause as op="gc_generation_N":
    every request in the process waits while one runs."""
    started = 0.0

    def callback(phase: str, info: dict[str, Any]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            metrics.observe(f"gc_generation_{info['generation']}", time.perf_counter() - started)

    return callback
