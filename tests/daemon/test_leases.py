"""Deployment leases with fencing tokens, in a real Redis: one daemon acts on a deployment at
a time, a successor continues its state, and a daemon that lost its lease cannot write."""

from __future__ import annotations

import asyncio
import time
import uuid

from engine_helpers import T0, Clock

from autoscaler.adapters.dry_run import DryRunActuator
from autoscaler.adapters.redis_state import RedisStateStore
from autoscaler.config.loader import parse_policies
from autoscaler.core.events import RequestFinished, RequestStarted
from autoscaler.daemon.engine import Engine
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.ports import Saved, SaveResult

POLICY = """
defaults:
  policy: concurrency
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


def daemon(
    url: str, namespace: str, actuator: DryRunActuator, clock: Clock, lease_s: float = 15.0
) -> tuple[Engine, RedisStateStore]:
    metrics = DaemonMetrics()
    store = RedisStateStore.from_url(url, metrics, lease_s=lease_s)
    store.namespace = namespace
    eng = Engine(
        parse_policies([("p.yaml", POLICY)]),
        actuator,
        store,
        metrics,
        clock,
        decide_unmatched=False,
        leases=store,
    )
    return eng, store


def burst(n: int, ts: float, first: int = 0) -> list[RequestStarted]:
    return [
        RequestStarted(deployment="prod/a", ts=ts, request_id=f"r{i}")
        for i in range(first, first + n)
    ]


def test_only_the_lease_holder_decides_and_a_successor_continues(
    services: dict[str, str],
) -> None:
    async def scenario() -> None:
        cluster = DryRunActuator()  # both daemons act on the same deployments
        ns = f"test:{uuid.uuid4().hex}:"
        clock = Clock()
        a, store_a = daemon(services["REDIS_URL"], ns, cluster, clock)
        b, store_b = daemon(services["REDIS_URL"], ns, cluster, clock)
        # Both hear the same burst (a rebalance in flight: the old and new owner overlap).
        for eng in (a, b):
            await eng.ingest(burst(6, T0), T0)
        assert await a.decide("prod/a") is not None
        assert cluster.replicas["prod/a"] == 6
        assert await b.decide("prod/a") is None  # leased to a
        assert b.metrics.lease_denied._value.get() == 1
        assert cluster.applied == [("prod/a", 1, 6)]

        # The load goes; a holds 6 replicas through the 60 s scale-down delay, then stops
        # cleanly and lets go of the lease.
        finished = [
            RequestFinished(deployment="prod/a", ts=T0 + 1, request_id=f"r{i}") for i in range(6)
        ]
        for eng in (a, b):
            await eng.ingest(finished, T0 + 1)
        for step in range(2, 31, 2):
            clock.now = T0 + step
            await a.tick()
            await b.tick()
        assert cluster.replicas["prod/a"] == 6
        await a.hand_off_all()

        # b takes over at once (no waiting for expiry) with a larger fence, loads a's
        # stabilization history and scales down when a's delay ends, not 60 s after taking
        # over; nothing is applied twice.
        clock.now = T0 + 32
        assert await b.decide("prod/a") is not None
        assert store_b.valid("prod/a") == 2
        while clock.now < T0 + 80:
            clock.now += 2
            await b.tick()
        assert cluster.replicas["prod/a"] == 1
        assert cluster.applied == [("prod/a", 1, 6), ("prod/a", 6, 1)]
        await store_a.close()
        await store_b.close()

    asyncio.run(scenario())


def test_a_daemon_whose_lease_was_taken_cannot_write_or_act(services: dict[str, str]) -> None:
    async def scenario() -> None:
        cluster = DryRunActuator()
        ns = f"test:{uuid.uuid4().hex}:"
        clock = Clock()
        a, store_a = daemon(services["REDIS_URL"], ns, cluster, clock)
        _, store_b = daemon(services["REDIS_URL"], ns, cluster, clock)
        await a.ingest(burst(3, T0), T0)
        await a.decide("prod/a")
        assert cluster.replicas["prod/a"] == 3
        # a stalls; by Redis's clock its lease ran out (a's own clock still says valid),
        # and b takes the deployment with the next fence.
        await store_a.redis.delete(f"{ns}lease:prod/a")
        lease = await store_b.acquire("prod/a")
        assert (lease.status, lease.fence) == ("held", 2)
        assert store_a.valid("prod/a") == 1
        # a wakes with more load: its scale-up is dropped, not applied, and not written.
        await a.ingest(burst(8, T0 + 1, first=3), T0 + 1)
        clock.now = T0 + 3  # the 2 s panic window now sees all 11 in flight
        assert await a.decide("prod/a") is None
        dropped = a.deployments["prod/a"].last_decision
        assert dropped is not None and dropped.replicas > 3  # a scale-up, refused
        assert cluster.replicas["prod/a"] == 3
        assert a.metrics.leases_lost._value.get() == 1
        assert store_a.valid("prod/a") is None
        saved = await store_b.load("prod/a", "concurrency", None)
        assert saved is not None and saved.fence == 1  # still a's last accepted write
        # The store refuses a stale fence outright, whoever asks.
        stale = Saved(saved.state, 9, 1)
        assert await store_a.save("prod/a", "concurrency", stale) is SaveResult.FENCED
        assert await store_b.save("prod/a", "concurrency", Saved(saved.state, 3, 2)) is (
            SaveResult.SAVED
        )
        await store_a.close()
        await store_b.close()

    asyncio.run(scenario())


def test_renewal_keeps_a_lease_and_notices_when_it_is_gone(services: dict[str, str]) -> None:
    async def scenario() -> None:
        ns = f"test:{uuid.uuid4().hex}:"
        clock = Clock()
        _, store_a = daemon(services["REDIS_URL"], ns, DryRunActuator(), clock, lease_s=1.0)
        _, store_b = daemon(services["REDIS_URL"], ns, DryRunActuator(), clock, lease_s=1.0)
        assert (await store_a.acquire("prod/a")).status == "held"
        deadline = time.monotonic() + 2.0  # twice the lease
        while time.monotonic() < deadline:
            await store_a.renew()
            await asyncio.sleep(0.25)
        assert store_a.valid("prod/a") == 1
        denied = await store_b.acquire("prod/a")
        assert (denied.status, denied.holder) == ("elsewhere", store_a.owner)

        # Without renewal the lease ends by a's own clock first (it trusts 80% of it), and
        # then in Redis, after which b gets it.
        await asyncio.sleep(0.85)
        assert store_a.valid("prod/a") is None
        await asyncio.sleep(0.3)
        taken = await store_b.acquire("prod/a")
        assert (taken.status, taken.fence) == ("held", 2)
        await store_a.renew()  # finds it gone
        assert store_a.metrics.leases_lost._value.get() == 1
        assert (await store_a.acquire("prod/a")).status == "elsewhere"
        await store_a.close()
        await store_b.close()

    asyncio.run(scenario())


def test_an_unreachable_lease_store_allows_only_scale_ups() -> None:
    async def scenario() -> None:
        cluster = DryRunActuator()
        clock = Clock()
        eng, store = daemon("redis://127.0.0.1:1/0", "x:", cluster, clock)
        await eng.ingest(burst(4, T0), T0)
        assert await eng.decide("prod/a") is not None
        assert cluster.replicas["prod/a"] == 4  # fence 0: scale-up allowed
        assert store.metrics.redis_errors.labels("lease")._value.get() >= 1
        await store.close()

    asyncio.run(scenario())
