"""Trace readers: the Azure LLM inference CSV and the project's own JSONL events.

Both produce, per deployment, arrival times (sorted) with either token counts (service time
comes from the scenario) or recorded durations (from matching start/finish events).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from autoscaler.core.events import (
    Rejected,
    RequestFinished,
    RequestStarted,
    Signal,
    decode_event,
)

UNNAMED = ""
"""The deployment name of a trace without names: it takes the policy file's defaults."""


@dataclass
class DeploymentTrace:
    arrivals: list[float] = field(default_factory=list)
    context_tokens: list[int] = field(default_factory=list)
    generated_tokens: list[int] = field(default_factory=list)
    durations: list[float | None] = field(default_factory=list)
    """Recorded service seconds where the trace has them."""
    signals: list[tuple[float, str, float]] = field(default_factory=list)
    """Recorded ``signal`` events as ``(ts, name, value)``, in time order: replayed at their
    times, since the simulation cannot produce them itself (unlike queue length)."""


@dataclass
class Trace:
    deployments: dict[str, DeploymentTrace]
    source: str
    skipped: dict[str, int] = field(default_factory=dict)
    """Lines not used, by reason (malformed, unfinished, ...)."""

    @property
    def requests(self) -> int:
        return sum(len(d.arrivals) for d in self.deployments.values())

    @property
    def start(self) -> float:
        return min(d.arrivals[0] for d in self.deployments.values() if d.arrivals)

    @property
    def span_s(self) -> float:
        firsts = [d.arrivals[0] for d in self.deployments.values() if d.arrivals]
        lasts = [d.arrivals[-1] for d in self.deployments.values() if d.arrivals]
        return max(lasts) - min(firsts) if firsts else 0.0


def _parse_azure_ts(text: str, cache: dict[str, float]) -> float:
    # "2023-11-16 18:17:03.9799600": seven fractional digits, more than strptime's %f takes.
    whole, _, frac = text.strip().partition(".")
    # The fraction must be plain digits: ``float("0." + frac)`` alone would take "5e3" (+500 s)
    # or "1_0" and silently move the arrival instead of skipping a malformed row.
    if frac and not (frac.isascii() and frac.isdigit()):
        raise ValueError(f"not a fraction of a second: {frac!r}")
    base = cache.get(whole)
    if base is None:
        base = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
        cache[whole] = base
    return base + (float("0." + frac) if frac else 0.0)


def read_azure_csv(path: Path) -> Trace:
    """``TIMESTAMP,ContextTokens,GeneratedTokens`` (Azure LLM inference trace 2023)."""
    skipped: dict[str, int] = {}
    rows: list[tuple[float, int, int]] = []
    cache: dict[str, float] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != [
            "TIMESTAMP",
            "ContextTokens",
            "GeneratedTokens",
        ]:
            raise ValueError(
                f"{path}: not an Azure LLM trace "
                "(header must be TIMESTAMP,ContextTokens,GeneratedTokens)"
            )
        for row in reader:
            try:
                ts = _parse_azure_ts(row[0], cache)
                ctx, gen = int(row[1]), int(row[2])
                if ctx < 0 or gen < 0 or not math.isfinite(ts):
                    raise ValueError
            except (ValueError, IndexError):
                skipped["malformed"] = skipped.get("malformed", 0) + 1
                continue
            rows.append((ts, ctx, gen))
    rows.sort()
    trace = DeploymentTrace(
        arrivals=[r[0] for r in rows],
        context_tokens=[r[1] for r in rows],
        generated_tokens=[r[2] for r in rows],
        durations=[None] * len(rows),
    )
    return Trace({UNNAMED: trace}, str(path), skipped)


def read_event_jsonl(path: Path) -> Trace:
    """Recorded events, one JSON object per line. A request's arrival is its
    ``request_started``; its service time is finish - start when the finish is recorded.
    Queue and concurrency events are not replayed: the simulation produces its own. Signal
    events are replayed for deployments that have requests in the trace."""
    skipped: dict[str, int] = {}
    starts: dict[tuple[str, str], float] = {}
    finishes: dict[tuple[str, str], float] = {}
    signals: dict[str, list[tuple[float, str, float]]] = {}
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            event = decode_event(line)
            if isinstance(event, Rejected):
                skipped[event.reason] = skipped.get(event.reason, 0) + 1
            elif isinstance(event, RequestStarted):
                key = (event.deployment, event.request_id)
                if key in starts:
                    skipped["duplicate"] = skipped.get("duplicate", 0) + 1
                else:
                    starts[key] = event.ts
            elif isinstance(event, RequestFinished):
                finishes.setdefault((event.deployment, event.request_id), event.ts)
            elif isinstance(event, Signal):
                signals.setdefault(event.deployment, []).append((event.ts, event.name, event.value))
            else:
                skipped["not_replayed"] = skipped.get("not_replayed", 0) + 1
    per: dict[str, list[tuple[float, float | None]]] = {}
    for key, started in starts.items():
        finished = finishes.get(key)
        duration = None if finished is None or finished < started else finished - started
        if duration is None:
            skipped["unfinished"] = skipped.get("unfinished", 0) + 1
        per.setdefault(key[0], []).append((started, duration))
    orphans = sum(1 for key in finishes if key not in starts)
    if orphans:
        skipped["finish_without_start"] = orphans
    deployments: dict[str, DeploymentTrace] = {}
    for name, items in sorted(per.items()):
        items.sort(key=lambda item: item[0])
        deployments[name] = DeploymentTrace(
            arrivals=[a for a, _ in items],
            context_tokens=[0] * len(items),
            generated_tokens=[0] * len(items),
            durations=[d for _, d in items],
            # Stable on ts: two readings at one instant keep their order in the file.
            signals=sorted(signals.pop(name, []), key=lambda s: s[0]),
        )
    unreplayed = sum(len(items) for items in signals.values())
    if unreplayed:
        # Only deployments with requests are simulated.
        skipped["signal_without_requests"] = unreplayed
    return Trace(deployments, str(path), skipped)


def read_trace(path: Path) -> Trace:
    """By content: a CSV with the Azure header, else JSONL events."""
    with path.open("rb") as handle:
        head = handle.readline()
    if head.startswith(b"TIMESTAMP"):
        return read_azure_csv(path)
    return read_event_jsonl(path)
