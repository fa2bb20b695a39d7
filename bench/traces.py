"""Evaluation traces for the decision-quality bench: synthetic shapes and ServeGen excerpts.

Every trace is written in the Azure LLM CSV format the simulator reads
(``TIMESTAMP,ContextTokens,GeneratedTokens``), so ``autoscaler simulate --trace FILE`` replays
it unchanged. Each generator takes a seed: the same seed writes the same file, byte for byte.

Token counts are drawn so the bundled service-time model (0.2 s + 0.0001 s per context token
+ 0.02 s per generated token) gives the mean service time each shape asks for.

ServeGen attribution: the ``servegen_<client>.csv`` traces are derived from alibaba/ServeGen,
``data/language/m-large/*-trace.csv`` (Apache License 2.0), from Xiang et al., "ServeGen:
Workload Characterization and Generation of Large Language Model Serving in Production",
NSDI 2026. The CSV reader accepts no comment lines (a comment would count as a malformed
row), so the attribution lives here and in BENCHMARKS.md rather than in the files.

    python -m bench.traces --out DIR [--servegen DIR] [--clients 91,41,20,39]
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

BASE_TS = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
"""Arbitrary wall-clock origin of every generated trace (the simulator only uses differences)."""

SERVICE_BASE_S = 0.2
SERVICE_PER_CONTEXT_S = 0.0001
SERVICE_PER_GENERATED_S = 0.02
"""The bundled service-time model, used to aim token counts at a mean service time."""

CONTEXT_MEAN = 1000.0
TOKEN_SIGMA = 0.8
"""Log-space spread of both token counts: a long right tail, as in chat traffic."""

HOUR_S = 3600.0
DAY_S = 86400.0
SERVEGEN_WINDOW_S = 600.0
SERVEGEN_DEFAULT_DIR = (
    Path(__file__).resolve().parents[2] / "shared/traces/servegen/language-m-large"
)
SERVEGEN_DEFAULT_CLIENTS = (91, 41, 20, 39)
"""Day-2 mean rates of 4.9, 4.6, 2.6 and 4.1 req/s with mean window cv 1.0, 1.8, 2.4 and 3.5
(39 also has silent windows): from Poisson-like to very bursty."""


@dataclass(frozen=True)
class Requests:
    """Arrival offsets (seconds from the trace start, sorted) with token counts."""

    arrivals: FloatArray
    context: npt.NDArray[np.int64]
    generated: npt.NDArray[np.int64]

    def service_s(self) -> FloatArray:
        return (
            SERVICE_BASE_S
            + SERVICE_PER_CONTEXT_S * self.context
            + SERVICE_PER_GENERATED_S * self.generated
        )


# --- arrivals -------------------------------------------------------------------------------


def poisson_arrivals(rng: np.random.Generator, rate: FloatArray, bin_s: float) -> FloatArray:
    """A Poisson process whose rate is constant within each ``bin_s`` bin (``rate[i]`` req/s)."""
    counts = rng.poisson(np.maximum(rate, 0.0) * bin_s)
    starts = np.repeat(np.arange(len(rate)) * bin_s, counts)
    return np.sort(starts + rng.uniform(0.0, bin_s, size=len(starts)))


def drift(rng: np.random.Generator, span_s: float, knot_s: float, amplitude: float) -> FloatArray:
    """A slow multiplicative drift per second: 1 + a piecewise-linear walk through knots every
    ``knot_s`` seconds with values uniform in +-``amplitude`` (a few gentle rises and falls)."""
    knots = np.arange(0.0, span_s + knot_s, knot_s)
    values = 1.0 + rng.uniform(-amplitude, amplitude, size=len(knots))
    factor: FloatArray = np.interp(np.arange(0.0, span_s, 1.0), knots, values)
    return factor


def lognormal_ints(rng: np.random.Generator, mean: float, size: int) -> npt.NDArray[np.int64]:
    """Lognormal counts with the given mean (sigma ``TOKEN_SIGMA``), at least 1."""
    mu = math.log(mean) - TOKEN_SIGMA**2 / 2
    return np.maximum(np.rint(rng.lognormal(mu, TOKEN_SIGMA, size=size)), 1).astype(np.int64)


def with_tokens(rng: np.random.Generator, arrivals: FloatArray, service_s: float) -> Requests:
    """Token counts aimed at a mean service of ``service_s`` under the bundled model."""
    generated_mean = (service_s - SERVICE_BASE_S - SERVICE_PER_CONTEXT_S * CONTEXT_MEAN) / (
        SERVICE_PER_GENERATED_S
    )
    return Requests(
        arrivals=arrivals,
        context=lognormal_ints(rng, CONTEXT_MEAN, len(arrivals)),
        generated=lognormal_ints(rng, max(generated_mean, 1.0), len(arrivals)),
    )


# --- synthetic shapes -----------------------------------------------------------------------


RAMP_IN_S = 600.0
"""steady_long's lead-in: 37 busy slots at once would need ~13 replicas from the first
second, so with 8 ready and a 60 s cold start no policy, and no fixed fleet, could reach
99.9% (1% of the hour queues behind the first cold start). Ten minutes from a quarter of the
rate let a fleet be in place before the steady part."""


def steady_long_level(rng: np.random.Generator) -> FloatArray:
    """steady_long's rate per second, before its Poisson arrivals are drawn."""
    rate = 6.0 * drift(rng, HOUR_S, 600.0, 0.18)
    ramp = int(RAMP_IN_S)
    rate[:ramp] *= np.linspace(0.25, 1.0, ramp)
    return rate


STEADY_LONG_SEED = 1


def steady_long(seed: int = STEADY_LONG_SEED) -> Requests:
    """One hour at ~6 req/s with +-18% drifts every 10 min, after a 10-min ramp from a quarter
    of that; ~6 s service (many replicas)."""
    rng = np.random.default_rng(seed)
    rate = steady_long_level(rng)
    return with_tokens(rng, poisson_arrivals(rng, rate, 1.0), 6.0)


def gamma_noise(
    rng: np.random.Generator, span_s: float, period_s: float, shape: float
) -> FloatArray:
    """Per-second factor, constant over each ``period_s``, Gamma distributed with mean 1 and
    cv 1/sqrt(shape): the minute-scale noise of a doubly stochastic (Cox) process."""
    periods = math.ceil(span_s / period_s)
    noise = rng.gamma(shape, 1.0 / shape, size=periods)
    return np.repeat(noise, int(period_s))[: int(span_s)]


CHAT_A = (1.5, 2)
CHAT_B = (3.0, 3)
"""(mean rate, seed) of the two chat shapes."""


def chat_level(rng: np.random.Generator, rate: float) -> FloatArray:
    """A chat shape's slowly drifting rate per second: what can be learned from its past. The
    Gamma noise on top of it, drawn next from the same generator, cannot."""
    return rate * drift(rng, HOUR_S, 900.0, 0.15)


def chat(rate: float, seed: int) -> Requests:
    """One hour of steady chat traffic: a slowly drifting rate times Gamma noise per 30 s
    (cv ~0.35), ~5 s mean service."""
    rng = np.random.default_rng(seed)
    per_s = chat_level(rng, rate) * gamma_noise(rng, HOUR_S, 30.0, 8.0)
    return with_tokens(rng, poisson_arrivals(rng, per_s, 1.0), 5.0)


def chat_a(seed: int = CHAT_A[1]) -> Requests:
    return chat(CHAT_A[0], seed)


def chat_b(seed: int = CHAT_B[1]) -> Requests:
    return chat(CHAT_B[0], seed)


def daily_ramp(seed: int = 4) -> Requests:
    """A day compressed into 2 hours: 0.3 -> 8 -> 0.3 req/s (raised cosine), ~3 s service."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, 2 * HOUR_S, 1.0)
    rate = 0.3 + (8.0 - 0.3) * (1.0 - np.cos(2 * math.pi * t / (2 * HOUR_S))) / 2
    return with_tokens(rng, poisson_arrivals(rng, rate, 1.0), 3.0)


def onoff(seed: int = 5, span_s: float = HOUR_S) -> Requests:
    """Silences of 3-10 min, each followed by a burst of 1-4 min at 10-40 req/s; ~1 s service."""
    rng = np.random.default_rng(seed)
    rate = np.zeros(int(span_s))
    t = 0.0
    while t < span_s:
        t += rng.uniform(180.0, 600.0)
        burst = rng.uniform(60.0, 240.0)
        rate[int(min(t, span_s)) : int(min(t + burst, span_s))] = rng.uniform(10.0, 40.0)
        t += burst
    return with_tokens(rng, poisson_arrivals(rng, rate, 1.0), 1.0)


def step(seed: int = 6) -> Requests:
    """1 req/s for 20 min, 10 req/s for 20 min, 1 req/s for 20 min; ~3 s service."""
    rng = np.random.default_rng(seed)
    rate = np.concatenate([np.full(1200, 1.0), np.full(1200, 10.0), np.full(1200, 1.0)])
    return with_tokens(rng, poisson_arrivals(rng, rate, 1.0), 3.0)


SYNTHETIC: dict[str, Callable[[], Requests]] = {
    "steady_long": steady_long,
    "chat_a": chat_a,
    "chat_b": chat_b,
    "daily_ramp": daily_ramp,
    "onoff": onoff,
    "step": step,
}
STEADY = ("steady_long", "chat_a", "chat_b")
"""The shapes the issue's steady-state target (>= 99.9% at <= 0.95 x best static) applies to."""

LEVELS: dict[str, Callable[[], FloatArray]] = {
    "steady_long": lambda: steady_long_level(np.random.default_rng(STEADY_LONG_SEED)),
    "chat_a": lambda: chat_level(np.random.default_rng(CHAT_A[1]), CHAT_A[0]),
    "chat_b": lambda: chat_level(np.random.default_rng(CHAT_B[1]), CHAT_B[0]),
}
"""Per steady shape, its rate level per second of the trace, drawn from the same seed as the
trace (the first draws of its generator): the part of the load a reactive policy could learn
at best. ``bench.bounds`` sizes a fleet that knows it."""


# --- ServeGen -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start_s: float
    rate: float
    pattern: str
    shape: float
    scale: float


def read_servegen(path: Path) -> list[Window]:
    """``window_start_s,rate_rps,cv,pattern,shape,scale`` rows (no header)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [
            Window(float(r[0]), float(r[1]), r[3], float(r[4]), float(r[5]))
            for r in csv.reader(handle)
            if r
        ]


def window_arrivals(rng: np.random.Generator, window: Window, rate_scale: float) -> FloatArray:
    """As the published generator: ``round(rate x 600)`` inter-arrivals from the fitted
    distribution, scaled to fill the window (so the window's count is exact and the fitted
    shape only sets the burstiness within it)."""
    n = round(window.rate * rate_scale * SERVEGEN_WINDOW_S)
    if n <= 0:
        return np.empty(0)
    if window.pattern == "Weibull":
        gaps = rng.weibull(window.shape, size=n) * window.scale
    elif window.pattern == "Gamma":
        gaps = rng.gamma(window.shape, window.scale, size=n)
    else:  # no fitted distribution (too few requests to fit): Poisson
        gaps = rng.exponential(1.0, size=n)
    total = float(gaps.sum())
    if not total > 0:
        gaps, total = np.ones(n), float(n)
    # Each arrival at the sum of the gaps before it: the window's first request at its start,
    # its last one gap before the next window (an inclusive sum would put it on that start).
    before = np.cumsum(gaps) - gaps
    return window.start_s + before * (SERVEGEN_WINDOW_S / total)


SERVEGEN_HOURS = (8.0, 12.0)
"""The part of day 2 the bench replays of each ServeGen client."""


def servegen(
    path: Path,
    seed: int,
    day: int = 2,
    rate_scale: float = 1.0,
    service_s: float = 5.0,
    hours: tuple[float, float] = (0.0, 24.0),
) -> Requests:
    """Hours ``hours`` (from, to) of one day (``day``, 1-based) of a ServeGen client, shifted to
    start at 0."""
    rng = np.random.default_rng(seed)
    lo, hi = (day - 1) * DAY_S + hours[0] * 3600, (day - 1) * DAY_S + hours[1] * 3600
    parts = [
        window_arrivals(rng, w, rate_scale) for w in read_servegen(path) if lo <= w.start_s < hi
    ]
    arrivals = np.sort(np.concatenate(parts)) - lo if parts else np.empty(0)
    return with_tokens(rng, arrivals, service_s)


# --- output ---------------------------------------------------------------------------------


def format_ts(offset_s: float) -> str:
    whole = math.floor(offset_s)
    micros = round((offset_s - whole) * 1e6)
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    stamp = datetime.fromtimestamp(BASE_TS + whole, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp}.{micros:06d}"


def write_csv(requests: Requests, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
        for ts, ctx, gen in zip(
            requests.arrivals.tolist(),
            requests.context.tolist(),
            requests.generated.tolist(),
            strict=True,
        ):
            out.writerow([format_ts(ts), ctx, gen])


def summary(name: str, requests: Requests) -> str:
    n = len(requests.arrivals)
    span = float(requests.arrivals[-1] - requests.arrivals[0]) if n > 1 else 0.0
    rate = n / span if span > 0 else 0.0
    service = float(requests.service_s().mean()) if n else 0.0
    return (
        f"{name:<20} {n:>8} requests  {span / 3600:5.2f} h  mean {rate:6.2f} req/s  "
        f"mean service {service:5.2f} s  offered {rate * service:6.1f} busy"
    )


def build_all(servegen_dir: Path, clients: Sequence[int], rate_scale: float) -> dict[str, Requests]:
    traces = {name: make() for name, make in SYNTHETIC.items()}
    for client in clients:
        path = servegen_dir / f"chunk-{client}-trace.csv"
        # Four morning hours, the daily rise included: a whole day per client and policy took
        # 5 to 16 minutes to simulate, too long for a bench that also searches fixed fleets.
        traces[f"servegen_{client}"] = servegen(
            path, seed=100 + client, rate_scale=rate_scale, hours=SERVEGEN_HOURS
        )
    return traces


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--servegen", type=Path, default=SERVEGEN_DEFAULT_DIR)
    parser.add_argument("--clients", default=",".join(str(c) for c in SERVEGEN_DEFAULT_CLIENTS))
    parser.add_argument("--rate-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    for name, requests in build_all(args.servegen, clients, args.rate_scale).items():
        write_csv(requests, args.out / f"{name}.csv")
        print(summary(name, requests))


if __name__ == "__main__":
    main()
