"""Limits on what producers can make the engine hold or believe (issue 9, items 2 to 4 and
"accepted counts events that are later dropped"): event time skew, tracked deployments and
their eviction with their metric series, rate-limited reject logs, per-outcome counts."""

from __future__ import annotations

import asyncio

import pytest
from engine_helpers import T0, Clock
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from autoscaler.adapters.dry_run import DryRunActuator
from autoscaler.adapters.memory_state import InMemoryStateStore, LocalLeases
from autoscaler.config.loader import parse_policies
from autoscaler.core.events import (
    Event,
    QueueLength,
    Rejected,
    RequestFinished,
    RequestStarted,
    Signal,
)
from autoscaler.daemon.config import LimitsConfig
from autoscaler.daemon.engine import Engine
from autoscaler.daemon.metrics import DaemonMetrics

POLICY = """
defaults:
  policy: concurrency
  scale_down_delay_s: 0
  min_replicas: 1
  max_replicas: 50
  parallelism: 1
  target_utilization: 1.0
  window_s: 10
  panic_window_s: 2
deployments:
  - match: "*/*"
"""
YEAR_S = 365 * 86400.0


def engine(**limits: float) -> tuple[Engine, DryRunActuator, Clock, LocalLeases]:
    clock = Clock()
    actuator = DryRunActuator()
    leases = LocalLeases()
    built = Engine(
        parse_policies([("p.yaml", POLICY)]),
        actuator,
        InMemoryStateStore(),
        DaemonMetrics(),
        clock,
        decide_unmatched=False,
        leases=leases,
        limits=LimitsConfig.model_validate(limits),
    )
    return built, actuator, clock, leases


def queue(value: float, ts: float, name: str = "prod/llm") -> QueueLength:
    return QueueLength(deployment=name, ts=ts, value=value)


# -- event time skew (item 4) ----------------------------------------------------------------

SKEWED: list[tuple[str, Event]] = [
    ("a sample one year ahead", queue(40, T0 + YEAR_S)),
    ("ts 1 (1970)", queue(36, 1.0)),
    ("a start in the year 2286", RequestStarted(deployment="prod/llm", ts=1e10, request_id="r")),
    ("just beyond the bound ahead", queue(5, T0 + 300.5)),
    ("just beyond the bound behind", queue(5, T0 - 300.5)),
    ("a signal from 1970", Signal(deployment="prod/llm", ts=1.0, name="rate", value=9)),
    ("a finish a day late", RequestFinished(deployment="prod/llm", ts=T0 - 86400, request_id="x")),
]


@pytest.mark.parametrize("event", [e for _, e in SKEWED], ids=[n for n, _ in SKEWED])
def test_events_far_from_the_receive_time_are_rejected_as_skewed(event: Event) -> None:
    eng, actuator, _, _ = engine()

    async def scenario() -> None:
        result = await eng.ingest([event], T0)
        assert (result.accepted, result.rejected, result.reasons) == (0, 1, {"skewed": 1})
        assert "max_event_skew_s" in result.errors[0]
        # The poison is gone: the next real sample is applied, not "stale" behind it.
        result = await eng.ingest([queue(3, T0)], T0)
        assert result.outcomes == {"applied": 1}
        await eng.decide_pending()

    asyncio.run(scenario())
    assert actuator.replicas["prod/llm"] == 3  # the real sample's 3, not 36 or 40
    assert eng.metrics.rejected.labels("skewed")._value.get() == 1


@pytest.mark.parametrize(
    ("offset_s", "outcome"),
    [(-299.0, "late"), (-5.0, "applied"), (0.0, "applied"), (299.0, "applied")],
)
def test_events_within_the_skew_are_applied(offset_s: float, outcome: str) -> None:
    eng, _, _, _ = engine()
    result = asyncio.run(eng.ingest([queue(2, T0 + offset_s)], T0))
    assert result.outcomes == {outcome: 1}
    assert result.accepted == 1 and result.rejected == 0


def test_the_skew_bound_is_configurable() -> None:
    eng, _, _, _ = engine(max_event_skew_s=20 * 86400)
    result = asyncio.run(eng.ingest([queue(2, T0 - 10 * 86400)], T0))
    assert result.accepted == 1


# -- accepted means applied (item 11) --------------------------------------------------------


def test_events_the_tracker_drops_are_ignored_not_accepted() -> None:
    eng, _, _, _ = engine()
    start = RequestStarted(deployment="prod/llm", ts=T0, request_id="a")
    batch: list[Event | Rejected] = [
        start,
        start,  # duplicate
        queue(4, T0),
        queue(9, T0 - 5),  # stale: older than the sample before it
        RequestStarted(deployment="prod/llm", ts=T0 - 299, request_id="late"),
        Rejected("invalid_json", "x"),
    ]
    result = asyncio.run(eng.ingest(batch, T0))
    assert result.outcomes == {"applied": 2, "duplicate": 1, "stale": 1, "late": 1}
    assert (result.accepted, result.ignored, result.rejected) == (3, 2, 1)
    metric = eng.metrics.events
    assert metric.labels("duplicate")._value.get() == 1
    assert metric.labels("stale")._value.get() == 1


# -- rate-limited reject logs (item 2) -------------------------------------------------------


def test_reject_logs_are_rate_limited_with_a_suppressed_count() -> None:
    eng, _, clock, _ = engine()
    junk: list[Event | Rejected] = [Rejected("invalid_event", f"bad {i}") for i in range(5000)]
    with capture_logs() as logs:
        result = asyncio.run(eng.ingest(junk, T0))
        clock.now = T0 + 1.5
        asyncio.run(eng.ingest(junk[:1], clock.now))
    rejected = [entry for entry in logs if entry["event"] == "event rejected"]
    assert len(rejected) == 11  # ten in the first second, then one carrying the count
    assert rejected[-1]["suppressed"] == 4990
    assert result.rejected == 5000 and len(result.errors) == 5
    assert eng.metrics.rejected.labels("invalid_event")._value.get() == 5001


# -- tracked deployments are bounded, idle ones evicted (item 3) -----------------------------


def _metrics_size(eng: Engine) -> int:
    return len(generate_latest(eng.metrics.registry))


def test_made_up_names_cannot_grow_the_tracked_set_and_idle_ones_are_evicted() -> None:
    # The issue: 20,000 made-up names cost 209 MB never given back and 6.5 MB of /metrics.
    eng, _, clock, leases = engine(max_deployments=5000)
    names = [f"junk/n{i:05d}" for i in range(20_000)]
    baseline = _metrics_size(eng)

    async def scenario() -> None:
        for start in range(0, len(names), 1000):
            batch: list[Event | Rejected] = []
            for name in names[start : start + 1000]:
                batch.append(RequestStarted(deployment=name, ts=T0, request_id="r"))
                batch.append(RequestFinished(deployment=name, ts=T0, request_id="r"))
            await eng.ingest(batch, T0)
        assert len(eng.deployments) == 5000
        assert eng.metrics.rejected.labels("too_many_deployments")._value.get() == 30_000
        assert eng.metrics.deployments._value.get() == 5000
        await eng.tick()  # decides each: series per deployment appear
        assert len(leases.held) == 5000
        full = _metrics_size(eng)
        assert full > baseline + 5000 * 100
        # A busy deployment is kept: work in flight, events still coming.
        busy = names[0]
        for step in range(1, 8):
            clock.now = T0 + step * 600
            started = RequestStarted(deployment=busy, ts=clock.now, request_id=f"b{step}")
            await eng.ingest([started], clock.now)
            await eng.tick()
        assert len(eng.deployments) == 1 and busy in eng.deployments
        assert set(leases.held) == {busy}  # the evicted ones' leases were released
        assert eng.metrics.deployments_evicted._value.get() == 4999
        assert eng.metrics.deployments._value.get() == 1
        assert _metrics_size(eng) < baseline + 2000  # one deployment's series left
        # Room again: new names are tracked, and an evicted one comes back.
        result = await eng.ingest(
            [queue(2, clock.now, names[1]), queue(1, clock.now, names[-1])], clock.now
        )
        assert result.accepted == 2 and result.rejected == 0

    asyncio.run(scenario())
    assert {names[1], names[-1]} <= eng.deployments.keys()


@pytest.mark.parametrize(
    ("case", "expected_kept"),
    [
        ("idle at the floor", False),
        ("a request still in flight", True),  # its finish may yet come (max_request_duration_s)
        ("above its floor", True),
        ("events still coming", True),
    ],
)
def test_what_counts_as_idle(case: str, expected_kept: bool) -> None:
    eng, _, clock, _ = engine(idle_ttl_s=100)
    text = POLICY.replace("min_replicas: 1", "min_replicas: 1\n  max_request_duration_s: 1000")
    eng.swap_policies(parse_policies([("p.yaml", text)]))
    name = "prod/llm"

    async def scenario() -> None:
        await eng.ingest([RequestStarted(deployment=name, ts=T0, request_id="a")], T0)
        if case != "a request still in flight":
            await eng.ingest([RequestFinished(deployment=name, ts=T0, request_id="a")], T0)
        if case == "above its floor":
            await eng.ingest([queue(6, T0)], T0)
        await eng.tick()
        if case == "above its floor":
            await eng.ingest([queue(0, T0)], T0)  # the load goes, the replicas wait
        for step in range(1, 16):
            clock.now = T0 + step * 10
            if case == "events still coming":
                await eng.ingest([queue(0, clock.now)], clock.now)
            await eng.tick()
        assert (name in eng.deployments) is expected_kept

    asyncio.run(scenario())


def test_eviction_clears_every_per_deployment_table() -> None:
    eng, _, clock, _ = engine(idle_ttl_s=10)

    async def scenario() -> None:
        await eng.ingest([queue(0, T0)], T0)
        await eng.tick()
        clock.now = T0 + 100
        assert await eng.evict_idle() == ["prod/llm"]

    asyncio.run(scenario())
    tables = {
        key: value
        for key, value in vars(eng).items()
        if isinstance(value, dict | set) and key not in ("_reject_log",)
    }
    assert tables and all("prod/llm" not in table for table in tables.values()), tables
