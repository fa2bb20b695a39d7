"""Queue length from Redis as a signal, like KEDA's redis scalers: ``LLEN`` of a list, or for a
stream ``XLEN`` (every entry) or the pending count of a consumer group (entries delivered and
not yet acknowledged). Polled every ``interval_s``; each reading becomes a ``queue_length``
event for its deployment and goes through the same engine as every other event."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from autoscaler.adapters.polling import poll_until_stopped
from autoscaler.core.events import QueueLength
from autoscaler.daemon.config import RedisQueueConfig
from autoscaler.daemon.engine import Engine

log = structlog.get_logger("autoscaler.source.redis_queue")


class RedisQueueSource:
    def __init__(
        self,
        engine: Engine,
        queues: Sequence[RedisQueueConfig],
        default_url: str | None,
        interval_s: float,
    ) -> None:
        self.engine = engine
        self.queues = list(queues)
        self.interval_s = interval_s
        self._clients: dict[str, Redis] = {}
        self._default_url = default_url or ""
        for queue in self.queues:
            url = queue.url or default_url
            if url is None:  # DaemonConfig validation makes this unreachable
                raise ValueError(f"no Redis URL for queue {queue.key!r}")
            if url not in self._clients:
                self._clients[url] = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    async def read(self, queue: RedisQueueConfig) -> int:
        client = self._client_for(queue)
        if queue.kind == "list":
            return int(await client.llen(queue.key))
        if queue.stream_group is None:
            return int(await client.xlen(queue.key))
        summary = await client.xpending(queue.key, queue.stream_group)
        return int(summary["pending"])

    def _client_for(self, queue: RedisQueueConfig) -> Redis:
        return self._clients[queue.url or self._default_url]

    async def poll_once(self) -> None:
        now = self.engine.clock()
        events = []
        for queue in self.queues:
            try:
                length = await self.read(queue)
            except RedisError as exc:
                self.engine.metrics.redis_errors.labels("queue_length").inc()
                log.error("queue length unavailable", key=queue.key, error=str(exc))
                continue
            events.append(QueueLength(deployment=queue.deployment, ts=now, value=float(length)))
        if events:
            await self.engine.ingest(events, now)
            await self.engine.decide_pending()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await poll_until_stopped(stop, self.interval_s, self.poll_once)
        finally:
            for client in self._clients.values():
                await client.aclose()
