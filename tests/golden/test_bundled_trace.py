"""Golden replay: the bundled Azure trace through every built-in policy, pinned end to end.

A change to any policy, guardrail, window or the simulator that moves these numbers must be
deliberate: rerun with ``UPDATE_GOLDEN=1 pytest tests/golden`` and review the diff of
``bundled_trace.json`` like any other behaviour change.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from autoscaler.config.loader import load_policies
from autoscaler.paths import BUNDLED_POLICY, BUNDLED_SCENARIO, BUNDLED_TRACE
from autoscaler.sim.runner import SimulationRun, simulate
from autoscaler.sim.scenario import load_scenario
from autoscaler.sim.trace import read_trace

GOLDEN = Path(__file__).with_name("bundled_trace.json")
POLICIES = ["slo", "concurrency", "queue", "hpa", "kpa"]


@pytest.fixture(scope="module")
def run() -> SimulationRun:
    return simulate(
        read_trace(BUNDLED_TRACE),
        load_policies([BUNDLED_POLICY]),
        load_scenario(BUNDLED_SCENARIO),
        compare=POLICIES,
        record_series=True,
    )


def test_matches_golden(run: SimulationRun) -> None:
    produced = run.as_json()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(produced, indent=2, sort_keys=True) + "\n")
    expected = json.loads(GOLDEN.read_text())
    assert produced["trace"] == expected["trace"]
    assert [r["policy"] for r in produced["results"]] == [r["policy"] for r in expected["results"]]
    for got, want in zip(produced["results"], expected["results"], strict=True):
        assert got.keys() == want.keys()
        for key, value in want.items():
            if isinstance(value, float):
                assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-9), (
                    got["policy"],
                    key,
                )
            else:
                assert got[key] == value, (got["policy"], key)


def test_every_request_served_and_references_bound_the_policies(run: SimulationRun) -> None:
    results = {r.policy: r for r in run.results}
    assert set(results) == {*POLICIES, "oracle", "work_bound", "hindsight", "best_static"}
    bound = results["work_bound"].replica_seconds
    for result in results.values():
        assert result.served == result.requests == run.trace.requests == 8819
        assert result.replica_seconds >= bound
    assert results["oracle"].replica_seconds >= bound


def test_first_window_keeps_the_replicas_already_serving(run: SimulationRun) -> None:
    # The trace starts mid-traffic with initial_replicas ready: lacking history is not a
    # reason to tear them down before a full stable window has been observed.
    initial = run.scenario.initial_replicas
    assert initial is not None and initial > 1
    window_s = run.resolved[""].settings.window_s
    for policy, outcomes in run.outcomes.items():
        series = outcomes[0].series
        assert series is not None
        early = [
            r
            for t, r in zip(series.t, series.replicas, strict=True)
            if t < run.trace.start + window_s
        ]
        assert early, policy
        assert min(early) >= initial, policy
