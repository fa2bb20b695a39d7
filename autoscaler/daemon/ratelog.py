"""Log lines with a rate limit, for what a producer can make happen at any rate (rejected
events): one 8 MiB body once wrote 472 MB of logs, a line per element. The metrics count
everything; the log shows a sample and how much it left out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class RateLimitedLog:
    """At most ``per_s`` lines per second of ``clock``; the lines held back are counted, and
    the next line that goes out carries that count as ``suppressed``."""

    def __init__(self, logger: Any, clock: Callable[[], float], per_s: int = 10) -> None:
        self.logger = logger
        self.clock = clock
        self.per_s = per_s
        self.suppressed = 0
        self._window_start = -float("inf")
        self._sent = 0

    def warning(self, event: str, **fields: Any) -> bool:
        """Log, or count the line as suppressed; True when it was logged."""
        now = self.clock()
        # A clock stepped back (NTP) starts a new window too, or it would stay shut.
        if not 0 <= now - self._window_start < 1.0:
            self._window_start, self._sent = now, 0
        if self._sent >= self.per_s:
            self.suppressed += 1
            return False
        self._sent += 1
        if self.suppressed:
            fields["suppressed"] = self.suppressed
            self.suppressed = 0
        self.logger.warning(event, **fields)
        return True
