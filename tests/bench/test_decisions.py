"""The decision-quality section (``bench/decisions.py``): its judgements of fixed fleets and
targets on hand-made outcomes, and one real run on a tiny trace rendered into BENCHMARKS.md
by ``bench/run.py --only decisions`` without touching the other sections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import decisions, traces
from bench.decisions import DecisionRun, Row, TraceOutcome
from bench.run import QUICK, Run, write_report


def outcome(name: str = "chat_a", **fleets: tuple[float, float]) -> TraceOutcome:
    """A one-hour trace whose ``slo`` row costs 10 at 99.95%, with the fleets given as
    ``N<k>=(attainment, cost)``."""
    trace = TraceOutcome(name, 1000, 3600.0)
    trace.policies["slo"] = Row("slo", 0.9995, 10.0, 20, wall_s=1.0)
    trace.references["best_static"] = Row("best_static", 0.9992, 12.0, 0, fleet=10)
    for key, (attainment, cost) in fleets.items():
        n = int(key[1:])
        trace.fleets[n] = Row(f"fixed N={n}", attainment, cost, 0, fleet=n)
    return trace


@pytest.mark.parametrize(
    ("fleets", "beaten", "judged"),
    [
        # The largest cheaper fleet (8) falls short on attainment: not beaten, and settled
        # because the next one up (9) costs more than the policy.
        ({"N8": (0.998, 9.6), "N9": (0.9999, 10.8)}, None, True),
        # A cheaper fleet that attains as much beats it.
        ({"N8": (0.9995, 9.6), "N9": (0.9999, 10.8)}, 8, True),
        # Only cheaper fleets ran: a bigger, still cheaper one might beat it.
        ({"N7": (0.99, 8.4), "N8": (0.998, 9.6)}, None, False),
        # Only dearer fleets ran, and not from N=1: unsettled.
        ({"N9": (0.9999, 10.8)}, None, False),
        ({"N1": (0.9999, 10.8)}, None, True),
    ],
)
def test_fixed_fleet_judgement(
    fleets: dict[str, tuple[float, float]], beaten: int | None, judged: bool
) -> None:
    trace = outcome(**fleets)
    row = trace.policies["slo"]
    found = trace.beaten_by(row)
    assert (found.fleet if found else None) == beaten
    assert trace.fleet_judged(row) is judged


def run_of(*outcomes: TraceOutcome) -> DecisionRun:
    return DecisionRun(list(outcomes), ["slo"], [], 1, 1.0)


def verdict(run: DecisionRun, starts: str) -> bool | None:
    return next(v.met for v in decisions.verdicts(run) if v.target.startswith(starts))


@pytest.mark.parametrize(
    ("name", "slo_cost", "attainment", "met"),
    [
        ("chat_a", 11.0, 0.9995, True),  # 11 / 12 = 0.92 of best_static at >= 99.9%
        ("chat_a", 11.5, 0.9995, False),  # 0.96: too dear
        ("chat_a", 11.0, 0.9985, False),  # below 99.9%
        ("onoff", 11.0, 0.9995, None),  # not a steady shape: nothing to judge
    ],
)
def test_steady_target(name: str, slo_cost: float, attainment: float, met: bool | None) -> None:
    trace = outcome(name)
    trace.policies["slo"] = Row("slo", attainment, slo_cost, 20, wall_s=1.0)
    assert verdict(run_of(trace), "steady shapes") is met


def test_steady_target_needs_every_steady_trace() -> None:
    traces_ = []
    for name, cost in (("steady_long", 11.0), ("chat_a", 11.0), ("chat_b", 11.5)):
        trace = outcome(name)
        trace.policies["slo"] = Row("slo", 0.9995, cost, 20, wall_s=1.0)
        traces_.append(trace)
    assert verdict(run_of(*traces_), "steady shapes") is False
    traces_[2].policies["slo"] = Row("slo", 0.9995, 11.0, 20, wall_s=1.0)
    assert verdict(run_of(*traces_), "steady shapes") is True


@pytest.mark.parametrize(("actions", "met"), [(30, True), (31, False)])
def test_scale_actions_target(actions: int, met: bool) -> None:
    trace = outcome()
    trace.policies["slo"] = Row("slo", 0.9995, 10.0, actions, wall_s=1.0)
    assert verdict(run_of(trace), "slo <= 30") is met


@pytest.mark.parametrize(("wall_s", "met"), [(3.6, True), (3.7, False)])
def test_speed_target(wall_s: float, met: bool) -> None:
    trace = outcome()  # one hour: 1,000x real time is 3.6 s
    trace.policies["slo"] = Row("slo", 0.9995, 10.0, 1, wall_s=wall_s)
    assert verdict(run_of(trace), "simulate >=") is met


def test_targets_not_judged_without_the_slo_policy() -> None:
    trace = outcome()
    del trace.policies["slo"]
    run = DecisionRun([trace], [], ["slo"], 1, 1.0)
    assert verdict(run, "targets on the slo policy") is None


def test_section_on_a_tiny_trace_replaces_only_its_own_part(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrivals = traces.poisson_arrivals(rng, np.full(600, 1.0), 1.0)
    folder = tmp_path / "traces"
    traces.write_csv(traces.with_tokens(rng, arrivals, 3.0), folder / "tiny.csv")
    run = decisions.measure(
        decisions.trace_files(folder),
        ["concurrency"],
        bundled=False,
        workers=1,
        log=lambda _: None,
    )
    [trace] = run.traces
    assert trace.errors == []
    assert set(trace.policies) == {"concurrency"}
    assert {"oracle", "hindsight"} <= set(trace.references)
    best = trace.references.get("best_static")
    assert best is not None and best.fleet is not None
    # best_static is the smallest fleet meeting 99.9%: the one below it does not.
    below = trace.fleets.get(best.fleet - 1)
    assert below is None or below.attainment < decisions.ATTAINMENT_TARGET
    assert trace.fleet_judged(trace.policies["concurrency"])

    out = tmp_path / "BENCHMARKS.md"
    out.write_text(
        "# Benchmarks\n\n## 1. kept\n\n<!-- bench:kube:start -->\nkube\n<!-- bench:kube:end -->\n",
        encoding="utf-8",
    )
    bench_run = Run(QUICK, True)
    bench_run.decisions = run
    write_report(out, bench_run, {}, 1.0)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\n## 1. kept\n")
    assert "kube\n<!-- bench:kube:end -->" in text
    assert text.count(decisions.SECTION_START) == 1
    assert "### tiny: " in text
    assert f"best_static (N={best.fleet})" in text
    assert "**met**" in text or "**not met**" in text

    # A second run replaces the section in place.
    write_report(out, bench_run, {}, 1.0)
    assert out.read_text(encoding="utf-8") == text
