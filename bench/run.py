"""The benchmark behind ``make bench``: simulator speed, memory and decision-core cost.

Every measured job runs in a fresh child process (``python -m bench.run --job NAME ...``) so
that peak resident memory is per job, not cumulative. The parent collects each child's JSON
result and writes ``BENCHMARKS.md``. Nothing in the report is hard-coded: every figure comes
from the run that wrote it.

    python -m bench.run --out BENCHMARKS.md      # the full benchmark (what `make bench` runs)
    python -m bench.run --quick --out /tmp/b.md  # small sizes, a smoke check
    python -m bench.run --profile                # cProfile of a small synthetic day
    python -m bench.run --only daemon --out BENCHMARKS.md  # only the daemon's section (4)

The daemon jobs (``bench/daemon.py``) start a real Kafka broker with ``devtools.services``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import daemon as daemon_bench
from bench import decisions as decisions_bench
from bench import kube as kube_bench
from bench.common import maxrss_mib, met, table

POLICIES = ("concurrency", "queue", "hpa", "kpa")
RESULT_MARK = "BENCH-RESULT "
PROGRESS_MARK = "BENCH-PROGRESS "
SPEEDUP_TARGET = 1000.0
DAY_TARGET_S = 3600.0
DAY_S = 86_400.0

JobResult = dict[str, Any]


# -- helpers shared by jobs ------------------------------------------------------------------


def _bundled() -> tuple[Any, Any]:
    from autoscaler.config.loader import load_policies
    from autoscaler.paths import BUNDLED_POLICY
    from autoscaler.sim.scenario import load_scenario

    return load_policies([BUNDLED_POLICY]), load_scenario(None)


# -- child jobs ------------------------------------------------------------------------------


def job_bundled(repeats: int) -> JobResult:
    """Each built-in policy alone on the bundled trace, single process, no series."""
    from autoscaler.paths import BUNDLED_TRACE
    from autoscaler.sim.runner import simulate
    from autoscaler.sim.trace import read_trace

    policy_set, scenario = _bundled()
    trace = read_trace(BUNDLED_TRACE)
    # One untimed warm-up run: imports, policy registry and resolve caches.
    simulate(trace, policy_set, scenario, compare=[POLICIES[0]], record_series=False)
    per_policy: dict[str, Any] = {}
    for name in POLICIES:
        times: list[float] = []
        decisions = 0
        for _ in range(repeats):
            t0 = time.perf_counter()
            run = simulate(trace, policy_set, scenario, compare=[name], record_series=False)
            times.append(time.perf_counter() - t0)
            decisions = sum(o.decisions for o in run.outcomes[name])
        per_policy[name] = {"times_s": times, "decisions": decisions}
    return {
        "requests": trace.requests,
        "span_s": trace.span_s,
        "repeats": repeats,
        "policies": per_policy,
        "maxrss_mib": maxrss_mib(resource.RUSAGE_SELF),
    }


def _steady_load(steps: int, seed: int) -> list[tuple[list[int], list[int], float]]:
    """Per decision step: request ids to start, ids to finish, and the queue length. In-flight
    wanders around 14 (about five replicas at the bundled target of 2.8 per replica)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    schedule: list[tuple[list[int], list[int], float]] = []
    in_flight: list[int] = []
    next_id = 0
    for _ in range(steps):
        target = 14 + int(rng.integers(-3, 4))
        finish = in_flight[: max(1, len(in_flight) - target)] if in_flight else []
        in_flight = in_flight[len(finish) :]
        start = list(range(next_id, next_id + max(1, target - len(in_flight))))
        next_id += len(start)
        in_flight.extend(start)
        schedule.append((start, finish, float(rng.integers(0, 3))))
    return schedule


def job_decide(decisions: int, repeats: int) -> JobResult:
    """``DeploymentAutoscaler.decide`` per built-in policy on a steady synthetic load; only
    the ``decide`` calls are timed (events are applied between them, untimed)."""
    from autoscaler.config.catalog import load_catalog
    from autoscaler.core.deployment import DeploymentAutoscaler

    policy_set, scenario = _bundled()
    catalog = load_catalog()
    tick = scenario.tick_s
    schedule = _steady_load(decisions, seed=7)
    start = 1_700_000_000.0
    per_policy: dict[str, Any] = {}
    for name in POLICIES:
        resolved = policy_set.resolve("bench/steady", policy_override=name, catalog=catalog)
        rates: list[float] = []
        final_replicas = 0
        for _ in range(repeats):
            auto = DeploymentAutoscaler(
                "bench/steady",
                resolved.settings,
                resolved.policy.build(resolved.params),
                name,
                start,
            )
            tracker = auto.tracker
            replicas = 5
            spent_ns = 0
            clock = time.perf_counter_ns
            for step, (started, finished, queued) in enumerate(schedule):
                now = start + (step + 1) * tick
                for rid in finished:
                    tracker.request_finished(now - tick / 2, rid)
                for rid in started:
                    tracker.request_started(now - tick / 2, rid)
                tracker.queue_length(now - tick / 2, queued)
                t0 = clock()
                decision = auto.decide(now, replicas, replicas)
                spent_ns += clock() - t0
                replicas = decision.replicas
            rates.append(len(schedule) / (spent_ns / 1e9))
            final_replicas = replicas
        per_policy[name] = {"rates": rates, "final_replicas": final_replicas}
    return {
        "decisions": len(schedule),
        "tick_s": tick,
        "repeats": repeats,
        "policies": per_policy,
        "maxrss_mib": maxrss_mib(resource.RUSAGE_SELF),
    }


def job_synthetic(
    deployments: int, duration_s: float, mean_rps: float, workers: int, policy: str
) -> JobResult:
    """A synthetic trace through one policy, no series. Generation is timed separately."""
    from autoscaler.sim.runner import simulate
    from autoscaler.sim.synthetic import synthetic_trace

    baseline = maxrss_mib(resource.RUSAGE_SELF)
    policy_set, scenario = _bundled()
    t0 = time.perf_counter()
    trace = synthetic_trace(deployments, duration_s, mean_rps=mean_rps, seed=1)
    generate_s = time.perf_counter() - t0
    rates = sorted(len(d.arrivals) / duration_s for d in trace.deployments.values())
    done = [0, 0]

    def progress(requests: int) -> None:
        # One call per finished deployment: lets the parent report a run it had to stop.
        done[0] += 1
        done[1] += requests
        elapsed = time.perf_counter() - t0
        print(f"{PROGRESS_MARK}{done[0]} {done[1]} {elapsed:.3f}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    run = simulate(
        trace,
        policy_set,
        scenario,
        compare=[policy],
        record_series=False,
        workers=workers,
        progress=progress,
    )
    wall_s = time.perf_counter() - t0
    outs = run.outcomes[policy]
    return {
        "deployments": deployments,
        "active_deployments": len(outs),
        "duration_s": duration_s,
        "mean_rps": mean_rps,
        "workers": workers,
        "policy": policy,
        "requests": trace.requests,
        "rate_min": rates[0],
        "rate_median": statistics.median(rates),
        "rate_max": rates[-1],
        "generate_s": generate_s,
        "wall_s": wall_s,
        "decisions": sum(o.decisions for o in outs),
        "baseline_rss_mib": baseline,
        "maxrss_mib": maxrss_mib(resource.RUSAGE_SELF),
        "children_maxrss_mib": maxrss_mib(resource.RUSAGE_CHILDREN),
    }


def profile(deployments: int, duration_s: float, mean_rps: float, top: int) -> None:
    """cProfile of one synthetic run (concurrency, one process), top entries by tottime."""
    import cProfile
    import pstats

    from autoscaler.sim.runner import simulate
    from autoscaler.sim.synthetic import synthetic_trace

    policy_set, scenario = _bundled()
    trace = synthetic_trace(deployments, duration_s, mean_rps=mean_rps, seed=1)
    profiler = cProfile.Profile()
    profiler.enable()
    run = simulate(trace, policy_set, scenario, compare=["concurrency"], record_series=False)
    profiler.disable()
    decisions = sum(o.decisions for o in run.outcomes["concurrency"])
    print(
        f"{deployments} deployments x {duration_s:g}s, {trace.requests} requests, "
        f"{decisions} decisions (times under the profiler)"
    )
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


# -- the parent ------------------------------------------------------------------------------


@dataclass
class Sizes:
    repeats: int
    decide_decisions: int
    decide_repeats: int
    deployments: int
    small_deployments: int
    duration_s: float
    mean_rps: float
    job_timeout_s: float
    budget_s: float
    daemon: daemon_bench.DaemonSizes = daemon_bench.DAEMON_FULL


# The 1,000-deployment day takes about a quarter of an hour on two free cores; the budget
# leaves room for it and, if the small point predicts it fits, the one-worker run as well.
FULL = Sizes(5, 10_000, 5, 1000, 50, DAY_S, 0.05, 2400.0, 50 * 60.0)
QUICK = Sizes(2, 2_000, 2, 50, 10, 2 * 3600.0, 0.05, 600.0, 120.0, daemon_bench.DAEMON_QUICK)


@dataclass
class Outcome:
    name: str
    result: JobResult | None
    error: str | None = None
    elapsed_s: float = 0.0
    partial: tuple[int, int, float] | None = None
    """For a stopped job: deployments done, their requests, seconds into ``simulate``."""


@dataclass
class Run:
    sizes: Sizes
    quick: bool
    started: float = field(default_factory=time.perf_counter)
    jobs: dict[str, Outcome] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    daemon: daemon_bench.DaemonRun | None = None
    kube: kube_bench.KubeRun | None = None
    decisions: decisions_bench.DecisionRun | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def run_job(name: str, args: dict[str, Any], timeout_s: float) -> Outcome:
    """``python -m bench.run --job NAME --args JSON`` in a fresh process."""
    cmd = [sys.executable, "-m", "bench.run", "--job", name, "--args", json.dumps(args)]
    print(f"[bench] {name} {args} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    # Its own session, so a stopped job takes its simulator workers with it.
    # From the repository root, so ``-m bench.run`` resolves wherever the parent was started.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        elapsed = time.perf_counter() - t0
        print(f"[bench] {name}: stopped after {elapsed:.0f}s", file=sys.stderr, flush=True)
        marks = [ln for ln in stderr.splitlines() if ln.startswith(PROGRESS_MARK)]
        partial = None
        if marks:
            deps, reqs, secs = marks[-1][len(PROGRESS_MARK) :].split()
            partial = (int(deps), int(reqs), float(secs))
        error = f"stopped at the {timeout_s:.0f} s time limit"
        return Outcome(name, None, error, elapsed, partial)
    elapsed = time.perf_counter() - t0
    lines = [ln for ln in stdout.splitlines() if ln.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        tail = (stderr or stdout).strip().splitlines()[-3:]
        print(f"[bench] {name}: failed: {tail}", file=sys.stderr, flush=True)
        return Outcome(name, None, f"exit {proc.returncode}: {' | '.join(tail)}", elapsed)
    print(f"[bench] {name}: done in {elapsed:.1f}s", file=sys.stderr, flush=True)
    return Outcome(name, json.loads(lines[-1][len(RESULT_MARK) :]), None, elapsed)


def machine_facts() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        mem_kib = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines()
            if line.startswith("MemTotal:")
        )
        memory = f"{mem_kib / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = "unknown"
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "CPU": cpu,
        "Cores (os.cpu_count / usable)": f"{os.cpu_count()} / {usable}",
        "Memory": memory,
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": f"{platform.system()} {platform.release()}",
        "Date (UTC)": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "Load average at start (1/5/15 min)": " / ".join(f"{x:.2f}" for x in load),
    }


def measure(
    sizes: Sizes,
    quick: bool,
    only: str = "all",
    kafka: str | None = None,
    decision_traces: Path | None = None,
) -> Run:
    run = Run(sizes, quick)
    if only in ("all", "decisions"):
        # First: the other parts start services and long jobs, this one only simulates.
        run.decisions = measure_decisions(quick, decision_traces)
    if only in ("all", "sim"):
        measure_sim(run)
    if only in ("all", "daemon"):
        run.daemon = daemon_bench.measure_daemon(sizes.daemon, quick, run_job, kafka)
    if only in ("all", "kube"):
        run.kube = kube_bench.measure_kube(kube_bench.QUICK if quick else kube_bench.FULL, quick)
    return run


def measure_sim(run: Run) -> None:
    sizes = run.sizes
    run.jobs["bundled"] = run_job("bundled", {"repeats": sizes.repeats}, sizes.job_timeout_s)
    run.jobs["decide"] = run_job(
        "decide",
        {"decisions": sizes.decide_decisions, "repeats": sizes.decide_repeats},
        sizes.job_timeout_s,
    )
    common = {"duration_s": sizes.duration_s, "mean_rps": sizes.mean_rps, "policy": "concurrency"}
    for workers in (1, 2):
        run.jobs[f"small_w{workers}"] = run_job(
            "synthetic",
            {"deployments": sizes.small_deployments, "workers": workers, **common},
            sizes.job_timeout_s,
        )
    # The large point with both workers first (the headline "minutes, not hours"), then on
    # one worker only if the small point predicts it fits the remaining budget.
    big = {"deployments": sizes.deployments, **common}
    left = sizes.budget_s - run.elapsed()
    limit = min(sizes.job_timeout_s, max(60.0, left))
    run.jobs["big_w2"] = run_job("synthetic", {**big, "workers": 2}, limit)
    small = run.jobs["small_w1"].result
    if small is not None:
        predicted = small["wall_s"] * sizes.deployments / sizes.small_deployments
        left = sizes.budget_s - run.elapsed()
        if predicted <= min(left, sizes.job_timeout_s):
            run.jobs["big_w1"] = run_job("synthetic", {**big, "workers": 1}, sizes.job_timeout_s)
        else:
            run.notes.append(
                f"The {sizes.deployments}-deployment run on one worker was not run: the "
                f"{sizes.small_deployments}-deployment point predicts about "
                f"{predicted / 60:.0f} min (linear in deployments), more than the "
                f"{max(left, 0) / 60:.0f} min left of the {sizes.budget_s / 60:.0f}-min "
                "benchmark budget. That prediction is an extrapolation, not a measurement."
            )


QUICK_DECISION_TRACES = ("chat_a",)


def measure_decisions(quick: bool, traces: Path | None) -> decisions_bench.DecisionRun:
    """Section 6 on the traces in ``traces``, or on freshly generated ones (``bench/traces.py``,
    fixed seeds; quick mode runs only ``QUICK_DECISION_TRACES`` and the bundled trace)."""
    from bench import traces as traces_bench

    if traces is not None:
        return decisions_bench.measure(decisions_bench.trace_files(traces))
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-traces-") as folder:
        servegen = traces_bench.SERVEGEN_DEFAULT_DIR
        clients = () if quick or not servegen.is_dir() else traces_bench.SERVEGEN_DEFAULT_CLIENTS
        built = traces_bench.build_all(servegen, clients, 1.0)
        if quick:  # a smoke check: one short trace beside the bundled one
            built = {name: built[name] for name in QUICK_DECISION_TRACES}
        for name, requests in built.items():
            traces_bench.write_csv(requests, Path(folder) / f"{name}.csv")
        run = decisions_bench.measure(decisions_bench.trace_files(Path(folder)))
    if not quick and not clients:
        run.notes.append(f"ServeGen traces left out: {servegen} is not there.")
    return run


# -- the report ------------------------------------------------------------------------------


def _fmt_s(seconds: float) -> str:
    return f"{seconds:.1f} s ({seconds / 60:.1f} min)" if seconds >= 60 else f"{seconds:.3f} s"


def _section_bundled(run: Run) -> list[str]:
    job = run.jobs["bundled"]
    out = ["## 1. Bundled one-hour trace, per policy, one process", ""]
    if job.result is None:
        return [*out, f"Not measured: {job.error}", ""]
    r = job.result
    out += [
        f"Trace: {r['requests']:,} requests over {r['span_s']:.0f} s "
        f"({r['span_s'] / 3600:.2f} h). Each policy alone (`compare=[name]`, "
        f"`record_series=False`, `workers=1`), timed {r['repeats']} times after one untimed "
        "warm-up run. Speed-up = trace span / wall time. Target: at least "
        f"{SPEEDUP_TARGET:,.0f}x real time per policy (judged on the median).",
        "",
    ]
    rows = []
    for name in POLICIES:
        p = r["policies"][name]
        med, best = statistics.median(p["times_s"]), min(p["times_s"])
        speed = r["span_s"] / med
        rows.append(
            [
                name,
                f"{med * 1000:.0f} ms",
                f"{best * 1000:.0f} ms",
                f"{speed:,.0f}x",
                f"{r['span_s'] / best:,.0f}x",
                f"{p['decisions']:,}",
                f"{med / max(p['decisions'], 1) * 1e6:.1f} µs",
                f">= {SPEEDUP_TARGET:,.0f}x",
                met(speed >= SPEEDUP_TARGET),
            ]
        )
    header = [
        "policy",
        "median wall",
        "min wall",
        "speed-up (median)",
        "speed-up (min)",
        "decisions",
        "wall / decision",
        "target",
        "met",
    ]
    out += table(header, rows)
    out += ["", f"Peak RSS of this job: {r['maxrss_mib']:.0f} MiB.", ""]
    return out


def _section_synthetic(run: Run) -> list[str]:
    s = run.sizes
    out = [
        f"## 2. Synthetic {s.deployments:,}-deployment "
        f"{'day' if s.duration_s == DAY_S else f'{s.duration_s / 3600:g} h'}, one policy",
        "",
        f"`synthetic_trace(N, {s.duration_s:g}, mean_rps={s.mean_rps}, seed=1)`: each "
        "deployment's mean rate is drawn log-normally around the mean (a few busy, most "
        "quiet) and swings over a daily cycle. Policy `concurrency`, bundled policy file and "
        "scenario (decisions every tick of the scenario, plus prompt ones), "
        "`record_series=False`. Wall time covers `simulate()` only; generating the trace is "
        f"listed apart. Target: the {s.deployments:,}-deployment run finishes in minutes, not "
        f"hours (read here as under {DAY_TARGET_S / 60:.0f} min).",
        "",
    ]
    header = [
        "deployments",
        "workers",
        "requests",
        "per-deployment rate min / median / max (req/s)",
        "trace generation",
        "simulate wall",
        "decisions",
        "wall / decision",
        "peak RSS (job process)",
        "peak RSS (largest worker)",
        "target",
        "met",
    ]
    rows = []
    partial_notes: list[str] = []
    order = ["small_w1", "small_w2", "big_w1", "big_w2"]
    for key in order:
        job = run.jobs.get(key)
        if job is None:
            continue
        big = key.startswith("big")
        deployments = s.deployments if big else s.small_deployments
        workers = key[-1]
        target = f"< {DAY_TARGET_S / 60:.0f} min" if big else "— (scaling point)"
        if job.result is None:
            rows.append(
                [f"{deployments:,}", workers, "—", "—", "—", job.error or "failed"]
                + ["—"] * 4
                + [target, "**not shown**" if big else "—"]
            )
            if job.partial is not None:
                deps, reqs, secs = job.partial
                projected = secs * deployments / deps if deps else float("inf")
                partial_notes.append(
                    f"The {deployments:,}-deployment run with {workers} worker(s) was stopped "
                    f"at its time limit ({job.error}): by then {deps:,} of {deployments:,} "
                    f"deployments ({reqs:,} requests) had finished, {secs:.0f} s into "
                    f"`simulate()`. At that pace the whole run would take about "
                    f"{projected / 60:.0f} min: an extrapolation from the measured part, "
                    "not a measured figure."
                )
            continue
        r = job.result
        child = f"{r['children_maxrss_mib']:.0f} MiB" if r["workers"] > 1 else "— (no workers)"
        rows.append(
            [
                f"{r['deployments']:,}",
                str(r["workers"]),
                f"{r['requests']:,}",
                f"{r['rate_min']:.4f} / {r['rate_median']:.4f} / {r['rate_max']:.3f}",
                _fmt_s(r["generate_s"]),
                _fmt_s(r["wall_s"]),
                f"{r['decisions']:,}",
                f"{r['wall_s'] / max(r['decisions'], 1) * 1e6:.1f} µs",
                f"{r['maxrss_mib']:.0f} MiB",
                child,
                target,
                met(r["wall_s"] < DAY_TARGET_S) if big else "—",
            ]
        )
    out += table(header, rows)
    out.append("")
    small1, small2 = run.jobs["small_w1"].result, run.jobs["small_w2"].result
    if small1 and small2:
        out.append(
            f"Speed-up of two workers over one at {s.small_deployments} deployments: "
            f"{small1['wall_s'] / small2['wall_s']:.2f}x (1 = no gain; 2 = perfect; the "
            "machine's other load competes for the second core)."
        )
    base = next(
        (j.result for j in run.jobs.values() if j.result and "baseline_rss_mib" in j.result), None
    )
    if base:
        out.append(
            "Resident memory of a job process after imports, before any trace is built: "
            f"{base['baseline_rss_mib']:.0f} MiB (included in the peaks above)."
        )
    for note in [*partial_notes, *run.notes]:
        out += [note, ""]
    return out


def _section_decide(run: Run) -> list[str]:
    job = run.jobs["decide"]
    out = ["## 3. Decision core: `DeploymentAutoscaler.decide` per policy", ""]
    if job.result is None:
        return [*out, f"Not measured: {job.error}", ""]
    r = job.result
    out += [
        f"One deployment (bundled defaults, policy overridden as `_run_task` does: "
        "`policy_set.resolve(name, policy_override=...)`, "
        f"`resolved.policy.build(resolved.params)`), {r['decisions']:,} decisions "
        f"{r['tick_s']:g} s apart "
        "on a steady load (in-flight wandering around 14, a queue of 0-2, a few requests "
        "starting and finishing between decisions; the decision's replica count fed back as "
        f"current and ready). Only the `decide` calls are timed; {r['repeats']} repetitions, "
        "each on a fresh autoscaler. No target was set: informational.",
        "",
    ]
    rows = []
    for name in POLICIES:
        p = r["policies"][name]
        med, best = statistics.median(p["rates"]), max(p["rates"])
        rows.append(
            [
                name,
                f"{med:,.0f}",
                f"{best:,.0f}",
                f"{1e6 / med:.1f} µs",
                str(p["final_replicas"]),
            ]
        )
    header = [
        "policy",
        "decisions/s (median)",
        "decisions/s (best)",
        "µs / decision (median)",
        "replicas at the end",
    ]
    out += table(header, rows)
    out.append("")
    return out


HEADER_NOTE = (
    "Generated by `bench/run.py`; every figure below comes from a measured run: the one that "
    "wrote this file, except where a section names its own (`--only` rewrites one part)."
)
OLD_HEADER_NOTE = (
    "Generated by `bench/run.py`; every figure below comes from the run that wrote this file."
)


def render(run: Run, facts: dict[str, str], total_s: float) -> str:
    s = run.sizes
    lines = [
        "# Benchmarks",
        "",
        HEADER_NOTE,
        "",
        "**How to reproduce:** `make bench` (runs `python -m bench.run --out BENCHMARKS.md` "
        "from the repository root; `--quick` gives a small smoke run; `--only sim`, "
        "`--only daemon` or `--only kube` runs one part and keeps the other parts' sections of "
        "the file).",
        "",
    ]
    if run.quick:
        lines += [
            "> **Quick mode:** sizes are reduced for a smoke check; the targets below are not "
            "judged at their real sizes.",
            "",
        ]
    lines += [
        "## Method",
        "",
        "- Each measured job runs in a fresh child process (`python -m bench.run --job ...`), "
        "so start-up, caches and memory do not carry over between jobs.",
        "- Wall time is `time.perf_counter()` around `autoscaler.sim.runner.simulate(...)` "
        "alone (loading the trace, policy file and scenario is outside the timed region).",
        f"- Section 1: {s.repeats} repetitions per policy after one warm-up; median and min "
        "reported. Single process (`workers=1`), so one core.",
        "- Section 2: one run per row. `workers=1` is one process on one core; `workers=2` "
        "forks two worker processes (the simulator's own `multiprocessing` pool).",
        "- Section 3: `DeploymentAutoscaler.decide` only, timed call by call with "
        f"`time.perf_counter_ns()`; {s.decide_repeats} repetitions, median and best reported.",
        "- Peak memory: `resource.getrusage(RUSAGE_SELF).ru_maxrss` read in the job's own "
        "process at its end (peak resident set of that process over its life, including "
        "building the trace). With `workers=2` the workers are separate processes: "
        "`RUSAGE_CHILDREN.ru_maxrss` gives the largest single worker's peak (not a sum; forked "
        "workers share pages with the parent, so adding them would overcount).",
        "- **The machine is shared with other work, so figures are noisy** (timings can move "
        "by tens of percent between runs; min is the least disturbed figure). Load averages "
        "at start and end are listed below.",
        "",
        "## Machine",
        "",
    ]
    end_load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    facts = {**facts, "Load average at end (1/5/15 min)": " / ".join(f"{x:.2f}" for x in end_load)}
    facts["Benchmark total wall time"] = _fmt_s(total_s)
    lines += table(["", ""], [[k, v] for k, v in facts.items()])
    lines.append("")
    lines += _section_bundled(run)
    lines += _section_synthetic(run)
    lines += _section_decide(run)
    if run.daemon is not None:
        lines += ["", *daemon_bench.render_daemon(run.daemon, facts)]
    return "\n".join(lines).rstrip() + "\n"


def write_report(out: Path, run: Run, facts: dict[str, str], total_s: float) -> None:
    """Write ``out``. A run of one part (``--only``) keeps the other parts of an existing file:
    the decision-quality section (6) is spliced in by its markers, or kept where it was."""
    existing = out.read_text(encoding="utf-8") if out.exists() else ""
    start = existing.find(decisions_bench.SECTION_START)
    end = existing.find(decisions_bench.SECTION_END)
    kept = existing[start : end + len(decisions_bench.SECTION_END)] if -1 < start < end else None
    if kept is not None:
        existing = existing.replace(kept, "").rstrip() + "\n"
    if run.decisions is not None and run.daemon is None and run.kube is None and not run.jobs:
        report = existing or "\n".join(["# Benchmarks", "", HEADER_NOTE, ""]) + "\n"
    else:
        report = _report_with_kube(run, facts, total_s, existing)
    if run.decisions is not None:
        report = decisions_bench.splice(report, decisions_bench.render_section(run.decisions))
    elif kept is not None:
        report = report.rstrip() + "\n\n" + kept + "\n"
    out.write_text(report, encoding="utf-8")


def _report_with_kube(run: Run, facts: dict[str, str], total_s: float, existing: str) -> str:
    """The report without section 6. A run of one half keeps the other half of ``existing``:
    the daemon section is spliced in by its markers, or kept when only the simulator ran."""
    kube_start, kube_end = (
        existing.find(kube_bench.SECTION_START),
        existing.find(kube_bench.SECTION_END),
    )
    kept_kube = (
        existing[kube_start : kube_end + len(kube_bench.SECTION_END)]
        if kube_start != -1 and kube_end != -1
        else None
    )
    if run.kube is not None and run.daemon is None and not run.jobs:
        # Only the Kubernetes section ran: splice it into what is there.
        base = existing or "\n".join(["# Benchmarks", "", HEADER_NOTE, ""]) + "\n"
        return kube_bench.splice(base, kube_bench.render_kube(run.kube))
    existing_without_kube = (
        existing.replace(kept_kube, "").rstrip() + "\n" if kept_kube is not None else existing
    )
    report = _report_without_kube(run, facts, total_s, existing_without_kube)
    if run.kube is not None:
        report = kube_bench.splice(report, kube_bench.render_kube(run.kube))
    elif kept_kube is not None:
        report = report.rstrip() + "\n\n" + kept_kube + "\n"
    return report


def _report_without_kube(run: Run, facts: dict[str, str], total_s: float, existing: str) -> str:
    section = daemon_bench.SECTION_START in existing and daemon_bench.SECTION_END in existing
    if run.daemon is not None and not run.jobs and existing:
        report = daemon_bench.splice(
            existing.replace(OLD_HEADER_NOTE, HEADER_NOTE),
            daemon_bench.render_daemon(run.daemon, facts),
        )
    elif run.daemon is not None and not run.jobs:
        report = (
            "\n".join(
                [
                    "# Benchmarks",
                    "",
                    HEADER_NOTE,
                    "",
                    *daemon_bench.render_daemon(run.daemon, facts),
                ]
            )
            + "\n"
        )
    else:
        report = render(run, facts, total_s)
        if run.daemon is None and section:
            start = existing.index(daemon_bench.SECTION_START)
            end = existing.index(daemon_bench.SECTION_END) + len(daemon_bench.SECTION_END)
            report = report.rstrip() + "\n\n" + existing[start:end] + "\n"
    return report


# -- entry -----------------------------------------------------------------------------------


JOBS: dict[str, Callable[..., JobResult]] = {
    "bundled": job_bundled,
    "decide": job_decide,
    "synthetic": job_synthetic,
    **daemon_bench.JOBS,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    parser.add_argument("--job", choices=sorted(JOBS), help="(internal) run one measured job")
    parser.add_argument("--args", default="{}", help="(internal) the job's arguments as JSON")
    parser.add_argument("--profile", action="store_true", help="cProfile a small synthetic day")
    parser.add_argument("--profile-deployments", type=int, default=5)
    parser.add_argument(
        "--only",
        choices=["all", "sim", "daemon", "kube", "decisions"],
        default="all",
        help="sim: sections 1-3 (simulator, decision core); daemon: section 4 (Kafka ingest, "
        "reaction, memory); kube: section 5 (Kafka -> scale patch with a real control "
        "plane); decisions: section 6 (cost against the SLO per trace and policy); the other "
        "sections of an existing --out file are kept",
    )
    parser.add_argument(
        "--decision-traces",
        type=Path,
        metavar="DIR",
        help="section 6: these trace CSVs instead of freshly generated ones (bench/traces.py)",
    )
    parser.add_argument(
        "--kafka", metavar="HOST:PORT", help="daemon jobs: use this broker, do not start one"
    )
    args = parser.parse_args(argv)

    if args.job:
        result = JOBS[args.job](**json.loads(args.args))
        print(RESULT_MARK + json.dumps(result), flush=True)
        return 0
    if args.profile:
        profile(args.profile_deployments, DAY_S, 0.05, 15)
        return 0

    sizes = QUICK if args.quick else FULL
    facts = machine_facts()
    t0 = time.perf_counter()
    run = measure(sizes, args.quick, args.only, args.kafka, args.decision_traces)
    total_s = time.perf_counter() - t0
    if args.out:
        write_report(args.out, run, facts, total_s)
        print(f"[bench] wrote {args.out}", file=sys.stderr)
    elif run.jobs:
        sys.stdout.write(render(run, facts, total_s))
    elif run.decisions is not None and run.kube is None and run.daemon is None:
        sys.stdout.write("\n".join(decisions_bench.render_section(run.decisions)) + "\n")
    elif run.kube is not None and run.daemon is None:
        sys.stdout.write("\n".join(kube_bench.render_kube(run.kube)) + "\n")
    else:
        assert run.daemon is not None
        sys.stdout.write("\n".join(daemon_bench.render_daemon(run.daemon, facts)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
