"""Decision state in a real Redis: a restarted daemon continues the stabilization it was in,
instead of starting it over; an unreachable Redis never stops a decision."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from engine_helpers import T0, Clock

from autoscaler.adapters.dry_run import DryRunActuator
from autoscaler.adapters.memory_state import InMemoryStateStore
from autoscaler.adapters.redis_state import RedisStateStore
from autoscaler.config.loader import parse_policies
from autoscaler.core.events import QueueLength, RequestFinished, RequestStarted
from autoscaler.daemon.engine import Engine
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.ports import Saved, StateStore
from autoscaler.daemon.state_codec import decode_state, encode_state

POLICY = """
defaults:
  min_replicas: 1
  max_replicas: 10
  parallelism: 1
  target_utilization: 1.0
  window_s: 10
  panic_window_s: 2
  scale_down_delay_s: 60
deployments:
  - match: prod/*
"""


def redis_store(url: str) -> RedisStateStore:
    store = RedisStateStore.from_url(url, DaemonMetrics())
    store.namespace = f"test:{uuid.uuid4().hex}:"  # each test its own keys
    return store


def engine(store: StateStore, actuator: DryRunActuator, clock: Clock, text: str = POLICY) -> Engine:
    return Engine(
        parse_policies([("p.yaml", text)]),
        actuator,
        store,
        DaemonMetrics(),
        clock,
        decide_unmatched=False,
        # The Redis store fences its writes with its own leases: the two go together.
        leases=store if isinstance(store, RedisStateStore) else None,
    )


async def burst_then_quiet(eng: Engine, clock: Clock) -> None:
    starts = [RequestStarted(deployment="prod/a", ts=T0, request_id=f"r{i}") for i in range(6)]
    await eng.ingest(starts, T0)
    await eng.decide_pending()
    clock.now = T0 + 1
    await eng.ingest(
        [RequestFinished(deployment="prod/a", ts=clock.now, request_id=f"r{i}") for i in range(6)],
        clock.now,
    )
    for step in range(2, 31, 2):
        clock.now = T0 + step
        await eng.tick()


async def restart_and_run_to(store_b: StateStore, actuator: DryRunActuator, until: float) -> int:
    clock = Clock()
    clock.now = T0 + 30
    restarted = engine(store_b, actuator, clock)
    # The restarted daemon learns of the deployment from its next event.
    await restarted.ingest([QueueLength(deployment="prod/a", ts=clock.now, value=0)], clock.now)
    while clock.now < until:
        clock.now += 2
        await restarted.tick()
    return actuator.replicas["prod/a"]


@pytest.mark.parametrize("persisted", [True, False], ids=["state-in-redis", "state-lost"])
def test_a_restart_continues_the_scale_down_delay(
    services: dict[str, str], persisted: bool
) -> None:
    async def scenario() -> int:
        actuator = DryRunActuator()  # stands for the cluster: it outlives the daemon
        store_a = redis_store(services["REDIS_URL"])
        clock = Clock()
        first = engine(store_a, actuator, clock)
        await burst_then_quiet(first, clock)
        assert actuator.replicas["prod/a"] == 6  # held by the 60 s scale-down delay
        await first.hand_off_all()  # a clean stop lets go of the lease
        await store_a.close()
        store_b: StateStore = InMemoryStateStore()
        if persisted:  # a new process: a new lease owner on the same keys
            store_b = redis_store(services["REDIS_URL"])
            store_b.namespace = store_a.namespace
        replicas = await restart_and_run_to(store_b, actuator, T0 + 80)
        if isinstance(store_b, RedisStateStore):
            await store_b.close()
        return replicas

    replicas = asyncio.run(scenario())
    # The load went at T0+1; recommendations fell to 1 at about T0+12, so the 60 s delay ends
    # at about T0+72. A daemon that lost its history re-seeds it at T0+30 and holds to T0+90.
    assert replicas == (1 if persisted else 6)


@pytest.mark.parametrize("policy", ["concurrency", "queue", "hpa", "kpa"])
def test_every_policy_state_round_trips_through_redis(
    services: dict[str, str], policy: str
) -> None:
    async def scenario() -> None:
        store = redis_store(services["REDIS_URL"])
        clock = Clock()
        eng = engine(
            store,
            DryRunActuator(),
            clock,
            POLICY.replace("match: prod/*", f"match: prod/*\n    policy: {policy}"),
        )
        await burst_then_quiet(eng, clock)
        auto = eng.deployments["prod/a"]
        loaded = await store.load("prod/a", policy, auto.decider.policy.initial_state())
        await store.close()
        assert loaded is not None
        assert loaded.state == auto.state
        assert loaded.replicas == auto.last_decision.replicas if auto.last_decision else False
        assert loaded.fence >= 1  # written under a lease

    asyncio.run(scenario())


def test_a_policy_change_keeps_the_guardrails_history_only() -> None:
    clock = Clock()
    eng = engine(InMemoryStateStore(), DryRunActuator(), clock)
    asyncio.run(burst_then_quiet(eng, clock))
    state = eng.deployments["prod/a"].state
    raw = encode_state("concurrency", Saved(state, 3, 7))
    fresh = object()
    decoded = decode_state(raw, "hpa", fresh)
    assert decoded is not None
    assert decoded.state.guard == state.guard and decoded.state.policy is fresh
    assert (decoded.replicas, decoded.fence) == (3, 7)
    assert decode_state(b"not json", "concurrency", fresh) is None


def test_unreachable_redis_counts_errors_and_decides_anyway() -> None:
    async def scenario() -> None:
        store = RedisStateStore.from_url("redis://127.0.0.1:1/0", DaemonMetrics())
        actuator = DryRunActuator()
        eng = engine(store, actuator, Clock())
        starts = [RequestStarted(deployment="prod/a", ts=T0, request_id=f"r{i}") for i in range(3)]
        await eng.ingest(starts, T0)
        await eng.decide_pending()
        assert actuator.replicas["prod/a"] == 3
        # The lease could not be taken (so state was not loaded) and the save failed.
        assert store.metrics.redis_errors.labels("lease")._value.get() == 1
        assert store.metrics.redis_errors.labels("save")._value.get() == 1
        await store.close()

    asyncio.run(scenario())


def test_unreachable_redis_refuses_scale_down_but_allows_scale_up() -> None:
    async def scenario() -> None:
        store = RedisStateStore.from_url("redis://127.0.0.1:1/0", DaemonMetrics())
        actuator = DryRunActuator()
        clock = Clock()
        eng = engine(
            store,
            actuator,
            clock,
            POLICY.replace("scale_down_delay_s: 60", "scale_down_delay_s: 0"),
        )
        await burst_then_quiet(eng, clock)  # up to 6, then 30 s of no load
        assert not store.healthy
        assert store.metrics.state_store_up._value.get() == 0
        # Without Redis the delays cannot be proven to a successor: no scale-down happened.
        assert actuator.replicas["prod/a"] == 6
        assert eng.metrics.scale_downs_refused.labels("prod/a")._value.get() >= 1
        last = eng.deployments["prod/a"].last_decision
        assert last is not None and last.recommended < 6
        await store.close()

    asyncio.run(scenario())


def test_with_redis_back_the_scale_down_proceeds(services: dict[str, str]) -> None:
    async def scenario() -> None:
        store = redis_store(services["REDIS_URL"])
        actuator = DryRunActuator()
        clock = Clock()
        eng = engine(
            store,
            actuator,
            clock,
            POLICY.replace("scale_down_delay_s: 60", "scale_down_delay_s: 0"),
        )
        await burst_then_quiet(eng, clock)
        assert store.healthy and store.metrics.state_store_up._value.get() == 1
        assert actuator.replicas["prod/a"] == 1
        assert eng.metrics.scale_downs_refused.labels("prod/a")._value.get() == 0
        await store.close()

    asyncio.run(scenario())
