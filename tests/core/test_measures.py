"""Measures for the queue model: arrival buckets, service-time moments, observed cold starts,
and the noise-aware rate statistics over a bucket history."""

from __future__ import annotations

import math
import random

import pytest

from autoscaler.core.measures import (
    RATE_BUCKET_S,
    RATE_HISTORY_S,
    SERVICE_MEMORY,
    ArrivalRates,
    ColdStartObserver,
    ServiceMoments,
    dispersion,
    mean_rate,
    peak_rate,
    poisson_error,
    rate_trend,
)


def poisson_history(seed: int, rate: float, buckets: int = 60) -> tuple[float, ...]:
    """Per-second rates of ``buckets`` Poisson bucket counts (Knuth's method, seeded)."""
    rng = random.Random(seed)
    limit = math.exp(-rate * RATE_BUCKET_S)
    out = []
    for _ in range(buckets):
        count, p = 0, rng.random()
        while p > limit:
            count += 1
            p *= rng.random()
        out.append(count / RATE_BUCKET_S)
    return tuple(out)


# -- ArrivalRates ------------------------------------------------------------------------------


def test_arrivals_bucketed_and_rate_over_span() -> None:
    arrivals = ArrivalRates(1000.0)
    for _ in range(5):
        arrivals.add(1001.0, 1.0, request=True)
    arrivals.add(1015.0, 3.0, request=True)
    assert arrivals.history(1025.0) == (0.5, 0.3)  # the partial bucket [1020, 1030) left out
    # last 30 s = buckets from 1000: 8 arrivals over the 25 s observed
    assert arrivals.rate(1025.0, 30.0) == pytest.approx(8 / 25)
    # last 10 s = the current bucket alone (nothing in it), covered 5 s
    assert arrivals.rate(1025.0, 10.0) == 0.0


def test_arrivals_leave_out_buckets_before_start() -> None:
    arrivals = ArrivalRates(1005.0)  # bucket [1000, 1010) only half observed
    arrivals.add(1006.0, 2.0, request=True)
    arrivals.add(1012.0, 4.0, request=True)
    assert arrivals.history(1021.0) == (0.4,)
    # the rate covers only the observed 16 s
    assert arrivals.rate(1021.0, 60.0) == pytest.approx(6 / 16)


def test_queued_then_started_counts_once() -> None:
    arrivals = ArrivalRates(0.0)
    arrivals.add(1.0, 3.0, request=False)  # queue 0 -> 3: three arrivals
    for _ in range(3):  # they start: each start +1, the queue shrinks 3 -> 0
        arrivals.add(2.0, 1.0, request=True)
    arrivals.add(2.0, -3.0, request=False)
    assert arrivals.history(10.0) == (0.3,)


def test_queue_drain_bucket_clamped_at_zero() -> None:
    arrivals = ArrivalRates(0.0)
    arrivals.add(1.0, 5.0, request=False)
    arrivals.add(12.0, -5.0, request=False)  # drained in the next bucket, no starts seen
    assert arrivals.history(20.0) == (0.5, 0.0)
    assert arrivals.rate(20.0, 20.0) == 0.0  # the window telescopes to 0


def test_arrivals_seen_only_with_request_events() -> None:
    arrivals = ArrivalRates(0.0)
    arrivals.add(1.0, 4.0, request=False)
    assert not arrivals.seen
    arrivals.add(2.0, 1.0, request=True)
    assert arrivals.seen


def test_arrival_history_keeps_ten_minutes() -> None:
    arrivals = ArrivalRates(0.0)
    arrivals.add(5.0, 10.0, request=True)
    assert len(arrivals.history(RATE_HISTORY_S - 5.0)) == int(RATE_HISTORY_S / RATE_BUCKET_S) - 1
    assert arrivals.history(RATE_HISTORY_S - 5.0)[0] == 1.0
    # one bucket later the first bucket has fallen out
    assert arrivals.history(RATE_HISTORY_S + 5.0)[0] == 0.0
    # a long silence clears everything
    assert not any(arrivals.history(10 * RATE_HISTORY_S))


# -- ServiceMoments ----------------------------------------------------------------------------


def test_service_moments_empty_and_single() -> None:
    moments = ServiceMoments()
    assert (moments.mean, moments.scv, moments.censored_mean(10.0)) == (None, None, None)
    moments.add(2.0)
    assert moments.mean == 2.0
    assert moments.scv is None  # one duration has no spread


def test_service_moments_plain_mean_then_scv() -> None:
    moments = ServiceMoments()
    moments.add(1.0)
    moments.add(3.0)
    assert moments.mean == pytest.approx(2.0)
    # E[X^2] = 5, mean^2 = 4: scv 1/4
    assert moments.scv == pytest.approx(0.25)
    assert moments.samples == 2


def test_service_moments_deterministic_scv_zero() -> None:
    moments = ServiceMoments()
    for _ in range(10):
        moments.add(1.5)
    assert moments.scv == pytest.approx(0.0, abs=1e-12)


def test_service_moments_exponentially_weighted_once_warm() -> None:
    moments = ServiceMoments()
    for _ in range(SERVICE_MEMORY):
        moments.add(1.0)
    moments.add(1.0 + SERVICE_MEMORY)  # weighs 1/SERVICE_MEMORY
    assert moments.mean == pytest.approx(2.0)
    assert moments.samples == SERVICE_MEMORY


@pytest.mark.parametrize(
    ("durations", "in_flight_age", "want"),
    [
        # (1 + 3 + 6 s still running) / 2 completions
        pytest.param([1.0, 3.0], 6.0, 5.0, id="censored-above-mean"),
        pytest.param([1.0, 3.0], 0.0, 2.0, id="nothing-running"),
        pytest.param([4.0], 1.0, 5.0, id="one-completion"),
    ],
)
def test_censored_mean(durations: list[float], in_flight_age: float, want: float) -> None:
    moments = ServiceMoments()
    for d in durations:
        moments.add(d)
    assert moments.censored_mean(in_flight_age) == pytest.approx(want)


def test_censored_mean_ignores_age_once_warm() -> None:
    moments = ServiceMoments()
    for _ in range(SERVICE_MEMORY):
        moments.add(2.0)
    assert moments.censored_mean(10_000.0) == pytest.approx(2.0)


# -- ColdStartObserver -------------------------------------------------------------------------


def observe(readings: list[tuple[float, int, int]]) -> float | None:
    cold = ColdStartObserver()
    for now, current, ready in readings:
        cold.observe(now, current, ready)
    return cold.mean_s


# (readings (now, current, ready), mean cold start)
COLD = [
    pytest.param([(0, 1, 1), (10, 1, 1)], None, id="no-scale-up"),
    # asked at the reading before current rose (0), ready 60 s later
    pytest.param([(0, 1, 1), (10, 2, 1), (30, 2, 1), (60, 2, 2)], 60.0, id="one-60s"),
    pytest.param([(0, 1, 1), (10, 2, 1), (30, 2, 1)], None, id="not-ready-yet"),
    pytest.param([(0, 1, 1), (10, 3, 1), (70, 3, 3)], 70.0, id="two-at-once"),
    # two asked, one removed again before it started: the other's 70 s stands
    pytest.param([(0, 1, 1), (10, 3, 1), (20, 2, 1), (70, 2, 2)], 70.0, id="one-cancelled"),
    # the cancelled ask (at 0) must not be matched to the later one's ready (100 - 0 = 100)
    pytest.param(
        [(0, 1, 1), (10, 2, 1), (20, 1, 1), (30, 1, 1), (40, 2, 1), (100, 2, 2)],
        70.0,
        id="cancelled-dropped",
    ),
    # running mean over COLD_START_MEMORY: 60, then 200 (asked at 60) moves it by 140 / 10
    pytest.param(
        [(0, 1, 1), (10, 2, 1), (60, 2, 2), (100, 3, 2), (260, 3, 3)],
        74.0,
        id="running-mean",
    ),
    # the oldest ask completes first: 50 s (asked at 0), then 60 s (asked at 10)
    pytest.param([(0, 1, 1), (10, 2, 1), (20, 3, 1), (50, 3, 2), (70, 3, 3)], 51.0, id="fifo"),
]


@pytest.mark.parametrize(("readings", "want"), COLD)
def test_cold_start_observer(readings: list[tuple[float, int, int]], want: float | None) -> None:
    got = observe(readings)
    if want is None:
        assert got is None
    else:
        assert got == pytest.approx(want)


# -- rate statistics ---------------------------------------------------------------------------


def test_mean_rate() -> None:
    assert mean_rate((), 60.0) == (0.0, 0.0)
    assert mean_rate((1.0, 2.0), 60.0) == (1.5, 20.0)  # only 20 s observed
    assert mean_rate((9.0, 1.0, 2.0, 3.0), 30.0) == (2.0, 30.0)


def test_poisson_error() -> None:
    assert poisson_error(4.0, 100.0) == pytest.approx(0.2)
    assert poisson_error(4.0, 100.0, 4.0) == pytest.approx(0.4)
    assert poisson_error(-1.0, 100.0) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_poisson_history_dispersion_near_one_no_trend(seed: int) -> None:
    history = poisson_history(seed, 5.0)
    assert 0.6 < dispersion(history) < 1.5
    assert rate_trend(history, RATE_HISTORY_S) == 0.0
    peak = peak_rate(history, 30.0, RATE_HISTORY_S)
    # the noise-lowered peak lies near the mean, far below the largest bucket
    assert 4.0 < peak < 6.0
    assert peak < max(history)


# (history, dispersion)
DISPERSION = [
    pytest.param((5.0,) * 7, 1.0, id="fewer-than-eight-buckets"),
    pytest.param((0.0,) * 20, 1.0, id="no-arrivals"),
    pytest.param((5.0,) * 20, 0.5, id="constant-floor"),
    # a steady ramp: successive differences are small, so it is not read as burstiness
    pytest.param(tuple(1.0 + 0.2 * i for i in range(30)), 0.5, id="ramp-not-bursty"),
    # counts 40, 60, 40, ...: differences 20, variance 400 / 2 over mean 50
    pytest.param(tuple(4.0 if i % 2 else 6.0 for i in range(30)), 4.0, id="alternating"),
    pytest.param(tuple(0.0 if i % 2 else 100.0 for i in range(30)), 50.0, id="ceiling"),
]


@pytest.mark.parametrize(("history", "want"), DISPERSION)
def test_dispersion(history: tuple[float, ...], want: float) -> None:
    assert dispersion(history) == pytest.approx(want)


# (history, span_s, dispersion, expected trend in (req/s)/s: low, high)
TREND = [
    # 0.2 req/s more every bucket = 0.02 (req/s)/s, less two standard errors
    pytest.param(tuple(1.0 + 0.2 * i for i in range(30)), 300.0, 1.0, 0.015, 0.02, id="ramp"),
    pytest.param(tuple(4.0 if i % 2 else 6.0 for i in range(30)), 300.0, 1.0, 0.0, 0.0, id="flat"),
    pytest.param((5.0,) * 30, 300.0, 1.0, 0.0, 0.0, id="constant"),
    pytest.param(tuple(10.0 - 0.2 * i for i in range(30)), 300.0, 1.0, 0.0, 0.0, id="falling"),
    pytest.param((1.0, 2.0, 3.0), 300.0, 1.0, 0.0, 0.0, id="too-few-buckets"),
    # a slight rise buried in Poisson noise (+0.1 req/s over 5 min at 5 req/s) does not count
    pytest.param(tuple(5.0 + 0.1 * i / 29 for i in range(30)), 300.0, 1.0, 0.0, 0.0, id="tiny"),
]


@pytest.mark.parametrize(("history", "span", "spread", "low", "high"), TREND)
def test_rate_trend(
    history: tuple[float, ...], span: float, spread: float, low: float, high: float
) -> None:
    trend = rate_trend(history, span, spread)
    assert low <= trend <= high
    if high > 0:
        assert trend > 0


def test_rate_trend_dispersion_widens_the_band() -> None:
    ramp = tuple(5.0 + 0.1 * i for i in range(30))
    assert rate_trend(ramp, 300.0, 1.0) > 0.0
    assert rate_trend(ramp, 300.0, 50.0) == 0.0


def test_rate_trend_uses_only_the_span() -> None:
    # a ramp long ago, flat for the last 100 s
    history = tuple(1.0 + 0.5 * i for i in range(20)) + (11.0,) * 10
    assert rate_trend(history, 300.0) > 0.0
    assert rate_trend(history, 100.0) == 0.0


def test_burst_raises_peak_rate() -> None:
    flat = (5.0,) * 43
    burst = (5.0,) * 30 + (20.0,) * 3 + (5.0,) * 10
    base = peak_rate(flat, 30.0, RATE_HISTORY_S)
    # 30 s window at 5 req/s less 2 x sqrt(5 / 30)
    assert base == pytest.approx(5.0 - 2.0 * math.sqrt(5.0 / 30.0))
    assert peak_rate(burst, 30.0, RATE_HISTORY_S) == pytest.approx(
        20.0 - 2.0 * math.sqrt(20.0 / 30.0)
    )
    # the burst lies beyond a 50 s look-back
    assert peak_rate(burst, 30.0, 50.0) == pytest.approx(base)


def test_peak_rate_short_history() -> None:
    assert peak_rate((), 30.0, 600.0) == 0.0
    assert peak_rate((5.0, 5.0), 30.0, 600.0) == 0.0  # no whole 30 s window yet
