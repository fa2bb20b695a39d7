"""Recorded ``signal`` events in a JSONL trace are replayed at their times, so the simulator can
dry-run the ``metric`` policy on them like any other."""

from __future__ import annotations

import json
from pathlib import Path

from autoscaler.config.loader import parse_policies
from autoscaler.sim.runner import simulate
from autoscaler.sim.scenario import Scenario
from autoscaler.sim.trace import read_event_jsonl

T0 = 1_700_000_000.0
DEP = "ns/app"


def _write(path: Path, events: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def _signal(at: float, value: float, deployment: str = DEP) -> dict[str, object]:
    return {
        "type": "signal",
        "deployment": deployment,
        "ts": T0 + at,
        "name": "prometheus",
        "value": value,
    }


def _request(at: float, rid: str, duration: float = 1.0) -> list[dict[str, object]]:
    return [
        {"type": "request_started", "deployment": DEP, "ts": T0 + at, "request_id": rid},
        {
            "type": "request_finished",
            "deployment": DEP,
            "ts": T0 + at + duration,
            "request_id": rid,
        },
    ]


def test_signals_are_read_per_deployment_in_time_order(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.jsonl",
        [
            *_request(0, "a"),
            _signal(5, 2),
            _signal(3, 1),
            _signal(4, 9, deployment="ns/no-requests"),
            {**_signal(6, 4), "name": "gpu"},
        ],
    )
    trace = read_event_jsonl(path)
    assert trace.deployments[DEP].signals == [
        (T0 + 3, "prometheus", 1.0),
        (T0 + 5, "prometheus", 2.0),
        (T0 + 6, "gpu", 4.0),
    ]
    # Only deployments with requests are simulated: the other's signal is counted, not lost.
    assert trace.skipped == {"signal_without_requests": 1}


def test_replayed_signal_drives_the_metric_policy(tmp_path: Path) -> None:
    events: list[dict[str, object]] = []
    for k in range(21):
        events += _request(10 * k, f"r{k}")
    # A reading every 10 s (within the 60 s signal TTL): 30 from t=20 to t=90, then 0.
    events += [_signal(t, 30 if t < 100 else 0) for t in range(20, 200, 10)]
    trace = read_event_jsonl(_write(tmp_path / "t.jsonl", events))
    policies = parse_policies(
        [
            (
                "p.yaml",
                "defaults: {policy: metric, min_replicas: 1, max_replicas: 10,"
                " scale_down_delay_s: 0, params: {target_per_replica: 10}}",
            )
        ]
    )
    run = simulate(trace, policies, Scenario(cold_start_s=0, initial_replicas=1, tick_s=2))
    (outcome,) = run.outcomes["metric"]
    assert [(a.t - T0, a.before, a.after) for a in outcome.actions] == [(20, 1, 3), (100, 3, 1)]
    assert outcome.actions[0].reason == "metric: prometheus 30 at 10/replica -> 3"
    assert outcome.served == 21
