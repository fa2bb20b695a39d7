"""Decision state in Redis (redis.asyncio), written after every decision so that a restarted
or newly assigned daemon continues where the last one stopped: same stabilization history,
same policy state, no second scale action and no flapping.

A Redis error never stops the daemon: it is counted and logged, and the decision stands.
"""

from __future__ import annotations

from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from autoscaler.core.decider import DecisionState
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.state_codec import decode_state, encode_state

log = structlog.get_logger("autoscaler.state.redis")


class RedisStateStore:
    def __init__(
        self, redis: Redis, metrics: DaemonMetrics, prefix: str = "autoscaler:state:"
    ) -> None:
        self.redis = redis
        self.metrics = metrics
        self.prefix = prefix
        self.healthy = True
        """False since the last operation failed, until one succeeds again."""
        metrics.state_store_up.set(1)

    @classmethod
    def from_url(cls, url: str, metrics: DaemonMetrics) -> RedisStateStore:
        return cls(Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2), metrics)

    async def load(
        self, deployment: str, policy_name: str, initial_policy_state: Any
    ) -> DecisionState | None:
        try:
            raw = await self.redis.get(self.prefix + deployment)
        except RedisError as exc:
            self._failed("load", deployment, exc)
            return None
        self._ok()
        if raw is None:
            return None
        data = raw.encode() if isinstance(raw, str) else raw  # bytes unless decode_responses
        state = decode_state(data, policy_name, initial_policy_state)
        if state is None:
            log.warning("stored state unreadable; starting fresh", deployment=deployment)
        return state

    async def save(self, deployment: str, policy_name: str, state: DecisionState) -> None:
        try:
            await self.redis.set(self.prefix + deployment, encode_state(policy_name, state))
        except RedisError as exc:
            self._failed("save", deployment, exc)
            return
        self._ok()

    def _ok(self) -> None:
        if not self.healthy:
            log.info("redis reachable again")
        self.healthy = True
        self.metrics.state_store_up.set(1)

    def _failed(self, operation: str, deployment: str, exc: Exception) -> None:
        self.healthy = False
        self.metrics.state_store_up.set(0)
        self.metrics.redis_errors.labels(operation).inc()
        log.error("redis unavailable", operation=operation, deployment=deployment, error=str(exc))

    async def close(self) -> None:
        await self.redis.aclose()
