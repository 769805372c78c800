"""Per-attempt token buckets: how many events one attempt may send, in this process.

A bucket holds up to `burst` events and refills at `rate` events a second; a request takes
one token per event or is refused whole, with the wait until it would fit. Buckets live in
the process, not in Redis or PostgreSQL: the check runs on every monitoring request and
costs a dict lookup, where a shared counter would cost a network round trip. The browser SDK
sends over one keep-alive connection, so an honest client meets one process and the full
rate; a client spreading requests over many connections reaches at most workers × rate,
still bounded (README, "Ingestion limits").
"""

from __future__ import annotations

import math
import time
import uuid

MAX_BUCKETS = 100_000
# How often an exam page sends a heartbeat: the start response tells the page, and the
# integrity analysis reads silences in these units.
HEARTBEAT_SECONDS = 5


class EventBuckets:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[uuid.UUID, tuple[float, float]] = {}  # attempt -> (tokens, at)

    def take(self, attempt_id: uuid.UUID, events: int) -> int:
        """Take `events` tokens and return 0, or take none and return the seconds to wait."""
        now = time.monotonic()
        held = self._buckets.get(attempt_id)
        tokens = self.burst if held is None else min(
            self.burst, held[0] + (now - held[1]) * self.rate)
        if tokens >= events:
            if held is None and len(self._buckets) >= MAX_BUCKETS:
                self._forget_full(now)
            self._buckets[attempt_id] = (tokens - events, now)
            return 0
        self._buckets[attempt_id] = (tokens, now)
        return max(1, math.ceil((min(events, self.burst) - tokens) / self.rate))

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled: forgetting them changes nothing."""
        self._buckets = {attempt: (tokens, at) for attempt, (tokens, at) in self._buckets.items()
                         if tokens + (now - at) * self.rate < self.burst}
