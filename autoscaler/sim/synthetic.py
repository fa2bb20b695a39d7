"""Synthetic traces for benchmarks and tests: Poisson arrivals whose rate follows a daily
cycle, with LLM-like token counts. Seeded, so a run is reproducible."""

from __future__ import annotations

import math

import numpy as np

from autoscaler.sim.trace import DeploymentTrace, Trace


def synthetic_trace(
    deployments: int,
    duration_s: float,
    mean_rps: float,
    *,
    seed: int = 0,
    start: float = 1_700_000_000.0,
    period_s: float = 86_400.0,
    amplitude: float = 0.6,
) -> Trace:
    """``deployments`` named ``synthetic/model-NNNN``; each gets a mean rate drawn around
    ``mean_rps`` (log-normal, so a few are busy and most are quiet), a rate that swings by
    ``amplitude`` over ``period_s`` with its own phase, and token counts like a chat trace."""
    rng = np.random.default_rng(seed)
    result: dict[str, DeploymentTrace] = {}
    for k in range(deployments):
        rate = mean_rps * float(rng.lognormal(mean=-0.5, sigma=1.0))
        phase = float(rng.uniform(0, 2 * math.pi))
        # Thinning: draw at the peak rate, keep each arrival with probability rate(t)/peak.
        peak = rate * (1 + amplitude)
        count = int(rng.poisson(peak * duration_s))
        times = np.sort(rng.uniform(0, duration_s, count))
        keep = rng.uniform(0, 1, count) < (
            1 + amplitude * np.sin(2 * math.pi * times / period_s + phase)
        ) / (1 + amplitude)
        times = times[keep]
        n = times.size
        context = rng.lognormal(mean=6.8, sigma=0.9, size=n).astype(np.int64)
        generated = rng.lognormal(mean=4.6, sigma=0.8, size=n).astype(np.int64)
        result[f"synthetic/model-{k:04d}"] = DeploymentTrace(
            arrivals=(times + start).tolist(),
            context_tokens=context.tolist(),
            generated_tokens=generated.tolist(),
            durations=[None] * n,
        )
    return Trace(result, f"synthetic({deployments} deployments, {duration_s:g}s, seed {seed})")
