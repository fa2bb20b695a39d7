"""Time windows over a piecewise-constant signal, in fixed-width buckets.

``SlidingMean`` integrates the signal (area under the curve) into buckets and keeps a running
total, so both updating and reading the mean cost O(1) amortized: with thousands of
deployments evaluated every tick, summing every bucket on each read would dominate.

``window_max`` / ``window_min`` / ``prune_history`` work on run-length histories of
``(since_ts, value)`` pairs, used for stabilization windows (HPA-style delays).
"""

from __future__ import annotations

import math
from array import array


class SlidingMean:
    """Time-weighted mean of a step signal over the last ``window_s`` seconds.

    The caller reports each change with ``set(now, value)``; time must not go backwards
    (the tracker clamps it). Until a full window has been observed the mean is taken over
    the observed span only, so a fresh tracker does not read "no history" as "no load".
    """

    __slots__ = (
        "_areas",
        "_bucket_s",
        "_head",
        "_n",
        "_nonzero",
        "_start",
        "_t",
        "_total",
        "_value",
        "window_s",
    )

    def __init__(self, window_s: float, start: float, bucket_s: float = 1.0) -> None:
        if window_s <= 0 or bucket_s <= 0:
            raise ValueError("window_s and bucket_s must be positive")
        self.window_s = window_s
        self._bucket_s = min(bucket_s, window_s)
        self._n = max(1, math.ceil(window_s / self._bucket_s))
        # Doubles in place, not a list of float objects: a deployment keeps four of these
        # windows, and boxed floats were a fifth of the memory each deployment held.
        self._areas = array("d", bytes(8 * self._n))
        self._total = 0.0
        self._nonzero = 0  # buckets holding a nonzero area (see _rotate_to)
        self._start = start
        self._t = start
        self._head = math.floor(start / self._bucket_s)
        self._value = 0.0

    @property
    def value(self) -> float:
        return self._value

    def set(self, now: float, value: float) -> None:
        if now > self._t:
            self._integrate(now)
        self._value = value

    def mean(self, now: float) -> float:
        if now > self._t:
            self._integrate(now)
        first_bucket = self._head - self._n + 1
        span = min(now - first_bucket * self._bucket_s, now - self._start)
        if span <= 0:
            return self._value
        mean = self._total / span
        # Running totals drift by float rounding; a signal that has been 0 for a whole
        # window must read exactly 0 so scale-to-zero is not blocked by 1e-17.
        return mean if mean > 1e-9 else 0.0

    def _rotate_to(self, bucket: int) -> None:
        steps = bucket - self._head
        if steps >= self._n:
            self._areas = array("d", bytes(8 * self._n))
            self._total = 0.0
            self._nonzero = 0
        else:
            areas, n = self._areas, self._n
            for k in range(self._head + 1, bucket + 1):
                i = k % n
                area = areas[i]
                if area != 0.0:
                    self._nonzero -= 1
                    self._total -= area
                    areas[i] = 0.0
            if self._nonzero == 0:
                # Subtracting what was added leaves rounding residue that grows with the
                # magnitude of the signal (~1e-5 after a day of queue lengths ~1e8, far above
                # the 1e-9 guard in mean()): once every bucket is empty the total is exactly 0.
                self._total = 0.0
        self._head = bucket

    def _integrate(self, now: float) -> None:
        b = self._bucket_s
        t0, value = self._t, self._value
        last = math.floor(now / b)
        if last > self._head:
            self._rotate_to(last)
        self._t = now
        if value == 0.0:
            return
        first = max(math.floor(t0 / b), last - self._n + 1)
        n = self._n
        if first == last:
            # Clip to the bucket's start: with a single bucket (window_s <= bucket_s) ``first``
            # may have been clipped forward, and ``now - t0`` then counted the whole idle gap
            # into one bucket (a mean of 11 for a signal that was 1).
            self._add(last % n, value * (now - max(t0, last * b)))
            return
        for k in range(first, last + 1):
            lo = max(t0, k * b)
            hi = min(now, (k + 1) * b)
            if hi > lo:
                self._add(k % n, value * (hi - lo))

    def _add(self, i: int, area: float) -> None:
        areas = self._areas
        old = areas[i]  # read once: each read of an array('d') makes a float
        new = old + area
        areas[i] = new
        if old == 0.0:
            self._nonzero += 1
        if new == 0.0:  # only if a negative value cancelled it exactly
            self._nonzero -= 1
        self._total += area


History = tuple[tuple[float, int], ...]
"""Run-length history: each ``(since_ts, value)`` holds from ``since_ts`` until the next."""


def record(history: History, now: float, value: int, keep_s: float) -> History:
    """Append ``value`` at ``now`` (dropping a repeat) and forget what ended before
    ``now - keep_s``, always keeping the entry in effect at the window's start."""
    updated = history if history and history[-1][1] == value else (*history, (now, value))
    return prune_history(updated, now - keep_s)


def prune_history(history: History, cutoff: float) -> History:
    keep_from = 0
    for i in range(len(history) - 1, -1, -1):
        if history[i][0] <= cutoff:
            keep_from = i
            break
    return history[keep_from:] if keep_from else history


def _in_window(history: History, cutoff: float) -> list[int]:
    values: list[int] = []
    for i, (since, value) in enumerate(history):
        ends = history[i + 1][0] if i + 1 < len(history) else math.inf
        if ends > cutoff or since >= cutoff:
            values.append(value)
    return values


def window_max(history: History, now: float, window_s: float) -> int | None:
    """Largest value in effect at any time in ``[now - window_s, now]``."""
    values = _in_window(history, now - window_s)
    return max(values) if values else None


def window_min(history: History, now: float, window_s: float) -> int | None:
    """Smallest value in effect at any time in ``[now - window_s, now]``."""
    values = _in_window(history, now - window_s)
    return min(values) if values else None
