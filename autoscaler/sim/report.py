"""A self-contained HTML report of a simulation run: results table, plots, scale actions.

The file needs nothing but a browser: styles are inline and plots are inline SVG made with
matplotlib (Agg backend). Long series are decimated (min/max per bucket, so peaks survive) to
keep the file small.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import numpy.typing as npt

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from autoscaler.sim.engine import DeploymentOutcome, ScaleAction
from autoscaler.sim.results import BEST_STATIC, REFERENCES, PolicyResult, reference_label, winner
from autoscaler.sim.runner import SimulationRun

MAX_POINTS = 3000
"""Most points drawn per line."""

MAX_ACTIONS = 30
"""Scale actions listed per policy."""

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 0 auto; max-width: 1200px; padding: 24px 32px 64px; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; word-break: break-all; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
.sub { color: #555; margin-top: 0; font-size: 1.05em; }
.note { color: #666; font-size: 0.9em; }
dl.kv { display: grid; grid-template-columns: max-content auto; gap: 4px 16px; margin: 0; }
dl.kv dt { color: #555; }
dl.kv dd { margin: 0; }
table { border-collapse: collapse; font-size: 0.92em; }
th, td { padding: 5px 8px; border-bottom: 1px solid #e4e4e4; text-align: right;
         white-space: nowrap; }
th { background: #f4f5f7; font-weight: 600; border-bottom: 2px solid #ccc;
     white-space: normal; vertical-align: bottom; }
.scroll { overflow-x: auto; }
td.name, th.name { text-align: left; }
tr.ref td { color: #777; font-style: italic; background: #fafafa; }
tr.best td { background: #e7f5e9; font-weight: 600; }
.badge { display: inline-block; background: #2e7d32; color: #fff; border-radius: 3px;
         font-size: 0.75em; padding: 0 5px; margin-left: 6px; font-style: normal; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
          margin-right: 6px; vertical-align: baseline; }
figure { margin: 12px 0; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: 0.9em; margin-top: 4px; }
.row { display: flex; gap: 32px; align-items: flex-start; flex-wrap: wrap; }
.row > * { flex: 1 1 360px; }
details { margin: 8px 0; border: 1px solid #e4e4e4; border-radius: 4px; padding: 6px 12px; }
details summary { cursor: pointer; font-weight: 600; }
table.actions td { font-variant-numeric: tabular-nums; }
table.actions td.reason { white-space: normal; text-align: left; color: #444;
                          font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.9em; }
td { font-variant-numeric: tabular-nums; }
"""


def write_report(run: SimulationRun, path: Path) -> None:
    """Write the HTML report of ``run`` to ``path``."""
    path.write_text(render_report(run), encoding="utf-8")


def render_report(run: SimulationRun) -> str:
    """The HTML report of ``run``, as one self-contained document."""
    trace = run.trace
    start = _trace_start(run)
    policies = [r.policy for r in run.results if r.policy not in REFERENCES]
    colors = {p: _COLORS[i % len(_COLORS)] for i, p in enumerate(policies)}
    deployments = [n for n, d in trace.deployments.items() if d.arrivals]

    parts: list[str] = []
    title = f"Simulation report: {trace.source}"
    parts.append(
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
    )
    parts.append(f"<h1>{_e(title)}</h1>\n")
    deps_text = f", {len(deployments)} deployments" if len(deployments) > 1 else ""
    parts.append(
        f'<p class="sub">{trace.requests:,} requests over {_e(_duration(trace.span_s))}'
        f"{_e(deps_text)}; {len(policies)} "
        f"{'policy' if len(policies) == 1 else 'policies'} compared</p>\n"
    )
    parts.append(_scenario_section(run))
    parts.append(_results_section(run, colors))
    parts.append(_timeline_section(run, policies, colors, start))
    parts.append(_waits_section(run, policies, colors))
    parts.append(_actions_section(run, policies, colors, start, len(deployments) > 1))
    parts.append("</body>\n</html>\n")
    return "".join(parts)


# -- sections ---------------------------------------------------------------------------------


def _scenario_section(run: SimulationRun) -> str:
    sc = run.scenario
    st = sc.service_time
    model = f"{st.base_s:g} s + {st.per_context_token_s:g} s × context tokens + "
    model += f"{st.per_generated_token_s:g} s × generated tokens"
    has_durations = any(
        d is not None for dep in run.trace.deployments.values() for d in dep.durations
    )
    if has_durations:
        model += " (requests with recorded durations use those)"
    initial = (
        f"{sc.initial_replicas}"
        if sc.initial_replicas is not None
        else "each deployment's min_replicas"
    )
    compared = {r.policy for r in run.results if r.policy not in REFERENCES}
    rows = [
        ("Cold start", f"{sc.cold_start_s:g} s from asking for a replica to it being ready"),
        ("SLO", _slo_text(run)),
        ("Service time", model),
        ("Initial replicas", initial),
        ("Decision tick", f"every {sc.tick_s:g} s (and at once when load outgrows capacity)"),
    ]
    for name, res in list(run.resolved.items())[:8]:
        s = res.settings
        label = f"Deployment {name}" if name else "Deployment"
        own = f"policy {s.policy}" + (
            "" if compared <= {s.policy} else " in the file (the compared policies replace it)"
        )
        text = f"{own}, {s.min_replicas}–{s.max_replicas} replicas, parallelism {s.parallelism}"
        if res.instance is not None:
            text += f", {res.instance.describe()}"
        rows.append((label, text))
    if len(run.resolved) > 8:
        rows.append(("", f"… and {len(run.resolved) - 8} more deployments"))
    body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    return f'<h2>Scenario</h2>\n<dl class="kv">{body}</dl>\n'


def _slo_text(run: SimulationRun) -> str:
    waits = sorted(set(run.slo_wait_s.values()))
    if run.scenario.slo_wait_s is not None or len(waits) == 1:
        wait = run.scenario.slo_wait_s if run.scenario.slo_wait_s is not None else waits[0]
        text = f"a request starts within {wait:g} s of arriving"
        if run.scenario.slo_wait_s is None:
            text += " (the policy file's slo.wait_s)"
    elif waits:
        text = "a request starts within its deployment's slo.wait_s of arriving ("
        text += ", ".join(f"{w:g} s" for w in waits) + ")"
    else:
        text = "a request starts within its deployment's slo.wait_s of arriving"
    return text + f"; target: {run.slo_target:.2%} of requests"


def _ratio(value: float | None) -> str:
    return f"{value:.2f}×" if value is not None else "–"


def _results_section(run: SimulationRun, colors: dict[str, str]) -> str:
    best = winner(run.results, run.slo_target)
    head = (
        '<tr><th class="name">Policy</th><th>Served / requests</th><th>Replica-seconds</th>'
        "<th>Cost</th><th>× oracle</th><th>× hindsight</th><th>× best_static</th>"
        "<th>Cold-start waits</th><th>Scale actions</th><th>Actions / h</th>"
        "<th>Wait p50</th><th>Wait p95</th><th>Wait p99</th><th>SLO met</th></tr>"
    )
    rows: list[str] = []
    ordered = [r for r in run.results if r.policy not in REFERENCES]
    ordered += [r for r in run.results if r.policy in REFERENCES]
    for r in ordered:
        ref = r.policy in REFERENCES
        cls = "ref" if ref else ("best" if r.policy == best else "")
        swatch = (
            f'<span class="swatch" style="background:{colors[r.policy]}"></span>'
            if r.policy in colors
            else ""
        )
        badge = '<span class="badge">best</span>' if r.policy == best else ""
        per_hour = r.scale_actions_per_hour
        pct = r.slo_attainment * 100.0
        bar = (
            f' style="background:linear-gradient(to right,#cde8d0 {pct:.1f}%,'
            f'transparent {pct:.1f}%)"'
        )
        cells = [
            f'<td class="name">{swatch}{_e(reference_label(r.policy, run.best_static_fleet))}'
            f"{badge}</td>",
            f"<td>{r.served:,} / {r.requests:,}</td>",
            f"<td>{r.replica_seconds:,.0f}</td>",
            f"<td>${r.cost:,.2f}</td>",
            f"<td>{_e(_ratio(r.cost_vs_oracle))}</td>",
            f"<td>{_e(_ratio(r.cost_vs_hindsight))}</td>",
            f"<td>{_e(_ratio(r.cost_vs_best_static))}</td>",
            f"<td>{r.cold_start_waits:,}</td>",
            f"<td>{r.scale_actions:,}</td>",
            f"<td>{'–' if per_hour is None else f'{per_hour:,.1f}'}</td>",
            f"<td>{_e(_seconds(r.wait_p50_s))}</td>",
            f"<td>{_e(_seconds(r.wait_p95_s))}</td>",
            f"<td>{_e(_seconds(r.wait_p99_s))}</td>",
            f"<td{'' if ref else bar}>{pct:.1f}%</td>",
        ]
        rows.append(f'<tr class="{cls}">{"".join(cells)}</tr>')
    table = (
        f'<div class="scroll"><table>\n<thead>{head}</thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table></div>"
    )
    notes = (
        '<p class="note">'
        + (
            f"<b>{_e(best)}</b> is highlighted: the cheapest policy whose SLO attainment meets "
            f"the target ({run.slo_target:.2%}), or the one with the highest attainment when "
            "none does; references never win. "
            if best is not None
            else ""
        )
        + "<i>oracle</i>: clairvoyant provisioning (just enough replicas at every instant, no "
        "cold start), starting from the initial replicas. <i>hindsight</i>: the oracle's "
        "replicas asked for a cold start before they are needed, kept through gaps shorter "
        "than a cold start: the cost of perfect foresight. <i>best_static</i>: the smallest "
        "fixed fleet (min = max = N per deployment) that meets the target in this simulator, "
        "or max_replicas when none does. <i>work_bound</i>: total service time / parallelism, "
        "the replica-seconds no provisioning can go below. Cold-start waits: requests served "
        "by a replica that was not ready when they arrived.</p>"
    )
    scatter = _tradeoff_svg(run.results, colors, best)
    out = f"<h2>Results</h2>\n{table}\n{notes}\n"
    if scatter:
        out += (
            f'<figure style="max-width:640px">{scatter}<figcaption>Cost against SLO '
            "attainment: down and to the right is better.</figcaption></figure>\n"
        )
    return out


def _timeline_section(
    run: SimulationRun, policies: list[str], colors: dict[str, str], start: float
) -> str:
    out = "<h2>Load and replicas over time</h2>\n"
    deployments = {n: len(d.arrivals) for n, d in run.trace.deployments.items() if d.arrivals}
    if not deployments or not policies:
        return out + '<p class="note">No requests were simulated: nothing to plot.</p>\n'
    name = max(deployments, key=lambda n: deployments[n])
    label = name or "trace"
    shown: list[tuple[str, DeploymentOutcome]] = []
    missing: list[str] = []
    for policy in policies:
        outcome = next((o for o in run.outcomes.get(policy, []) if o.deployment == label), None)
        if outcome is None or outcome.series is None or not outcome.series.t:
            missing.append(policy)
        else:
            shown.append((policy, outcome))
    if len(deployments) > 1:
        out += (
            f'<p class="note">Showing deployment <b>{_e(name)}</b> ({deployments[name]:,} '
            f"requests), the busiest of {len(deployments)}; the others are not plotted.</p>\n"
        )
    if missing:
        out += (
            f'<p class="note">No time series recorded for {_e(", ".join(missing))} '
            "(the simulation ran without series recording).</p>\n"
        )
    if not shown:
        return out
    resolved = run.resolved.get(name)
    parallelism = resolved.settings.parallelism if resolved is not None else 1
    svg = _timeline_svg(shown, colors, start, parallelism)
    caption = (
        "Filled: load (requests in flight + queued), divided by parallelism "
        f"({parallelism}) so it reads in replicas' worth of work on the left axis and in "
        "requests on the right. Lines: replicas asked for (billed) and replicas ready."
    )
    return out + f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>\n"


def _waits_section(run: SimulationRun, policies: list[str], colors: dict[str, str]) -> str:
    out = "<h2>Wait times</h2>\n"
    waits = {
        p: np.concatenate([np.asarray(o.waits, dtype=np.float64) for o in run.outcomes[p]])
        for p in policies
        if run.outcomes.get(p)
    }
    waits = {p: w for p, w in waits.items() if w.size}
    if not waits:
        return out + '<p class="note">No requests were served: no waits to plot.</p>\n'
    bounds = sorted(
        {run.scenario.slo_wait_s}
        if run.scenario.slo_wait_s is not None
        else set(run.slo_wait_s.values()) or {2.0}
    )
    attained = {r.policy: r.slo_attainment for r in run.results}
    svg = _waits_svg(waits, colors, bounds, attained)
    caption = (
        "Share of requests that waited at most x seconds from arrival to start of service "
        "(higher and further left is better). The x axis is linear below 0.1 s and "
        "logarithmic above; the dashed line is the SLO. The references wait 0 s by definition."
    )
    return out + f"<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>\n"


def _actions_section(
    run: SimulationRun,
    policies: list[str],
    colors: dict[str, str],
    start: float,
    multi: bool,
) -> str:
    out = "<h2>Scale actions</h2>\n"
    if not policies:
        return out + '<p class="note">No policies were simulated.</p>\n'
    totals = {r.policy: r.scale_actions for r in run.results}
    for policy in policies:
        actions: list[tuple[str, ScaleAction]] = [
            (o.deployment, a) for o in run.outcomes.get(policy, []) for a in o.actions
        ]
        actions.sort(key=lambda da: da[1].t)
        total = totals.get(policy, len(actions))
        first = actions[:MAX_ACTIONS]
        summary = (
            f'<span class="swatch" style="background:{colors[policy]}"></span>{_e(policy)}: '
            f"{total:,} scale action{'' if total == 1 else 's'}"
            + (f", first {len(first)} shown" if total > len(first) else "")
        )
        if not first:
            out += f'<details><summary>{summary}</summary><p class="note">None.</p></details>\n'
            continue
        dep_head = '<th class="name">Deployment</th>' if multi else ""
        rows: list[str] = []
        for dep, a in first:
            dep_cell = f'<td class="name">{_e(dep)}</td>' if multi else ""
            arrow = "↑" if a.after > a.before else "↓"
            rows.append(
                f"<tr><td>{_e(_clock(a.t - start))}</td>{dep_cell}"
                f"<td>{a.before} → {a.after} {arrow}</td>"
                f'<td class="reason">{_e(a.reason)}</td></tr>'
            )
        out += (
            f"<details><summary>{summary}</summary>\n"
            f'<table class="actions"><thead><tr><th>Time since start</th>{dep_head}'
            '<th>Replicas</th><th class="name">Reason</th></tr></thead>\n<tbody>\n'
            + "\n".join(rows)
            + "\n</tbody></table></details>\n"
        )
    return out


# -- plots ------------------------------------------------------------------------------------


def _timeline_svg(
    shown: list[tuple[str, DeploymentOutcome]],
    colors: dict[str, str],
    start: float,
    parallelism: int,
) -> str:
    n = len(shown)
    fig, axes = plt.subplots(
        n,
        1,
        sharex=True,
        sharey=True,
        squeeze=False,
        figsize=(11.0, 1.0 + 1.9 * n),
        layout="constrained",
    )
    p = float(max(parallelism, 1))
    for row, (policy, outcome) in enumerate(shown):
        ax = axes[row][0]
        series = outcome.series
        assert series is not None
        t = (np.asarray(series.t, dtype=np.float64) - start) / 60.0
        load_t, load = _decimate(t, np.asarray(series.load, dtype=np.float64) / p)
        rep_t, rep = _decimate(t, np.asarray(series.replicas, dtype=np.float64))
        ready_t, ready = _decimate(t, np.asarray(series.ready, dtype=np.float64))
        ax.fill_between(
            load_t,
            load,
            step="post",
            color="#9aa5b1",
            alpha=0.45,
            linewidth=0,
            label="load (in flight + queued)",
        )
        ax.step(
            rep_t,
            rep,
            where="post",
            color=colors[policy],
            linewidth=1.4,
            label="replicas asked for",
        )
        ax.step(
            ready_t,
            ready,
            where="post",
            color="#222",
            linewidth=0.9,
            linestyle=(0, (3, 2)),
            label="replicas ready",
        )
        ax.set_ylim(bottom=0)
        ax.set_ylabel("replicas")
        ax.set_title(policy, loc="left", fontsize=10, fontweight="bold", color=colors[policy])
        ax.grid(True, axis="both", color="#e6e6e6", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.spines[["top"]].set_visible(False)
        if parallelism > 1:
            secondary = ax.secondary_yaxis("right", functions=(lambda x: x * p, lambda x: x / p))
            secondary.set_ylabel("requests", color="#777")
            secondary.tick_params(colors="#777")
        ax.tick_params(labelleft=True)
    handles = [
        Patch(color="#9aa5b1", alpha=0.45, label="load (in flight + queued)"),
        Line2D([], [], color="#555", linewidth=1.4, label="replicas asked for (policy colour)"),
        Line2D([], [], color="#222", linewidth=0.9, linestyle=(0, (3, 2)), label="replicas ready"),
    ]
    axes[0][0].legend(
        handles=handles,
        loc="lower right",
        fontsize=8,
        ncols=3,
        frameon=False,
        bbox_to_anchor=(1.0, 1.0),
    )
    axes[-1][0].set_xlabel("minutes since trace start")
    axes[-1][0].set_xlim(left=0)
    return _svg(fig, "timeline")


def _waits_svg(
    waits: dict[str, npt.NDArray[np.float64]],
    colors: dict[str, str],
    slos: list[float],
    attained: dict[str, float],
) -> str:
    """``slos``: the distinct waits deployments are scored against (one dashed line each);
    ``attained``: each policy's attainment, as in the table (per deployment's own wait)."""
    fig, ax = plt.subplots(figsize=(11.0, 4.2), layout="constrained")
    top = 0.0
    for policy, w in waits.items():
        sorted_w = np.sort(w)
        n = sorted_w.size
        if n > MAX_POINTS:
            idx = np.unique(np.linspace(0, n - 1, MAX_POINTS).astype(np.int64))
            xs, ys = sorted_w[idx], (idx + 1) / n
        else:
            xs, ys = sorted_w, np.arange(1, n + 1) / n
        xs = np.concatenate([[0.0], xs])
        ys = np.concatenate([[float(np.count_nonzero(sorted_w <= 0.0)) / n], ys])
        ax.step(
            xs,
            ys * 100.0,
            where="post",
            color=colors[policy],
            linewidth=1.6,
            label=f"{policy} ({attained.get(policy, 0.0) * 100.0:.1f}% within SLO)",
        )
        top = max(top, float(sorted_w[-1]))
    for slo in slos:
        ax.axvline(slo, color="#c62828", linestyle="--", linewidth=1.2)
        ax.text(slo, 2, f" SLO {slo:g} s", color="#c62828", fontsize=9, va="bottom")
    ax.set_xscale("symlog", linthresh=0.1, linscale=0.5)
    ax.set_xlim(0, max(top, *slos) * 1.5)
    ax.set_ylim(0, 101)
    ax.set_xlabel("wait before service starts (s)")
    ax.set_ylabel("% of requests")
    ax.grid(True, color="#e6e6e6", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="lower right", fontsize=9, frameon=False)
    return _svg(fig, "waits")


def _tradeoff_svg(results: Sequence[PolicyResult], colors: dict[str, str], best: str | None) -> str:
    shown_refs = ("oracle", "hindsight", BEST_STATIC)
    points = [r for r in results if r.policy in colors or r.policy in shown_refs]
    if not any(r.policy in colors for r in points):
        return ""
    fig, ax = plt.subplots(figsize=(6.4, 3.4), layout="constrained")
    for r in points:
        color = colors.get(r.policy, "#888")
        marker = "*" if r.policy == best else ("D" if r.policy in shown_refs else "o")
        size = 160 if r.policy == best else 60
        ax.scatter(
            [r.slo_attainment * 100.0],
            [r.cost],
            color=color,
            s=size,
            marker=marker,
            zorder=3,
            edgecolor="white",
            linewidth=0.8,
        )
        ax.annotate(
            r.policy,
            (r.slo_attainment * 100.0, r.cost),
            textcoords="offset points",
            xytext=(7, 4),
            fontsize=9,
            color=color,
        )
    ax.set_xlabel("SLO met (% of requests)")
    ax.set_ylabel("cost ($)")
    ax.set_ylim(bottom=0)
    lo = min(r.slo_attainment for r in points) * 100.0
    ax.set_xlim(max(0.0, lo - 5.0), 103)
    ax.grid(True, color="#e6e6e6", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig, "tradeoff")


def _decimate(
    t: npt.NDArray[np.float64], y: npt.NDArray[np.float64], max_points: int = MAX_POINTS
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """At most ``max_points`` points: each bucket keeps its minimum and maximum, in order,
    so spikes and dips stay visible."""
    n = t.size
    if n <= max_points:
        return t, y
    buckets = max(1, max_points // 2)
    size = math.ceil(n / buckets)
    padded = np.concatenate([y, np.full(buckets * size - n, y[-1])]).reshape(buckets, size)
    base = np.arange(buckets) * size
    lo = np.minimum(base + padded.argmin(axis=1), n - 1)
    hi = np.minimum(base + padded.argmax(axis=1), n - 1)
    idx = np.unique(np.concatenate([lo, hi, [0, n - 1]]))
    return t[idx], y[idx]


def _svg(fig: Any, salt: str) -> str:
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    # Scale with the page: keep the viewBox, drop the fixed size.
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)


# -- formatting -------------------------------------------------------------------------------


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _trace_start(run: SimulationRun) -> float:
    starts = [d.arrivals[0] for d in run.trace.deployments.values() if d.arrivals]
    return min(starts) if starts else 0.0


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _seconds(seconds: float) -> str:
    if seconds == 0:
        return "0 s"
    if seconds < 10:
        return f"{seconds:.2f} s"
    return f"{seconds:.1f} s"


def _clock(offset: float) -> str:
    """``+m:ss.s`` (or ``+h:mm:ss``) since trace start."""
    sign = "-" if offset < 0 else "+"
    offset = round(abs(offset), 1)
    hours, rest = divmod(offset, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 1:
        return f"{sign}{int(hours)}:{int(minutes):02d}:{int(secs):02d}"
    return f"{sign}{int(minutes)}:{secs:04.1f}"


__all__ = ["REFERENCES", "render_report", "write_report"]
