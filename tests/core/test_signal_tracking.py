"""Named ``signal`` events: decoding, the tracker's latest-per-name with staleness and TTL, and
the path from an event to a ``metric`` decision through ``DeploymentAutoscaler``."""

from __future__ import annotations

import json

import pytest

from autoscaler.core.deployment import DeploymentAutoscaler
from autoscaler.core.events import Rejected, Signal, decode_event
from autoscaler.core.policies.metric import SPEC as METRIC
from autoscaler.core.policies.metric import MetricParams
from autoscaler.core.settings import Settings
from autoscaler.core.tracker import LATE_AFTER_S, SIGNAL_TTL_S, LoadTracker

DEP = "ns/model"
T0 = 1000.0


def sig(value: float, ts: float, name: str = "prometheus") -> Signal:
    return Signal(deployment=DEP, ts=ts, name=name, value=value)


def tracker() -> LoadTracker:
    return LoadTracker(Settings(), T0)


# -- wire format ---------------------------------------------------------------------------


def _raw(**changes: object) -> str:
    message = {"type": "signal", "deployment": DEP, "ts": 5, "name": "queue_depth", "value": 3}
    return json.dumps({**message, **changes})


def test_decodes() -> None:
    assert decode_event(_raw()) == Signal(deployment=DEP, ts=5.0, name="queue_depth", value=3.0)
    assert decode_event(_raw(name="a" * 63)) == Signal(
        deployment=DEP, ts=5.0, name="a" * 63, value=3.0
    )


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        pytest.param({"name": "Upper"}, "$.name", id="upper-case-name"),
        pytest.param({"name": "9lives"}, "$.name", id="leading-digit"),
        pytest.param({"name": "a-b"}, "$.name", id="dash"),
        pytest.param({"name": ""}, "$.name", id="empty-name"),
        pytest.param({"name": "a" * 64}, "$.name", id="name-too-long"),
        pytest.param({"value": -0.5}, "$.value", id="negative"),
        pytest.param({"value": 2e9}, "$.value", id="absurd"),
        pytest.param({"value": "3"}, "$.value", id="value-as-string"),
    ],
)
def test_rejects(changes: dict[str, object], where: str) -> None:
    result = decode_event(_raw(**changes))
    assert isinstance(result, Rejected)
    assert result.reason == "invalid_event"
    assert where in result.detail


def test_missing_name_is_rejected() -> None:
    message = json.loads(_raw())
    del message["name"]
    result = decode_event(json.dumps(message))
    assert isinstance(result, Rejected)
    assert "name" in result.detail


# -- tracker -------------------------------------------------------------------------------


def test_latest_reading_per_name_reaches_the_snapshot() -> None:
    t = tracker()
    assert t.apply(sig(3, T0 + 1), T0 + 1) == "applied"
    assert t.apply(sig(7, T0 + 2, name="other"), T0 + 2) == "applied"
    assert t.apply(sig(5, T0 + 3), T0 + 3) == "applied"
    s = t.snapshot(T0 + 3, DEP, 1, 1)
    assert dict(s.signals) == {"prometheus": 5.0, "other": 7.0}


def test_a_signal_is_not_load() -> None:
    t = tracker()
    t.apply(sig(50, T0 + 1), T0 + 1)
    s = t.snapshot(T0 + 30, DEP, 1, 1)
    assert (s.in_flight, s.queue_length, s.stable_load, s.panic_load) == (0, 0.0, 0.0, 0.0)
    assert s.idle_s == 30.0
    assert not s.has_work
    assert t.current_load == 0.0


def test_older_reading_is_stale_and_ignored() -> None:
    t = tracker()
    assert t.apply(sig(5, T0 + 10), T0 + 10) == "applied"
    assert t.apply(sig(9, T0 + 9), T0 + 11) == "stale"
    # A reading as old as the latest one is not older: applied (same ts, newer arrival).
    assert t.apply(sig(6, T0 + 10), T0 + 12) == "applied"
    # Staleness is per name.
    assert t.apply(sig(1, T0 + 5, name="other"), T0 + 12) == "applied"
    assert dict(t.snapshot(T0 + 12, DEP, 1, 1).signals) == {"prometheus": 6.0, "other": 1.0}
    assert t.counts["stale"] == 1


def test_late_reading_is_applied_and_counted_late() -> None:
    t = tracker()
    now = T0 + 100
    assert t.apply(sig(4, now - LATE_AFTER_S - 1), now) == "late"
    assert dict(t.snapshot(now, DEP, 1, 1).signals) == {"prometheus": 4.0}
    assert t.counts["late"] == 1


def test_signal_goes_stale_after_ttl() -> None:
    t = tracker()
    t.apply(sig(5, T0), T0)
    t.apply(sig(2, T0 + 30, name="fresh"), T0 + 30)
    assert dict(t.snapshot(T0 + SIGNAL_TTL_S, DEP, 1, 1).signals) == {
        "prometheus": 5.0,
        "fresh": 2.0,
    }
    s = t.snapshot(T0 + SIGNAL_TTL_S + 1, DEP, 1, 1)
    assert dict(s.signals) == {"fresh": 2.0}
    assert t.counts["stale_signal"] == 1
    # Once dropped, any new reading counts again, even one stamped before the dropped one.
    assert t.apply(sig(8, T0 - 5), T0 + SIGNAL_TTL_S + 2) == "late"
    assert t.snapshot(T0 + SIGNAL_TTL_S + 2, DEP, 1, 1).signals["prometheus"] == 8.0


def test_signal_from_a_fast_clock_still_goes_stale() -> None:
    # TTL runs on the tracker's clock (when the reading arrived), not the producer's ts.
    t = tracker()
    t.apply(sig(5, T0 + 3600), T0)
    assert dict(t.snapshot(T0 + SIGNAL_TTL_S + 1, DEP, 1, 1).signals) == {}


def test_snapshot_does_not_change_with_later_readings() -> None:
    t = tracker()
    t.apply(sig(5, T0 + 1), T0 + 1)
    before = t.snapshot(T0 + 1, DEP, 1, 1)
    t.apply(sig(9, T0 + 2), T0 + 2)
    assert before.signals["prometheus"] == 5.0
    assert t.snapshot(T0 + 2, DEP, 1, 1).signals["prometheus"] == 9.0


# -- through the pipeline ------------------------------------------------------------------


def test_signal_event_drives_a_metric_decision() -> None:
    settings = Settings(min_replicas=0, max_replicas=10)
    policy = METRIC.build(MetricParams(target_per_replica=5, activation_threshold=2))
    auto = DeploymentAutoscaler(DEP, settings, policy, "metric", T0)
    first = auto.decide(T0 + 1, current_replicas=0, ready_replicas=0)
    assert first.replicas == 0
    assert "no 'prometheus' reading" in first.reason
    assert auto.apply(sig(2, T0 + 2), T0 + 2) == "applied"
    assert auto.decide(T0 + 2, 0, 0).replicas == 0  # at the activation threshold: stay at zero
    auto.apply(sig(12, T0 + 3), T0 + 3)
    decision = auto.decide(T0 + 3, 0, 0)
    assert decision.replicas == 3
    assert decision.reason == "metric: prometheus 12 at 5/replica -> 3"
    # The reader stops: after the TTL the policy holds what it has.
    held = auto.decide(T0 + 3 + SIGNAL_TTL_S + 1, 3, 3)
    assert held.replicas == 3
    assert "holding 3" in held.reason
