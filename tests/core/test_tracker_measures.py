"""The queue-model measures on the tracker's snapshot, driven through its public methods."""

from __future__ import annotations

import pytest

from autoscaler.core.settings import Settings
from autoscaler.core.tracker import LoadTracker

S = Settings(window_s=60, panic_window_s=6)


def test_queued_then_started_counts_once() -> None:
    t = LoadTracker(S, 0.0)
    t.queue_length(1.0, 2.0)  # a and b arrive and queue
    t.request_started(2.0, "a")
    t.queue_length(2.0, 1.0)
    t.request_started(3.0, "b")
    t.queue_length(3.0, 0.0)
    t.request_started(4.0, "c")  # c never queued
    snap = t.snapshot(15.0, "ns/m", 1, 1)
    assert snap.arrival_history == (0.3,)  # three arrivals in [0, 10), not five
    assert snap.arrival_rate == pytest.approx(3 / 15)
    assert snap.arrival_recent == pytest.approx(3 / 15)


def test_gauge_only_has_no_arrival_rate() -> None:
    t = LoadTracker(S, 0.0)
    t.queue_length(1.0, 3.0)
    t.replica_concurrency(2.0, "r1", 4.0)
    snap = t.snapshot(15.0, "ns/m", 1, 1)
    assert snap.arrival_rate is None
    assert snap.arrival_recent is None
    assert snap.arrival_history == ()


def test_service_censored_while_young_then_moments() -> None:
    t = LoadTracker(S, 0.0)
    t.request_started(0.0, "a")
    t.request_started(3.0, "b")
    t.request_finished(3.0, "a")  # 3 s; b still running
    young = t.snapshot(15.0, "ns/m", 1, 1)
    # (3 s done + 12 s of b so far) / 1 completion
    assert young.service_s == pytest.approx(15.0)
    assert young.service_scv is None
    assert young.service_samples == 1
    t.request_finished(16.0, "b")  # 13 s
    done = t.snapshot(16.0, "ns/m", 1, 1)
    assert done.service_s == pytest.approx(8.0)
    # E[X^2] = (9 + 169) / 2 = 89 over mean^2 64
    assert done.service_scv == pytest.approx(89 / 64 - 1)
    assert done.service_samples == 2


def test_no_events_no_service() -> None:
    snap = LoadTracker(S, 0.0).snapshot(10.0, "ns/m", 1, 1)
    assert (snap.service_s, snap.service_scv, snap.service_samples) == (None, None, 0)
    assert snap.cold_start_s is None


def test_cold_start_from_snapshot_readings() -> None:
    t = LoadTracker(S, 0.0)
    t.snapshot(0.0, "ns/m", 1, 1)
    t.snapshot(10.0, "ns/m", 2, 1)  # the decision at 0 asked for 2
    assert t.snapshot(30.0, "ns/m", 2, 1).cold_start_s is None
    assert t.snapshot(60.0, "ns/m", 2, 2).cold_start_s == pytest.approx(60.0)
