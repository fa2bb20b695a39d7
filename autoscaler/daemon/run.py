"""The daemon's supervisor: named tasks in one ``asyncio.TaskGroup``.

The first task to fail cancels the others and the daemon exits non-zero with that error.
SIGTERM or SIGINT drains instead: the HTTP endpoint stops taking events (readiness goes
503 first), one last decision pass runs so nothing received is left undecided, state is saved,
and the daemon exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from collections.abc import Callable

import structlog
from aiohttp import web

from autoscaler.adapters.dry_run import DryRunActuator
from autoscaler.adapters.http_ingest import build_app
from autoscaler.adapters.kafka_source import KafkaSource
from autoscaler.adapters.memory_state import InMemoryStateStore
from autoscaler.adapters.prometheus_source import PrometheusSource
from autoscaler.adapters.redis_queue import RedisQueueSource
from autoscaler.adapters.redis_state import RedisStateStore
from autoscaler.config.loader import load_policies
from autoscaler.daemon.config import DaemonConfig
from autoscaler.daemon.engine import Engine
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.reload import PolicyWatcher
from autoscaler.paths import BUNDLED_POLICY

log = structlog.get_logger("autoscaler.daemon")


class Daemon:
    def __init__(self, config: DaemonConfig, clock: Callable[[], float] = time.time) -> None:
        # The loop clock is wall time: event timestamps from producers are unix seconds.
        self.config = config
        self.stop = asyncio.Event()
        self.ready = False
        self.port: int | None = None
        paths = list(config.policies) or [BUNDLED_POLICY]
        self.actuator = DryRunActuator()
        metrics = DaemonMetrics()
        self.redis_store = (
            RedisStateStore.from_url(
                config.redis_url,
                metrics,
                lease_s=config.lease_s,
                namespace=config.redis_namespace,
            )
            if config.redis_url
            else None
        )
        self.engine = Engine(
            load_policies(paths),
            self.actuator,
            self.redis_store or InMemoryStateStore(),
            metrics,
            clock,
            decide_unmatched=config.decides_unmatched,
            leases=self.redis_store,
        )
        self.watcher = PolicyWatcher(paths, self.engine, config.reload_interval_s)
        kafka = config.kafka
        self.kafka = (
            KafkaSource(
                self.engine,
                kafka.bootstrap_servers,
                list(kafka.topics),
                kafka.group_id,
                max_batch=kafka.max_batch,
                dead_letter_topic=kafka.dead_letter_topic,
            )
            if kafka is not None
            else None
        )
        self.queues = (
            RedisQueueSource(
                self.engine, config.redis_queues, config.redis_url, config.redis_queue_interval_s
            )
            if config.redis_queues
            else None
        )
        self.prometheus = (
            PrometheusSource(
                self.engine,
                config.prometheus_queries,
                config.prometheus_url,
                config.prometheus_interval_s,
            )
            if config.prometheus_queries
            else None
        )

    async def run(self) -> None:
        # The start-up heap (modules, policies, clients) never becomes garbage: freeze it out
        # of every collection. Per-event allocations are short-lived, so the young generation
        # is collected less often; in the benchmark collections were a quarter of ingest time
        # and full ones the longest pauses.
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            # Not possible off the main thread (a daemon run inside a test): then the owner
            # stops it with request_stop().
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        log.info(
            "daemon starting",
            policies=[str(p) for p in self.config.policies] or ["<embedded>"],
            dry_run=self.config.dry_run,
            tick_s=self.config.tick_s,
        )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._serve_http(), name="http")
                group.create_task(self._tick(), name="ticker")
                group.create_task(self.watcher.run(self.stop), name="policy-reload")
                if self.redis_store is not None:
                    group.create_task(self._renew_leases(), name="lease-renewal")
                if self.kafka is not None:
                    group.create_task(self.kafka.run(self.stop), name="kafka-source")
                if self.queues is not None:
                    group.create_task(self.queues.run(self.stop), name="redis-queue-source")
                if self.prometheus is not None:
                    group.create_task(self.prometheus.run(self.stop), name="prometheus-source")
        finally:
            if self.redis_store is not None:
                # Decisions are saved; letting the leases go lets a successor act at once.
                await self.engine.hand_off_all()
                await self.redis_store.close()
        log.info("daemon stopped")

    def request_stop(self) -> None:
        if not self.stop.is_set():
            log.info("stop requested: draining")
            self.ready = False
            self.stop.set()

    async def _serve_http(self) -> None:
        http = self.config.http
        runner = web.AppRunner(build_app(self.engine, lambda: self.ready, http.max_body_bytes))
        await runner.setup()
        site = web.TCPSite(runner, http.host, http.port)
        await site.start()
        # With port 0 the OS picks one: report the one actually bound.
        self.port = int(runner.addresses[0][1]) if runner.addresses else http.port
        self.ready = True
        log.info("http listening", host=http.host, port=self.port)
        try:
            await self.stop.wait()
        finally:
            await runner.cleanup()

    async def _renew_leases(self) -> None:
        assert self.redis_store is not None
        while not self.stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=self.config.lease_s / 3)
            await self.redis_store.renew()

    async def _tick(self) -> None:
        while not self.stop.is_set():
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=self.config.tick_s)
            except TimeoutError:
                await self.engine.tick()
        # Drain: whatever arrived before the stop gets its decision.
        await self.engine.decide_pending()
        await self.engine.tick()


def run_daemon(config: DaemonConfig) -> int:
    async def main() -> None:
        # Built inside the loop: aiokafka's consumer binds to the running loop when created.
        await Daemon(config).run()

    asyncio.run(main())
    return 0
