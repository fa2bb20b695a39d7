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
import re
import signal
import sys
import time
from collections.abc import Callable

import structlog
from aiohttp import web

from autoscaler.adapters.dry_run import DryRunActuator
from autoscaler.adapters.http_ingest import BearerToken, build_app, build_metrics_app
from autoscaler.adapters.kafka_source import KafkaSource
from autoscaler.adapters.kubernetes import KubernetesActuator
from autoscaler.adapters.memory_state import InMemoryStateStore, LocalLeases
from autoscaler.adapters.prometheus_source import PrometheusSource
from autoscaler.adapters.rate_budget import RequestBudget
from autoscaler.adapters.redis_queue import RedisQueueSource
from autoscaler.adapters.redis_state import RedisAuth, RedisStateStore
from autoscaler.config.loader import load_policies
from autoscaler.daemon.config import DaemonConfig
from autoscaler.daemon.engine import Engine
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.ports import Actuator
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
        self.metrics_port: int | None = None  # bound with http.metrics_port only
        token_file = config.http.auth_token_file
        self.token = BearerToken(token_file) if token_file is not None else None
        paths = list(config.policies) or [BUNDLED_POLICY]
        metrics = DaemonMetrics()
        kube = config.kubernetes
        self.kube = (
            KubernetesActuator(
                None,
                metrics,
                namespaces=kube.namespaces,
                kinds=kube.kinds,
                budget=RequestBudget(kube.qps, kube.burst),
                dry_run=config.dry_run,
            )
            if kube is not None
            else None
        )
        self.actuator: Actuator = self.kube if self.kube is not None else DryRunActuator()
        # The password file is read once, here (a rotated Secret takes a restart).
        redis_auth = RedisAuth.from_files(
            config.redis_username, config.redis_password_file, config.redis_ssl_ca_file
        )
        self.redis_store = (
            RedisStateStore.from_url(
                config.redis_url,
                metrics,
                lease_s=config.lease_s,
                namespace=config.redis_namespace,
                auth=redis_auth,
            )
            if config.redis_url
            else None
        )
        self.engine = Engine(
            load_policies(paths, allowed_imports=config.allowed_policy_imports),
            self.actuator,
            self.redis_store or InMemoryStateStore(metrics),
            metrics,
            clock,
            decide_unmatched=config.decides_unmatched,
            # Redis fences its writes with its own leases; without it, one daemon's alone.
            leases=self.redis_store if self.redis_store is not None else LocalLeases(),
            limits=config.limits,
        )
        self.watcher = PolicyWatcher(paths, self.engine, config.reload_interval_s)
        if self.kube is not None:
            self.kube.manages = self.engine.manages
            self.kube.on_target = self._discovered
            self.kube.on_gone = self.engine.hand_off
        kafka = config.kafka
        self.kafka = KafkaSource.from_config(self.engine, kafka) if kafka is not None else None
        self.queues = (
            RedisQueueSource(
                self.engine,
                config.redis_queues,
                config.redis_url,
                config.redis_queue_interval_s,
                redis_auth,
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
        if self.kafka is not None and self.kube is not None:
            self.kafka.on_assigned = self._discover_all

    async def _discovered(self, name: str) -> None:
        """A workload the cluster has: decide it from now on, if the policies manage it and,
        with Kafka, if its events come here (see ``KafkaSource.claim``)."""
        if self.engine.tracks(name) or not self.engine.manages(name):
            return
        if self.kafka is not None and not self.kafka.claim(name):
            return
        await self.engine.track(name)

    async def _discover_all(self) -> None:
        assert self.kube is not None
        for name in self.kube.targets():
            await self._discovered(name)

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
            actuator="kubernetes" if self.kube is not None else "dry-run",
            tick_s=self.config.tick_s,
        )
        if self.kube is not None:
            kube = self.config.kubernetes
            assert kube is not None
            await self.kube.connect(kube.kubeconfig, kube.context)
            if not self.config.policies and not self.config.decides_unmatched:
                log.warning(
                    "no policy files: no Kubernetes workload is managed "
                    "(give --policies, or set manage_unmatched: true)"
                )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._serve_http(), name="http")
                group.create_task(self._tick(), name="ticker")
                group.create_task(self.watcher.run(self.stop), name="policy-reload")
                if self.redis_store is not None:
                    group.create_task(self._renew_leases(), name="lease-renewal")
                if self.kube is not None:
                    group.create_task(self.kube.run(self.stop), name="kubernetes")
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
            if self.kube is not None:
                await self.kube.close()
        log.info("daemon stopped")

    def request_stop(self) -> None:
        if not self.stop.is_set():
            log.info("stop requested: draining")
            self.ready = False
            self.stop.set()

    async def _serve_http(self) -> None:
        http = self.config.http
        reporters = [source.problems for source in (self.kube, self.kafka) if source is not None]

        def problems() -> list[str]:
            return [problem for report in reporters for problem in report()]

        def is_ready() -> bool:
            return self.ready

        separate = http.metrics_port is not None
        app = build_app(
            self.engine,
            is_ready,
            http.max_body_bytes,
            problems,
            limits=self.config.limits,
            token=self.token,
            serve_metrics=not separate,
        )
        runners = [web.AppRunner(app)]
        if separate:
            runners.append(web.AppRunner(build_metrics_app(self.engine, is_ready, problems)))
        try:
            ports = [http.port, http.metrics_port]
            bound = []
            for runner, port in zip(runners, ports, strict=False):
                await runner.setup()
                await web.TCPSite(runner, http.host, port).start()
                # With port 0 the OS picks one: report the one actually bound.
                bound.append(int(runner.addresses[0][1]) if runner.addresses else port)
            self.port = bound[0]
            self.metrics_port = bound[1] if separate else None
            self.ready = True
            log.info(
                "http listening",
                host=http.host,
                port=self.port,
                metrics_port=self.metrics_port or self.port,
                auth=self.token is not None,
            )
            await self.stop.wait()
        finally:
            for runner in runners:
                await runner.cleanup()

    async def _renew_leases(self) -> None:
        assert self.redis_store is not None
        await self.redis_store.check()  # the health metric is right from the start
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
        if self.kube is not None:
            await self.kube.drain()


def run_daemon(config: DaemonConfig) -> int:
    """Run until stopped: 0 after a drain; 2, with one line on stderr, when a port cannot be
    bound (in use, privileged, an address not on this host), which no retry would fix."""

    async def main() -> None:
        # Built inside the loop: aiokafka's consumer binds to the running loop when created.
        await Daemon(config).run()

    try:
        asyncio.run(main())
    except ExceptionGroup as group:
        bind, rest = group.split(lambda exc: _cannot_listen(exc) is not None)
        if bind is None or rest is not None:
            raise
        print(_cannot_listen(_first_leaf(bind)), file=sys.stderr)
        return 2
    return 0


# asyncio's create_server words every bind failure so, with the address it tried.
_BIND_FAILED = re.compile(
    r"error while attempting to bind on address \('(?P<host>[^']*)', (?P<port>\d+)[^)]*\): "
    r"(?P<why>.*)"
)


def _cannot_listen(exc: BaseException) -> str | None:
    """``cannot listen on HOST:PORT: WHY`` for a failed bind, else None."""
    if not isinstance(exc, OSError):
        return None
    found = _BIND_FAILED.search(str(exc))
    if found is None:
        return None
    host = found["host"]
    where = f"[{host}]:{found['port']}" if ":" in host else f"{host}:{found['port']}"
    return f"cannot listen on {where}: {found['why']}"


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
