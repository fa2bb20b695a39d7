"""The daemon engine on a hand-driven clock: events in, decisions through the real core."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from engine_helpers import T0, Clock

from autoscaler.adapters.dry_run import DryRunActuator
from autoscaler.adapters.memory_state import InMemoryStateStore, LocalLeases
from autoscaler.config.loader import parse_policies
from autoscaler.core.decider import Decision
from autoscaler.core.events import QueueLength, RequestFinished, RequestStarted, decode_events
from autoscaler.daemon.engine import Engine
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.ports import EventSink

POLICY = """
defaults:
  policy: concurrency
  scale_down_delay_s: 0
  min_replicas: 1
  max_replicas: 10
  parallelism: 1
  target_utilization: 1.0
  window_s: 10
  panic_window_s: 2
deployments:
  - match: prod/*
    max_replicas: 8
"""


def engine(
    *,
    unmatched: bool = False,
    text: str = POLICY,
    actuator: DryRunActuator | None = None,
    metrics: DaemonMetrics | None = None,
) -> tuple[Engine, DryRunActuator, Clock]:
    clock = Clock()
    actuator = actuator if actuator is not None else DryRunActuator()
    built = Engine(
        parse_policies([("p.yaml", text)]),
        actuator,
        InMemoryStateStore(),
        metrics if metrics is not None else DaemonMetrics(),
        clock,
        decide_unmatched=unmatched,
        leases=LocalLeases(),
    )
    return built, actuator, clock


def starts(deployment: str, count: int, ts: float) -> list[RequestStarted]:
    return [RequestStarted(deployment=deployment, ts=ts, request_id=f"r{i}") for i in range(count)]


def test_a_burst_is_decided_at_once_not_at_the_next_tick() -> None:
    eng, actuator, _ = engine()

    async def scenario() -> None:
        await eng.ingest(starts("prod/llm", 6, T0), T0)
        decisions = await eng.decide_pending()
        assert [(name, d.replicas) for name, d in decisions] == [("prod/llm", 6)]

    asyncio.run(scenario())
    assert actuator.applied == [("prod/llm", 1, 6)]
    assert actuator.replicas["prod/llm"] == 6


def test_deliver_is_ingest_then_the_decisions_it_triggered() -> None:
    eng, actuator, _ = engine()

    async def scenario() -> None:
        sink: EventSink = eng  # the front door the sources see
        delivery = await sink.deliver(starts("prod/llm", 6, T0), T0)
        assert delivery.result.accepted == 6
        assert [(name, d.replicas) for name, d in delivery.decisions] == [("prod/llm", 6)]
        assert sink.tracks("prod/llm") and not sink.tracks("prod/other")
        assert sink.in_flight("prod/llm", "r0")
        # nothing new: nothing pending, no decision
        quiet = await sink.deliver([], T0 + 1)
        assert quiet.decisions == []

    asyncio.run(scenario())
    assert actuator.replicas["prod/llm"] == 6


def test_one_record_per_deployment_dropped_whole_on_hand_off() -> None:
    eng, _, _ = engine()

    async def scenario() -> None:
        await eng.deliver(starts("prod/llm", 3, T0), T0)
        record = eng.managed["prod/llm"]
        assert record.auto is eng.deployments["prod/llm"]
        assert record.seen == T0
        assert record.last_saved is not None  # the decision's state, as persisted
        await eng.hand_off("prod/llm")
        assert "prod/llm" not in eng.managed and not eng.tracks("prod/llm")
        # back: a new record, nothing of the old one's bookkeeping carried over
        await eng.ingest(starts("prod/llm", 1, T0 + 5), T0 + 5)
        again = eng.managed["prod/llm"]
        assert again is not record
        assert again.last_saved is None and again.seen == T0 + 5

    asyncio.run(scenario())


def test_bounds_from_the_matching_rule_apply() -> None:
    eng, actuator, _ = engine()
    asyncio.run(eng.ingest(starts("prod/llm", 20, T0), T0))
    asyncio.run(eng.decide_pending())
    assert actuator.replicas["prod/llm"] == 8  # the rule's max_replicas, not the default 10


def test_unmatched_deployments_are_left_alone_unless_asked() -> None:
    eng, actuator, _ = engine()
    result = asyncio.run(eng.ingest(starts("other/app", 3, T0), T0))
    assert (result.accepted, result.rejected, result.unmanaged) == (0, 0, 3)
    assert not eng.deployments and not actuator.applied

    eng, actuator, _ = engine(unmatched=True)
    asyncio.run(eng.ingest(starts("other/app", 3, T0), T0))
    asyncio.run(eng.decide_pending())
    assert actuator.replicas["other/app"] == 3


def test_malformed_messages_are_counted_and_the_good_ones_kept() -> None:
    eng, _, _ = engine()
    items = decode_events(
        b'[{"type": "request_started", "deployment": "prod/llm", "ts": 1800000000,'
        b' "request_id": "a"},'
        b' {"type": "request_started", "deployment": "BAD", "ts": 1, "request_id": "b"},'
        b" 17]"
    )
    result = asyncio.run(eng.ingest(items, T0))
    assert (result.accepted, result.rejected) == (1, 2)
    assert eng.metrics.rejected.labels("invalid_event")._value.get() == 2
    assert eng.deployments["prod/llm"].tracker.in_flight == 1


def test_ticks_scale_down_after_the_load_goes_and_the_window_fills() -> None:
    eng, actuator, clock = engine()

    async def scenario() -> None:
        await eng.ingest(starts("prod/llm", 4, T0), T0)
        await eng.decide_pending()
        finishes = [
            RequestFinished(deployment="prod/llm", ts=T0 + 1, request_id=f"r{i}") for i in range(4)
        ]
        clock.now = T0 + 1
        await eng.ingest(finishes, clock.now)
        # Warm-up: no scale-down before a full 10 s window of history.
        clock.now = T0 + 5
        await eng.tick()
        assert actuator.replicas["prod/llm"] == 4
        for step in range(6, 40, 2):
            clock.now = T0 + step
            await eng.tick()

    asyncio.run(scenario())
    assert actuator.replicas["prod/llm"] == 1  # the floor; the window has emptied
    assert actuator.applied[0] == ("prod/llm", 1, 4)
    assert actuator.applied[-1][2] == 1


def test_queue_length_counts_as_load() -> None:
    eng, actuator, _ = engine()
    asyncio.run(eng.ingest([QueueLength(deployment="prod/llm", ts=T0, value=5)], T0))
    asyncio.run(eng.decide_pending())
    assert actuator.replicas["prod/llm"] == 5


def test_swapping_policies_keeps_state_and_applies_new_bounds() -> None:
    eng, actuator, clock = engine()
    asyncio.run(eng.ingest(starts("prod/llm", 9, T0), T0))
    asyncio.run(eng.decide_pending())
    assert actuator.replicas["prod/llm"] == 8
    tracker = eng.deployments["prod/llm"].tracker
    eng.swap_policies(
        parse_policies([("p.yaml", POLICY.replace("max_replicas: 8", "max_replicas: 3"))])
    )
    assert eng.deployments["prod/llm"].tracker is tracker  # same windows: history kept
    clock.now = T0 + 1
    asyncio.run(eng.tick())
    assert actuator.replicas["prod/llm"] == 3


class _SlowActuator(DryRunActuator):
    """The dry-run actuator with a write that takes a while, as a real API call does."""

    async def apply(self, deployment: str, decision: Decision, fence: int) -> None:
        await asyncio.sleep(0.05)
        await super().apply(deployment, decision, fence)


def test_a_tick_and_an_event_decision_never_act_twice_at_once() -> None:
    actuator = _SlowActuator()
    eng, _, _ = engine(actuator=actuator)

    async def scenario() -> None:
        await eng.ingest(starts("prod/llm", 6, T0), T0)
        # The event-driven decision and a tick meet while the first write is under way.
        first, second = await asyncio.gather(eng.decide("prod/llm"), eng.decide("prod/llm"))
        assert first is not None and first.replicas == 6
        assert second is None
        # The one held back is made afterwards, from the first one's outcome: no change.
        later = await eng.decide_pending()
        assert [(name, d.replicas, d.changed) for name, d in later] == [("prod/llm", 6, False)]

    asyncio.run(scenario())
    assert actuator.applied == [("prod/llm", 1, 6)]


class _BrokenForOne(DryRunActuator):
    """The dry-run actuator failing for one target, as an API error nobody foresaw would."""

    async def apply(self, deployment: str, decision: Decision, fence: int) -> None:
        if deployment == "prod/broken":
            raise RuntimeError("the write went wrong")
        await super().apply(deployment, decision, fence)


def test_a_decision_that_raises_costs_that_deployment_one_tick_not_the_daemon() -> None:
    actuator, metrics = _BrokenForOne(), DaemonMetrics()
    eng, _, _ = engine(actuator=actuator, metrics=metrics)

    async def scenario() -> None:
        await eng.ingest(starts("prod/broken", 3, T0) + starts("prod/llm", 4, T0), T0)
        await eng.tick()
        await eng.tick()

    asyncio.run(scenario())
    assert ("prod/llm", 1, 4) in actuator.applied
    assert metrics.registry.get_sample_value("autoscaler_decision_errors_total") == 2.0


def test_a_deployment_at_rest_is_left_alone_until_its_recheck_or_an_event() -> None:
    """Decisions on time, not sweeps: once a deployment has had no work for longer than its
    windows and arrival history reach, and its decision kept the count with no guardrail
    holding anything, ticks skip it for 1 to 2 x ``IDLE_RECHECK_S`` (spread by name); an
    event ends that at once."""
    eng, actuator, clock = engine()
    decided: list[float] = []
    real_decide = eng.decide

    async def counting(name: str) -> Any:
        decided.append(clock.now - T0)
        return await real_decide(name)

    eng.decide = counting  # type: ignore[method-assign]

    async def scenario() -> None:
        await eng.ingest(starts("prod/llm", 1, T0), T0)
        await eng.ingest(
            [RequestFinished(deployment="prod/llm", ts=T0 + 1, request_id="r0")], T0 + 1
        )
        # Idle from t=1: at rest from t=601 (the 600 s arrival history is then all zeros).
        for at in range(2, 700, 2):
            clock.now = T0 + at
            await eng.tick()
        assert actuator.replicas["prod/llm"] == 1
        # An event ends the rest: the very next tick decides it.
        clock.now = T0 + 701
        await eng.ingest([QueueLength(deployment="prod/llm", ts=clock.now, value=0)], clock.now)
        clock.now = T0 + 702
        await eng.tick()

    asyncio.run(scenario())
    # Up to the rest every tick decided it; then only the rechecks did, 1 to 2 x apart.
    assert [t for t in decided if t <= 602] == list(range(2, 603, 2))
    rests = [t for t in decided if 602 <= t < 700]
    gaps = [b - a for a, b in itertools.pairwise(rests)]
    recheck = eng.IDLE_RECHECK_S
    assert len(rests) >= 4 and all(recheck <= gap <= 2 * recheck + 2 for gap in gaps), rests
    assert decided[-1] == 702


def test_a_recheck_superseded_by_a_later_rest_is_not_kept() -> None:
    """Rest, an event, rest again: the first rest's recheck time is stale by then and wakes
    nothing (the heap keeps it until it comes up, and skips it then)."""
    eng, _, clock = engine()
    decided: list[float] = []
    real_decide = eng.decide

    async def counting(name: str) -> Any:
        decided.append(clock.now - T0)
        return await real_decide(name)

    eng.decide = counting  # type: ignore[method-assign]

    async def scenario() -> None:
        await eng.ingest(starts("prod/llm", 1, T0), T0)
        await eng.ingest(
            [RequestFinished(deployment="prod/llm", ts=T0 + 1, request_id="r0")], T0 + 1
        )
        for at in range(2, 604, 2):  # at rest from t=602, first recheck 10 to 20 s later
            clock.now = T0 + at
            await eng.tick()
        first_due = eng.managed["prod/llm"].due
        assert first_due > clock.now
        # A reading that changes nothing: woken, decided at the next tick, at rest again.
        await eng.ingest([QueueLength(deployment="prod/llm", ts=clock.now, value=0)], clock.now)
        clock.now = T0 + 605
        await eng.tick()
        second_due = eng.managed["prod/llm"].due
        assert second_due > first_due
        decided.clear()
        clock.now = first_due + 0.5  # past the stale entry, before the live one
        await eng.tick()
        assert decided == []
        clock.now = second_due + 0.5
        await eng.tick()
        assert decided == [second_due + 0.5 - T0]

    asyncio.run(scenario())
