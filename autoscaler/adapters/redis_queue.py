"""Queue length from Redis as a signal, like KEDA's redis scalers: ``LLEN`` of a list, or for a
stream ``XLEN`` (every entry) or the pending count of a consumer group (entries delivered and
not yet acknowledged). Polled every ``interval_s``; each reading becomes a ``queue_length``
event for its deployment and goes through the same engine as every other event.

A queue without a ``url`` of its own is read with ``redis_url`` and its credentials; one with
its own ``url`` uses only what the queue names (the URL's credentials, or its ``username`` and
``password_file``), so that the state store's password is never sent to another server."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from autoscaler.adapters.polling import poll_until_stopped
from autoscaler.adapters.redis_state import RedisAuth, describe_error, redis_client
from autoscaler.core.events import QueueLength
from autoscaler.daemon.config import RedisQueueConfig
from autoscaler.daemon.ports import EventSink

log = structlog.get_logger("autoscaler.source.redis_queue")


class RedisQueueSource:
    def __init__(
        self,
        sink: EventSink,
        queues: Sequence[RedisQueueConfig],
        default_url: str | None,
        interval_s: float,
        default_auth: RedisAuth | None = None,
    ) -> None:
        self.sink = sink
        self.queues = list(queues)
        self.interval_s = interval_s
        # One client per Redis and credentials: queues on the same server share connections.
        self._clients: dict[tuple[str, str | None, str | None], Redis] = {}
        self._client_of: dict[int, Redis] = {}  # index into queues -> its client
        for index, queue in enumerate(self.queues):
            if queue.url is not None:
                url = queue.url
                auth = RedisAuth.from_files(queue.username, queue.password_file, None)
                if default_auth is not None:  # a CA is no secret: it verifies any server
                    auth = RedisAuth(auth.username, auth.password, default_auth.ssl_ca_file)
            elif default_url is not None:
                url, auth = default_url, default_auth or RedisAuth()
            else:  # DaemonConfig validation makes this unreachable
                raise ValueError(f"no Redis URL for queue {queue.key!r}")
            key = (url, auth.username, auth.password)
            if key not in self._clients:
                self._clients[key] = redis_client(url, auth)
            self._client_of[index] = self._clients[key]

    async def read(self, index: int) -> int:
        queue = self.queues[index]
        client = self._client_of[index]
        if queue.kind == "list":
            return int(await client.llen(queue.key))
        if queue.stream_group is None:
            return int(await client.xlen(queue.key))
        summary = await client.xpending(queue.key, queue.stream_group)
        return int(summary["pending"])

    async def poll_once(self) -> None:
        now = self.sink.clock()
        events = []
        for index, queue in enumerate(self.queues):
            try:
                length = await self.read(index)
            except RedisError as exc:
                self.sink.metrics.redis_errors.labels("queue_length").inc()
                log.error("queue length unavailable", key=queue.key, error=describe_error(exc))
                continue
            events.append(QueueLength(deployment=queue.deployment, ts=now, value=float(length)))
        if events:
            await self.sink.deliver(events, now)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await poll_until_stopped(stop, self.interval_s, self.poll_once)
        finally:
            for client in self._clients.values():
                await client.aclose()
