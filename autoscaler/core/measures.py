"""What a queueing model needs, measured from the event stream: arrival rates, service-time
moments and the cold start a deployment actually shows.

Each measure is a small object the tracker feeds on its own (monotonic) clock. They are kept
apart from the load windows because they answer different questions: the load windows say how
busy the replicas *are*; these say how much work *arrives* and how long a new replica takes,
which is what sizing for a latency target needs.
"""

from __future__ import annotations

import math
from array import array

RATE_BUCKET_S = 10.0
"""Width of one arrival-count bucket. Ten seconds resolves a burst's onset well inside a
one-minute cold start and keeps the history small (60 floats for ten minutes)."""
RATE_HISTORY_S = 600.0
"""How far back the per-bucket arrival history reaches: several cold starts of a GPU replica,
so a policy can take its peak over a look-back of at least one."""
PEAK_WINDOW_S = 30.0
"""Rates for the peak are counted over this span: short enough to see a burst's first half
minute, long enough that a handful of Poisson arrivals do not read as one."""
SERVICE_MEMORY = 1000
"""Completions behind the service-time moments once warmed up (exponential weighting)."""
_BUCKETS = int(RATE_HISTORY_S / RATE_BUCKET_S)
COLD_START_MEMORY = 10
"""Observed cold starts behind their running mean."""


class ArrivalRates:
    """Arrivals counted per ``RATE_BUCKET_S`` bucket over the last ``RATE_HISTORY_S``.

    An arrival is a request that started, or one more request queued: the count moves by one
    per ``request_started`` and by the change of the queue length, so a request that is queued
    and then started counts once (+1 queued, then -1 queued +1 started). Counts of a bucket may
    go negative when a queue drains; sums over whole windows telescope and are clamped at 0.
    """

    __slots__ = ("_counts", "_head", "_kept", "_seen", "_start")

    def __init__(self, start: float) -> None:
        self._start = start
        self._head = math.floor(start / RATE_BUCKET_S)
        # A ring of doubles, bucket k at k % _BUCKETS: a deque of boxed floats was 2 KiB.
        self._counts = array("d", bytes(8 * _BUCKETS))
        self._kept = 1  # buckets held, the current one included (at most _BUCKETS)
        self._seen = False

    @property
    def seen(self) -> bool:
        """Whether any request event has been counted (a gauge-only deployment has none)."""
        return self._seen

    def add(self, now: float, count: float, *, request: bool) -> None:
        self._advance(now)
        self._counts[self._head % _BUCKETS] += count
        self._seen = self._seen or request

    def history(self, now: float) -> tuple[float, ...]:
        """Arrivals per second in each *completed* bucket, oldest first (the current, partial
        bucket is left out: ``rate`` covers it)."""
        self._advance(now)
        counts, head = self._counts, self._head
        first = head - self._kept + 1
        # Buckets before the tracker started hold no observation: leave them out.
        first = max(first, math.ceil(self._start / RATE_BUCKET_S))
        return tuple(max(0.0, counts[k % _BUCKETS]) / RATE_BUCKET_S for k in range(first, head))

    def rate(self, now: float, span_s: float) -> float:
        """Mean arrivals per second over the last ``span_s`` (or the observed part of it),
        the current partial bucket included."""
        self._advance(now)
        counts, head = self._counts, self._head
        n = min(self._kept, max(1, math.ceil(span_s / RATE_BUCKET_S)))
        total = sum(counts[k % _BUCKETS] for k in range(head - n + 1, head + 1))
        covered = now - max((head - n + 1) * RATE_BUCKET_S, self._start)
        return max(0.0, total) / max(1.0, covered)

    def _advance(self, now: float) -> None:
        bucket = math.floor(now / RATE_BUCKET_S)
        steps = bucket - self._head
        if steps <= 0:
            return
        # A silence longer than the history leaves a history of zeros, not an empty one: "no
        # arrivals for ten minutes" is an observation.
        counts = self._counts
        for k in range(self._head + 1, self._head + 1 + min(steps, _BUCKETS)):
            counts[k % _BUCKETS] = 0.0
        self._kept = min(self._kept + steps, _BUCKETS)
        self._head = bucket


class ServiceMoments:
    """Exponentially weighted mean and second moment of request durations.

    The first completions weigh ``1/n`` each (a plain mean), later ones ``1/SERVICE_MEMORY``:
    the estimate settles quickly and then follows drift slowly. The policy blends these with its
    own prior, weighted by ``samples``: right after a start the requests that finish first are
    the short ones, and a handful of them must not set the size of the fleet.
    """

    __slots__ = ("_m1", "_m2", "_total", "samples")

    def __init__(self) -> None:
        self._m1 = 0.0
        self._m2 = 0.0
        self._total = 0.0
        self.samples = 0

    def add(self, duration: float) -> None:
        if self.samples < SERVICE_MEMORY:
            self._total += duration
        self.samples = min(self.samples + 1, SERVICE_MEMORY)
        weight = 1.0 / self.samples
        self._m1 += (duration - self._m1) * weight
        self._m2 += (duration * duration - self._m2) * weight

    @property
    def mean(self) -> float | None:
        return self._m1 if self.samples else None

    def censored_mean(self, in_flight_age_s: float) -> float | None:
        """While the moments are young, the mean counting the time already spent by requests
        still running ("total time on test" over completions, the estimator of censored
        lifetimes): right after a start only the short requests have finished, and their mean
        alone would understate the service time by as much as the long ones are still out."""
        if not self.samples:
            return None
        if self.samples >= SERVICE_MEMORY:
            return self._m1
        return max(self._m1, (self._total + in_flight_age_s) / self.samples)

    @property
    def scv(self) -> float | None:
        """Squared coefficient of variation, variance / mean^2 (1 for exponential service)."""
        if self.samples < 2 or self._m1 <= 0:
            return None
        return max(0.0, self._m2 / (self._m1 * self._m1) - 1.0)


class ColdStartObserver:
    """Seconds from a scale-up being asked for to the replicas becoming ready, as seen in the
    replica counts each decision reads.

    A rise of ``current`` between two readings was asked for at the earlier one (decisions are
    applied right after they are read); each rise of ``ready`` then completes the oldest asks
    first. A fall of ``current`` below ``ready + pending`` cancels the newest asks: those replicas
    were removed before they started.
    """

    __slots__ = ("_current", "_last_ts", "_pending", "_ready", "_waiting", "mean_s")

    def __init__(self) -> None:
        # Asks not yet ready, oldest first, as runs of [asked at, replicas]: one run per
        # scale-up, however large (a deque of one timestamp per replica took 0.5 KiB empty).
        self._pending: list[list[float]] = []
        self._waiting = 0  # replicas in the runs
        self._current: int | None = None
        self._ready = 0
        self._last_ts = 0.0
        self.mean_s: float | None = None

    def observe(self, now: float, current: int, ready: int) -> None:
        if self._current is None:
            self._current, self._ready, self._last_ts = current, ready, now
            return
        pending = self._pending
        if current > self._current:
            pending.append([self._last_ts, current - self._current])
            self._waiting += current - self._current
        became_ready = ready - self._ready
        while became_ready > 0 and pending:
            run = pending[0]
            self._sample(now - run[0])
            run[1] -= 1
            self._waiting -= 1
            became_ready -= 1
            if not run[1]:
                del pending[0]
        while pending and ready + self._waiting > current:
            run = pending[-1]
            cancelled = min(run[1], ready + self._waiting - current)
            run[1] -= cancelled
            self._waiting -= int(cancelled)
            if not run[1]:
                pending.pop()
        self._current, self._ready, self._last_ts = current, ready, now

    def _sample(self, seconds: float) -> None:
        previous = self.mean_s
        self.mean_s = (
            seconds if previous is None else previous + (seconds - previous) / COLD_START_MEMORY
        )


Z = 2.0
"""Standard errors a rate must move before it counts as a change rather than Poisson noise:
about one false alarm in forty readings (one-sided)."""


def mean_rate(history: tuple[float, ...], span_s: float) -> tuple[float, float]:
    """Mean arrival rate over the last ``span_s`` of completed buckets, and the seconds it
    covers (fewer right after a start)."""
    n = min(len(history), max(1, round(span_s / RATE_BUCKET_S)))
    if not history:
        return 0.0, 0.0
    return sum(history[-n:]) / n, n * RATE_BUCKET_S


def poisson_error(rate: float, span_s: float, dispersion: float = 1.0) -> float:
    """Standard error of a rate counted over ``span_s`` seconds of arrivals whose counts have
    the given index of ``dispersion`` (1 = Poisson)."""
    return math.sqrt(max(rate, 0.0) * dispersion / max(span_s, 1.0))


def dispersion(history: tuple[float, ...]) -> float:
    """Index of dispersion of the bucket counts (variance / mean; 1 for Poisson arrivals, more
    for bursty ones), from successive differences so that a slow change of the rate is not read
    as burstiness. It stands in for the arrivals' squared coefficient of variation in the queue
    model and widens every noise band. 1 until there are eight buckets; within [0.5, 50]."""
    n = len(history)
    if n < 8:
        return 1.0
    counts = [r * RATE_BUCKET_S for r in history]
    mean = sum(counts) / n
    if mean <= 0:
        return 1.0
    var = sum((counts[i] - counts[i - 1]) ** 2 for i in range(1, n)) / (2 * (n - 1))
    return min(50.0, max(0.5, var / mean))


def peak_rate(
    history: tuple[float, ...], window_s: float, lookback_s: float, dispersion: float = 1.0
) -> float:
    """The largest mean rate over ``window_s`` of whole buckets among windows ending in the
    last ``lookback_s`` of ``history`` (rates per ``RATE_BUCKET_S``, oldest first), each
    lowered by ``Z`` standard errors: a window counts only for what it shows beyond noise (the
    largest of many noisy windows is biased high by about as much)."""
    per = max(1, round(window_s / RATE_BUCKET_S))
    n = len(history)
    steps = min(n - per + 1, math.ceil(lookback_s / RATE_BUCKET_S))
    span = per * RATE_BUCKET_S
    best = 0.0
    for k in range(max(0, steps)):
        end = n - k
        rate = sum(history[end - per : end]) / per
        best = max(best, rate - Z * poisson_error(rate, span, dispersion))
    return best


def rate_trend(history: tuple[float, ...], span_s: float, dispersion: float = 1.0) -> float:
    """Least-squares slope of the bucket rates over the last ``span_s``, in (req/s) per second,
    lowered by ``Z`` standard errors and never below 0: only a rise that stands out of the
    Poisson noise of the buckets is carried forward. 0 with fewer than four buckets."""
    n = min(len(history), math.floor(span_s / RATE_BUCKET_S))
    if n < 4:
        return 0.0
    ys = history[-n:]
    mean_x = (n - 1) / 2
    mean_y = sum(ys) / n
    sxy = sum((i - mean_x) * (y - mean_y) for i, y in enumerate(ys))
    sxx = n * (n * n - 1) / 12
    slope = sxy / sxx
    # A bucket rate of Poisson arrivals has variance rate / bucket width.
    error = math.sqrt(max(mean_y, 0.0) * dispersion / RATE_BUCKET_S / sxx)
    return max(0.0, slope - Z * error) / RATE_BUCKET_S
