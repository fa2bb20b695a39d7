"""The HTML report of a real (small) simulation run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from autoscaler.config.loader import PolicySet, parse_policies
from autoscaler.sim.engine import ScaleAction
from autoscaler.sim.report import _decimate, render_report, write_report
from autoscaler.sim.results import PolicyResult, winner
from autoscaler.sim.runner import SimulationRun, simulate
from autoscaler.sim.scenario import Scenario
from autoscaler.sim.trace import DeploymentTrace, Trace

POLICIES = ["concurrency", "queue", "kpa"]
YAML = (
    "defaults: {parallelism: 2, max_replicas: 10, "
    "instance: {cpu: '4', memory: 16Gi, accelerator: A10G, use_gpu: true}}"
)


def _policy_set() -> PolicySet:
    return parse_policies([("p.yaml", YAML)])


def _trace(n: int = 400, source: str = "synthetic") -> Trace:
    # Quiet, then a burst, then quiet again: enough to make every policy scale.
    arrivals = []
    t = 1_700_000_000.0
    for i in range(n):
        t += 0.1 if n // 3 <= i < 2 * n // 3 else 2.0
        arrivals.append(t)
    dep = DeploymentTrace(
        arrivals=arrivals,
        context_tokens=[100] * n,
        generated_tokens=[50 + i % 100 for i in range(n)],
        durations=[None] * n,
    )
    return Trace({"": dep}, source)


@pytest.fixture(scope="module")
def run() -> SimulationRun:
    return simulate(_trace(), _policy_set(), Scenario(cold_start_s=10), compare=POLICIES)


@pytest.fixture(scope="module")
def page(run: SimulationRun) -> str:
    return render_report(run)


def _row(page: str, label: str) -> str:
    match = re.search(
        r"<tr[^>]*>\s*<td class=\"name\">(?:<span[^>]*></span>)?"
        + re.escape(label)
        + r"(?: \(N=\d+[^<]*\))?(?:<span[^>]*>best</span>)?</td>.*?</tr>",
        page,
        re.S,
    )
    assert match is not None, f"no results row for {label}"
    return match.group(0)


def test_report_is_written_and_self_contained(run: SimulationRun, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_report(run, path)
    assert path.exists()
    text = path.read_text(encoding="utf-8")
    assert text == render_report(run)  # deterministic
    page = text
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") >= 3  # trade-off, timeline, waits
    # Nothing fetched from elsewhere: no external src/href, no stylesheet or script links.
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page)
    assert "<link" not in page
    assert "<script" not in page
    assert "@import" not in page
    assert "url(http" not in page
    assert len(page) < 3_000_000


def test_results_rows_have_the_numbers(run: SimulationRun, page: str) -> None:
    assert "synthetic" in page
    assert f"{run.trace.requests:,} requests" in page
    labels = {r.policy for r in run.results}
    assert labels == {*POLICIES, "oracle", "work_bound", "hindsight", "best_static"}
    for result in run.results:
        row = _row(page, result.policy)
        assert f"<td>{result.served:,} / {result.requests:,}</td>" in row
        assert f"<td>{result.replica_seconds:,.0f}</td>" in row
        assert f"<td>${result.cost:,.2f}</td>" in row
        assert f"<td>{result.scale_actions:,}</td>" in row
        assert f"{result.slo_attainment * 100:.1f}%</td>" in row
        for ratio in (result.cost_vs_oracle, result.cost_vs_hindsight, result.cost_vs_best_static):
            assert ratio is not None and f"<td>{ratio:.2f}×</td>" in row
    # Each reference row is its own 1.00x; exactly one policy row is highlighted as best.
    for ref in ("oracle", "hindsight", "best_static"):
        assert "<td>1.00×</td>" in _row(page, ref)
    assert run.best_static_fleet is not None
    assert f"best_static (N={run.best_static_fleet['trace']})" in page
    best = winner(run.results, run.slo_target)
    assert best in POLICIES
    assert page.count('class="best"') == 1
    assert 'class="best"' in _row(page, best)
    assert f"target: {run.slo_target:.2%} of requests" in page


def test_plots_and_actions(run: SimulationRun, page: str) -> None:
    assert "Load and replicas over time" in page
    assert "minutes since trace start" in page
    assert "Wait times" in page
    assert page.count("<details>") == len(POLICIES)
    for policy in POLICIES:
        total = next(r.scale_actions for r in run.results if r.policy == policy)
        assert f"{policy}: {total:,} scale action" in page
    # At most 30 actions listed per policy.
    assert page.count('<td class="reason">') <= 30 * len(POLICIES)
    first = run.outcomes["queue"][0].actions[0]
    assert f"{first.before} → {first.after}" in page


def test_text_is_escaped(tmp_path: Path) -> None:
    run = simulate(
        _trace(60, source="<b>trace</b> & co"),
        _policy_set(),
        Scenario(cold_start_s=10),
        compare=["queue"],
        references=False,
    )
    outcome = run.outcomes["queue"][0]
    outcome.actions.insert(
        0,
        ScaleAction(
            outcome.series.t[0] if outcome.series else 0.0,
            1,
            2,
            "load <script>alert(1)</script> & more",
        ),
    )
    page = render_report(run)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "<script>" not in page
    assert "&lt;b&gt;trace&lt;/b&gt; &amp; co" in page
    assert "<b>trace</b>" not in page


def test_single_policy_without_series(tmp_path: Path) -> None:
    run = simulate(
        _trace(120),
        _policy_set(),
        Scenario(cold_start_s=10),
        compare=["kpa"],
        record_series=False,
        references=False,
    )
    path = tmp_path / "r.html"
    write_report(run, path)
    page = path.read_text(encoding="utf-8")
    assert "No time series recorded for kpa" in page
    assert page.count("<svg") >= 2  # the trade-off and the waits still plot
    _row(page, "kpa")


def test_zero_requests(tmp_path: Path) -> None:
    trace = Trace({"": DeploymentTrace()}, "empty")
    run = simulate(trace, _policy_set(), Scenario(cold_start_s=10), compare=POLICIES)
    path = tmp_path / "r.html"
    write_report(run, path)
    page = path.read_text(encoding="utf-8")
    assert "0 requests" in page
    assert "nothing to plot" in page
    assert "No requests were served" in page


def test_multiple_deployments_plot_the_busiest(tmp_path: Path) -> None:
    small = _trace(40).deployments[""]
    big = _trace(300).deployments[""]
    trace = Trace({"ns/small": small, "ns/big": big}, "two")
    policy_set = parse_policies([("p.yaml", YAML)])
    run = simulate(
        trace, policy_set, Scenario(cold_start_s=10), compare=["queue", "kpa"], references=False
    )
    page = render_report(run)
    assert "Showing deployment <b>ns/big</b> (300 requests)" in page
    assert '<th class="name">Deployment</th>' in page


def test_decimate_keeps_extremes() -> None:
    t = np.arange(100_000, dtype=np.float64)
    y = np.zeros_like(t)
    y[54_321] = 7.0
    y[76_543] = -3.0
    dt, dy = _decimate(t, y, 3000)
    assert dt.size <= 3002
    assert dy.max() == 7.0
    assert dy.min() == -3.0
    assert np.all(np.diff(dt) > 0)
    assert dt[0] == 0 and dt[-1] == 99_999


def _result(policy: str, cost: float, attainment: float) -> PolicyResult:
    return PolicyResult(policy, 10, 10, cost * 100, cost, 0, 1, 0.0, 0.0, 0.0, attainment)


@pytest.mark.parametrize(
    ("rows", "target", "expected"),
    [
        # The cheapest of those meeting the target, not the one with the best attainment.
        ([("a", 5.0, 1.0), ("b", 3.0, 0.995), ("c", 2.0, 0.98)], 0.99, "b"),
        ([("a", 5.0, 1.0), ("b", 3.0, 0.995), ("c", 2.0, 0.98)], 0.999, "a"),
        # Exactly at the target meets it.
        ([("a", 5.0, 1.0), ("b", 3.0, 0.99)], 0.99, "b"),
        # None meets it: the highest attainment, however much it costs.
        ([("a", 9.0, 0.97), ("b", 1.0, 0.90)], 0.99, "a"),
        # ... and the cheaper of equal attainments.
        ([("a", 9.0, 0.97), ("b", 4.0, 0.97)], 0.99, "b"),
        # References never win, even cheaper and at 100%.
        ([("oracle", 0.1, 1.0), ("hindsight", 0.2, 1.0), ("a", 5.0, 0.9)], 0.99, "a"),
        ([("best_static", 1.0, 1.0), ("work_bound", 0.1, 1.0), ("a", 5.0, 1.0)], 0.99, "a"),
        ([("oracle", 0.1, 1.0), ("work_bound", 0.1, 1.0)], 0.99, None),
        ([], 0.99, None),
    ],
)
def test_winner_rule(
    rows: list[tuple[str, float, float]], target: float, expected: str | None
) -> None:
    assert winner([_result(*row) for row in rows], target) == expected


def test_the_badge_goes_to_the_cheapest_policy_meeting_the_target() -> None:
    # kpa and queue both meet a lax target; the cheaper wins, not the one closest to 100%.
    lax = simulate(
        _trace(),
        _policy_set(),
        Scenario(cold_start_s=10),
        compare=POLICIES,
        slo_target=0.5,
        references=False,
    )
    meeting = [r for r in lax.results if r.policy in POLICIES and r.slo_attainment >= 0.5]
    cheapest = min(meeting, key=lambda r: r.cost)
    assert 'class="best"' in _row(render_report(lax), cheapest.policy)
