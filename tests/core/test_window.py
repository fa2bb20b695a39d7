"""SlidingMean against a brute-force reference, and the run-length history helpers."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.core.window import (
    History,
    SlidingMean,
    prune_history,
    record,
    window_max,
    window_min,
)

# -- reference -----------------------------------------------------------------------------


def reference_mean(
    steps: list[tuple[float, float]],
    start: float,
    now: float,
    window_s: float,
    bucket_s: float,
) -> float:
    """Exact time-weighted mean of the step signal ``steps`` (``(since, value)``, starting
    at 0 from ``start``) over the span SlidingMean averages: the last ``n`` buckets up to
    ``now`` (the bucket holding ``now`` and the ``n - 1`` before it), clipped to the time
    since ``start``. ``n = ceil(window_s / bucket_s)``, with ``bucket_s`` capped at
    ``window_s``."""
    b = min(bucket_s, window_s)
    n = max(1, math.ceil(window_s / b))
    lo = max(start, (math.floor(now / b) - n + 1) * b)
    signal = [(start, 0.0), *steps]
    if now - lo <= 0:
        return signal[-1][1]
    parts = []
    for i, (since, value) in enumerate(signal):
        until = signal[i + 1][0] if i + 1 < len(signal) else now
        a, z = max(since, lo), min(until, now)
        if z > a:
            parts.append(value * (z - a))
    return math.fsum(parts) / (now - lo)


# -- property test -------------------------------------------------------------------------

# (advance in ms, value, read?) — times on a millisecond grid so spans are never absurdly tiny.
_action = st.tuples(
    st.one_of(
        st.integers(0, 3_000),
        st.integers(0, 200_000),  # occasionally a gap of several windows
    ),
    st.one_of(
        st.sampled_from([0.0, 1.0, 2.0, 5.0, 100.0]),
        st.floats(0, 1_000, allow_nan=False, allow_infinity=False),
    ),
    st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(
    window_s=st.sampled_from([0.5, 1.0, 3.0, 6.0, 7.5, 10.0, 60.0]),
    bucket_s=st.sampled_from([0.1, 0.25, 0.5, 1.0, 2.0]),
    start_ms=st.integers(0, 10_000_000),
    actions=st.lists(_action, min_size=1, max_size=60),
)
def test_mean_matches_brute_force(
    window_s: float,
    bucket_s: float,
    start_ms: int,
    actions: list[tuple[int, float, bool]],
) -> None:
    start = start_ms / 1000
    sm = SlidingMean(window_s, start, bucket_s=bucket_s)
    steps: list[tuple[float, float]] = []
    now_ms = start_ms
    checked = 0
    for advance_ms, value, read in actions:
        now_ms += advance_ms
        now = now_ms / 1000
        if read:
            expected = reference_mean(steps, start, now, window_s, bucket_s)
            actual = sm.mean(now)
            assert math.isclose(actual, expected, rel_tol=1e-6, abs_tol=1e-9), (
                f"mean({now}) = {actual}, reference {expected}"
            )
            checked += 1
        else:
            sm.set(now, value)
            steps.append((now, value))
            assert sm.value == value
    # The final read is always checked, even if every action was a set.
    expected = reference_mean(steps, start, now_ms / 1000, window_s, bucket_s)
    assert math.isclose(sm.mean(now_ms / 1000), expected, rel_tol=1e-6, abs_tol=1e-9)


# -- examples ------------------------------------------------------------------------------


def test_less_than_a_full_window_averages_over_the_observed_span_only() -> None:
    sm = SlidingMean(60.0, start=100.0)
    sm.set(100.0, 2.0)
    # 10 s observed out of a 60 s window: the mean is 2, not 2 * 10 / 60.
    assert sm.mean(110.0) == pytest.approx(2.0)
    sm.set(110.0, 0.0)
    # 20 s observed: 10 s at 2 and 10 s at 0.
    assert sm.mean(120.0) == pytest.approx(1.0)
    # 40 s observed: 20 area over 40 s.
    assert sm.mean(140.0) == pytest.approx(0.5)


def test_span_is_the_last_n_buckets_up_to_now() -> None:
    sm = SlidingMean(60.0, start=0.0)
    sm.set(0.0, 4.0)
    sm.set(30.0, 0.0)
    # At 70.5 the ring holds buckets 11..70: the span is [11, 70.5] = 59.5 s, of which
    # [11, 30) carried 4.
    assert sm.mean(70.5) == pytest.approx(4.0 * 19 / 59.5)
    # At a bucket boundary the newest bucket is empty: span [31, 90] = 59 s, all zero.
    assert sm.mean(90.0) == 0.0


def test_mean_before_any_time_passes_is_the_current_value() -> None:
    sm = SlidingMean(60.0, start=50.0)
    assert sm.mean(50.0) == 0.0
    sm.set(50.0, 5.0)
    assert sm.mean(50.0) == 5.0
    assert sm.mean(50.5) == pytest.approx(5.0)


def test_exactly_zero_after_a_full_window_of_zeros() -> None:
    sm = SlidingMean(10.0, start=0.0)
    for i in range(100):
        sm.set(i * 0.37, (i % 7) * 0.1 + 0.3)
    sm.set(37.0, 0.0)
    for k in range(1, 20):
        sm.mean(37.0 + k * 0.5)  # walk through the zero window bucket by bucket
    assert sm.mean(48.0) == 0.0  # exactly, not 1e-17
    assert sm.mean(48.0) == 0.0


def test_exactly_zero_after_a_window_of_zeros_despite_large_values() -> None:
    # Regression: the running total used to keep the rounding residue of thousands of
    # add/subtract pairs, ~5e-6 for queue lengths ~1e8 (far above the 1e-9 guard), so a
    # deployment that had drained still read as loaded and could not scale to zero.
    rng = random.Random(0)
    sm = SlidingMean(60.0, start=0.0)
    t = 0.0
    for _ in range(20_000):
        t += rng.random() * 0.7
        sm.set(t, rng.choice([1e8, 3e8 + 0.3, 7e7 + 0.1, 1e9]))
    sm.set(t, 0.0)
    value = None
    for k in range(1, 130):
        value = sm.mean(t + k * 0.5)
    assert value == 0.0


def test_long_idle_gaps() -> None:
    sm = SlidingMean(60.0, start=0.0)
    sm.set(0.0, 3.0)
    # Held constant through a gap of many windows: still 3.
    assert sm.mean(100_000.5) == pytest.approx(3.0)
    sm.set(100_000.5, 0.0)
    # A second long gap at 0: exactly 0.
    assert sm.mean(1_000_000.25) == 0.0
    sm.set(1_000_000.25, 1.0)
    assert sm.mean(1_000_030.25) == pytest.approx(30.0 / (1_000_030.25 - 999_971))


def test_single_bucket_window_does_not_count_an_idle_gap_into_one_bucket() -> None:
    # Regression: with one bucket (window_s <= bucket_s) a gap longer than the bucket was
    # integrated whole into it: a signal of 1 read as 11.
    sm = SlidingMean(1.0, start=0.0)
    sm.set(0.0, 1.0)
    assert sm.mean(5.5) == pytest.approx(1.0)
    half = SlidingMean(0.5, start=0.0)
    half.set(0.0, 1.0)
    assert half.mean(3.25) == pytest.approx(1.0)


def test_unix_scale_timestamps() -> None:
    start = 1_700_000_000.0
    sm = SlidingMean(60.0, start=start)
    sm.set(start, 10.0)
    sm.set(start + 30.0, 20.0)
    assert sm.mean(start + 45.0) == pytest.approx((10 * 30 + 20 * 15) / 45)


@pytest.mark.parametrize(
    ("window_s", "bucket_s"), [(0.0, 1.0), (-1.0, 1.0), (10.0, 0.0), (10.0, -2.0)]
)
def test_rejects_non_positive_sizes(window_s: float, bucket_s: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        SlidingMean(window_s, start=0.0, bucket_s=bucket_s)


# -- history helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "now", "value", "keep_s", "expected"),
    [
        pytest.param((), 10.0, 3, 60.0, ((10.0, 3),), id="first entry"),
        pytest.param(((10.0, 3),), 20.0, 3, 60.0, ((10.0, 3),), id="repeat dropped"),
        pytest.param(((10.0, 3),), 20.0, 4, 60.0, ((10.0, 3), (20.0, 4)), id="change appended"),
        pytest.param(
            ((0.0, 1), (50.0, 2), (100.0, 3)),
            120.0,
            4,
            60.0,
            ((50.0, 2), (100.0, 3), (120.0, 4)),
            id="keeps the entry in effect at the window start",
        ),
        pytest.param(
            ((0.0, 1), (60.0, 2)),
            120.0,
            3,
            60.0,
            ((60.0, 2), (120.0, 3)),
            id="entry starting at cutoff",
        ),
        pytest.param(
            ((0.0, 1), (50.0, 2)), 200.0, 2, 60.0, ((50.0, 2),), id="repeat dropped and old pruned"
        ),
    ],
)
def test_record(history: History, now: float, value: int, keep_s: float, expected: History) -> None:
    assert record(history, now, value, keep_s) == expected


@pytest.mark.parametrize(
    ("history", "cutoff", "expected"),
    [
        pytest.param((), 10.0, (), id="empty"),
        pytest.param(((10.0, 1), (20.0, 2)), 5.0, ((10.0, 1), (20.0, 2)), id="all after cutoff"),
        pytest.param(
            ((10.0, 1), (20.0, 2), (30.0, 3)),
            25.0,
            ((20.0, 2), (30.0, 3)),
            id="keeps entry in effect",
        ),
        pytest.param(
            ((10.0, 1), (20.0, 2), (30.0, 3)),
            20.0,
            ((20.0, 2), (30.0, 3)),
            id="entry starts at cutoff",
        ),
        pytest.param(
            ((10.0, 1), (20.0, 2), (30.0, 3)),
            19.99,
            ((10.0, 1), (20.0, 2), (30.0, 3)),
            id="just before the second",
        ),
        pytest.param(((10.0, 1), (20.0, 2), (30.0, 3)), 100.0, ((30.0, 3),), id="only the last"),
    ],
)
def test_prune_history(history: History, cutoff: float, expected: History) -> None:
    assert prune_history(history, cutoff) == expected


@pytest.mark.parametrize(
    ("history", "now", "window_s", "expected_max", "expected_min"),
    [
        pytest.param((), 100.0, 10.0, None, None, id="empty"),
        pytest.param(((0.0, 5),), 100.0, 10.0, 5, 5, id="old entry still in effect"),
        pytest.param(((0.0, 5), (95.0, 2)), 100.0, 10.0, 5, 2, id="change inside window"),
        pytest.param(((0.0, 5), (90.0, 2)), 100.0, 10.0, 2, 2, id="change exactly at cutoff"),
        pytest.param(((0.0, 5), (89.9, 2)), 100.0, 10.0, 2, 2, id="change before cutoff"),
        pytest.param(((0.0, 5), (90.1, 2)), 100.0, 10.0, 5, 2, id="value at cutoff included"),
        pytest.param(((0.0, 1), (50.0, 7), (95.0, 3)), 100.0, 60.0, 7, 1, id="three values"),
        pytest.param(((0.0, 1), (100.0, 4)), 100.0, 0.0, 4, 4, id="zero window"),
    ],
)
def test_window_max_min(
    history: History,
    now: float,
    window_s: float,
    expected_max: int | None,
    expected_min: int | None,
) -> None:
    assert window_max(history, now, window_s) == expected_max
    assert window_min(history, now, window_s) == expected_min
