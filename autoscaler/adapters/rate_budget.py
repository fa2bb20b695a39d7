"""A client-side request budget: ``qps`` requests a second on average, bursts of ``burst``.

A token bucket like client-go's (``--kube-api-qps``/``--kube-api-burst``): every request to
the API server takes a token first, and a request with none left waits for one rather than
being dropped, so a thousand deployments scaling at once are spread out instead of tripping
the API server's priority-and-fairness limits. ``reserve`` is pure arithmetic on the clock it
is handed, so it is tested without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class RequestBudget:
    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"qps must be > 0 and burst >= 1 (got {qps}, {burst})")
        self.qps = qps
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self.granted = 0
        """Requests let through so far (the benchmark's request count)."""

    def reserve(self) -> float:
        """Take a token; return how long to wait before using it (0 when one was there).

        Tokens may go negative: each waiting request holds a reservation, so waiters are
        served in order at exactly ``qps`` and never more than ``burst`` go at once.
        """
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.qps)
        self._at = now
        self._tokens -= 1.0
        self.granted += 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    async def acquire(self) -> float:
        """Wait for a token; return the seconds waited."""
        delay = self.reserve()
        if delay > 0:
            await asyncio.sleep(delay)
        return delay
