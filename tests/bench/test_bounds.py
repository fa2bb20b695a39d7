"""The level-clairvoyant bound (``bench/bounds.py``): the levels are the rates the steady
traces were drawn from, the sizer reads the peak level of its look-ahead, and the search
returns the cheapest run that meets the target on a real simulation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from autoscaler.sim.trace import read_trace
from bench import bounds, decisions, traces


@pytest.mark.parametrize("name", sorted(traces.LEVELS))
def test_level_is_the_rate_the_trace_was_drawn_from(name: str) -> None:
    level = traces.LEVELS[name]()
    requests = traces.SYNTHETIC[name]()
    assert len(level) == int(traces.HOUR_S)
    # Per 10-minute block, arrivals follow the level (the chat shapes' Gamma noise has mean 1
    # and averages over 20 periods of a block: within 25% at the seeds used).
    counts = np.histogram(requests.arrivals, bins=6, range=(0.0, traces.HOUR_S))[0]
    expected = level.reshape(6, -1).sum(axis=1)
    assert np.all(np.abs(counts / expected - 1.0) < 0.25)
    # Drawn from the trace's own seed: the next draws of that generator are what is unknown.
    assert np.array_equal(level, traces.LEVELS[name]())


@dataclass(frozen=True)
class Now:
    now: float


@pytest.mark.parametrize(
    ("now", "lookahead_s", "replicas"),
    [
        (0.0, 0.0, 1),  # 0.25 req/s sized at 4 replicas per req/s
        (5.0, 0.0, 8),  # the step at t=5 is seen from t=5 on
        (0.0, 5.0, 8),  # and from t=0 with a look-ahead that reaches it
        (0.0, 4.0, 1),  # not with one that stops short
        (20.0, 0.0, 8),  # past the end: the last second's level
    ],
)
def test_sizer_reads_the_peak_of_its_look_ahead(
    now: float, lookahead_s: float, replicas: int
) -> None:
    level = np.array([0.25] * 5 + [2.0] * 5)  # req/s per second of the trace
    sizer = bounds.LevelSizer(level, 0.0, lambda rate: int(rate * 4), lookahead_s)
    assert sizer.recommend(Now(now), None).replicas == replicas


def test_bound_is_the_cheapest_rule_that_meets_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    level = np.full(1200, 2.0)
    requests = traces.with_tokens(rng, traces.poisson_arrivals(rng, level, 1.0), 3.0)
    traces.write_csv(requests, tmp_path / "flat.csv")
    trace = read_trace(tmp_path / "flat.csv")
    monkeypatch.setitem(traces.LEVELS, "flat", lambda: level)
    settings = decisions.load_policy_set().resolve(next(iter(trace.deployments))).settings
    scenario = decisions.load_acceptance_scenario()
    assert bounds.bound_for("no such trace", trace, settings, scenario, 1.0) is None

    found = bounds.bound_for("flat", trace, settings, scenario, 1.0)
    assert found is not None
    assert found.attainment >= decisions.ATTAINMENT_TARGET
    # No cheaper than the work itself: 2 req/s x 3 s = 6 busy slots = 1.5 replicas of 4.
    hours = 1200 / 3600
    assert found.cost > 6.0 / settings.parallelism * hours
    # And cheaper than the most cautious rule tried (rho 0.30: 5 replicas, after 8 at first).
    assert found.cost < 5 * hours
