"""Decision state and deployment leases in Redis (redis.asyncio).

State is written after every decision so that a restarted or newly assigned daemon continues
where the last one stopped: same stabilization history, same policy state, same replicas, no
second scale action and no flapping.

A lease per deployment (``SET ... PX`` holding ``owner|fence``) makes one daemon its owner at
a time. The fence comes from a per-deployment counter that only grows, so a daemon that
stalled past its lease and wakes up carries a smaller fence than the new owner: its state
writes are refused by Redis itself (a Lua compare-and-set), and the actuator is handed the
fence to refuse it too. A daemon only acts while its lease is valid by its *own* monotonic
clock, counted from before the request that took or renewed it, with a margin; it never
relies on Redis's clock agreeing with its own.

A Redis error never stops the daemon: it is counted and logged, and the store reports itself
unhealthy until an operation succeeds again. A refused password is such an error too, logged
as one (``redis refused authentication``), never with the password.

Connections authenticate with ``redis_username`` and the password read from
``redis_password_file`` (or the URL's own credentials, which win), and use TLS for a
``rediss://`` URL, verified against ``redis_ssl_ca_file`` when one is given.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, RedisError

from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.ports import Lease, Saved, SaveResult
from autoscaler.daemon.state_codec import decode_state, encode_state
from autoscaler.logs import Throttle

log = structlog.get_logger("autoscaler.state.redis")

# KEYS: lease, fence counter. ARGV: owner, ttl ms. -> {taken 1/0, fence, holder}
_ACQUIRE = """
local v = redis.call('GET', KEYS[1])
if not v then
  local fence = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. fence, 'PX', ARGV[2])
  return {1, fence, ''}
end
local sep = string.find(v, '|', 1, true)
local holder = string.sub(v, 1, sep - 1)
local fence = tonumber(string.sub(v, sep + 1))
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, fence, ''}
end
return {0, fence, holder}
"""

# KEYS: leases. ARGV: ttl ms, then the value each lease must still hold. -> 1/0 per lease
_RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

# KEYS: lease. ARGV: the value it must hold.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: lease, state. ARGV: owner, fence, data. Fence 0 (written while the lease could not be
# checked) still never overwrites a deployment another daemon holds.
_SAVE = """
local v = redis.call('GET', KEYS[1])
local ok
if ARGV[2] == '0' then
  ok = (not v) or string.sub(v, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|'
else
  ok = v == ARGV[1] .. '|' .. ARGV[2]
end
if ok then
  redis.call('SET', KEYS[2], ARGV[3])
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class RedisAuth:
    """Credentials and TLS trust for a Redis connection (the password already read)."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_ca_file: Path | None = None

    @classmethod
    def from_files(
        cls,
        username: str | None = None,
        password_file: Path | None = None,
        ssl_ca_file: Path | None = None,
    ) -> RedisAuth:
        """Read the password once, at start (the config validated that the file reads)."""
        password = None
        if password_file is not None:
            password = password_file.read_text(encoding="utf-8").strip() or None
        return cls(username, password, ssl_ca_file)


def redis_client(url: str, auth: RedisAuth | None = None) -> Redis:
    """A client for ``url``; credentials the URL carries take precedence over ``auth``'s
    (redis-py applies the URL's options last)."""
    options: dict[str, Any] = {"socket_timeout": 2, "socket_connect_timeout": 2}
    if auth is not None:
        if auth.username:
            options["username"] = auth.username
        if auth.password:
            options["password"] = auth.password
        if auth.ssl_ca_file is not None and url.startswith("rediss://"):
            options["ssl_ca_certs"] = str(auth.ssl_ca_file)
    return Redis.from_url(url, **options)


def describe_error(exc: Exception) -> str:
    """What went wrong, saying so when it is authentication (redis-py's own texts, which
    never include the password)."""
    if isinstance(exc, AuthenticationError):
        return f"authentication refused: {exc} (check redis_username / redis_password_file)"
    return str(exc)


def default_owner() -> str:
    """Unique per process: a restarted daemon is a new owner and waits out the old lease
    rather than assuming the dead process's decisions were all saved."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RedisStateStore:
    """The Redis ``StateStore`` and ``Leases`` (one object: a fenced save needs the lease)."""

    SAFETY = 0.8
    """Fraction of the lease a daemon trusts by its own clock; the rest absorbs clock-rate
    drift and the time the granting request took to arrive."""

    def __init__(
        self,
        redis: Redis,
        metrics: DaemonMetrics,
        *,
        namespace: str = "autoscaler:",
        owner: str | None = None,
        lease_s: float = 15.0,
    ) -> None:
        self.redis = redis
        self.metrics = metrics
        self.namespace = namespace
        self.owner = owner or default_owner()
        self.lease_s = lease_s
        self.healthy = True
        """False since the last operation failed, until one succeeds again."""
        self._held: dict[str, tuple[int, float]] = {}  # deployment -> (fence, valid until)
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._save = redis.register_script(_SAVE)
        # During an outage (or with a refused password) every decision of every deployment
        # fails the same way: the counter has the rate, the log a few lines per interval.
        self._log_throttle = Throttle(burst=5, interval_s=10.0)
        metrics.state_store_up.set(1)

    @classmethod
    def from_url(
        cls,
        url: str,
        metrics: DaemonMetrics,
        *,
        lease_s: float = 15.0,
        owner: str | None = None,
        namespace: str = "autoscaler:",
        auth: RedisAuth | None = None,
    ) -> RedisStateStore:
        return cls(
            redis_client(url, auth), metrics, lease_s=lease_s, owner=owner, namespace=namespace
        )

    def _state_key(self, deployment: str) -> str:
        return f"{self.namespace}state:{deployment}"

    def _lease_key(self, deployment: str) -> str:
        return f"{self.namespace}lease:{deployment}"

    def _fence_key(self, deployment: str) -> str:
        return f"{self.namespace}fence:{deployment}"

    # -- state -----------------------------------------------------------------------------

    async def load(
        self, deployment: str, policy_name: str, initial_policy_state: Any
    ) -> Saved | None:
        try:
            raw = await self.redis.get(self._state_key(deployment))
        except RedisError as exc:
            self._failed("load", deployment, exc)
            return None
        self._ok()
        if raw is None:
            return None
        data = raw.encode() if isinstance(raw, str) else raw  # bytes unless decode_responses
        saved = decode_state(data, policy_name, initial_policy_state)
        if saved is None:
            log.warning("stored state unreadable; starting fresh", deployment=deployment)
        return saved

    async def save(self, deployment: str, policy_name: str, saved: Saved) -> SaveResult:
        try:
            written = await self._save(
                keys=[self._lease_key(deployment), self._state_key(deployment)],
                args=[self.owner, saved.fence, encode_state(policy_name, saved)],
            )
        except RedisError as exc:
            self._failed("save", deployment, exc)
            return SaveResult.FAILED
        self._ok()
        return SaveResult.SAVED if written else SaveResult.FENCED

    # -- leases ----------------------------------------------------------------------------

    async def acquire(self, deployment: str) -> Lease:
        started = time.monotonic()
        try:
            taken, fence, holder = await self._acquire(
                keys=[self._lease_key(deployment), self._fence_key(deployment)],
                args=[self.owner, int(self.lease_s * 1000)],
            )
        except RedisError as exc:
            self._failed("lease", deployment, exc)
            return Lease("unknown")
        self._ok()
        if not taken:
            self._drop(deployment)
            name = holder.decode() if isinstance(holder, bytes) else str(holder)
            return Lease("elsewhere", int(fence), name)
        self._held[deployment] = (int(fence), started + self.lease_s * self.SAFETY)
        self.metrics.leases_held.set(len(self._held))
        return Lease("held", int(fence))

    def valid(self, deployment: str) -> int | None:
        held = self._held.get(deployment)
        if held is None or time.monotonic() >= held[1]:
            return None
        return held[0]

    async def check(self) -> bool:
        """Ask Redis whether it answers (and accepts this daemon's credentials), so that the
        health metric says so before the first decision needs the store."""
        try:
            await self.redis.ping()
        except RedisError as exc:
            self._failed("ping", "*", exc)
            return False
        self._ok()
        return True

    async def renew(self) -> None:
        if not self._held:
            # Nothing to renew; still find out whether the store is there, so that an idle
            # daemon's health metric follows Redis going away and coming back.
            await self.check()
            return
        started = time.monotonic()
        names = list(self._held)
        for chunk_start in range(0, len(names), 500):  # bounded script size
            chunk = names[chunk_start : chunk_start + 500]
            values = [f"{self.owner}|{self._held[n][0]}" for n in chunk]
            try:
                results = await self._renew(
                    keys=[self._lease_key(n) for n in chunk],
                    args=[int(self.lease_s * 1000), *values],
                )
            except RedisError as exc:
                # Leases run out by the local clock; decisions go on under the store-down rules.
                self._failed("lease", "*", exc)
                return
            self._ok()
            for name, renewed in zip(chunk, results, strict=True):
                fence = self._held[name][0]
                if renewed:
                    self._held[name] = (fence, started + self.lease_s * self.SAFETY)
                else:
                    log.warning("lease lost", deployment=name, fence=fence)
                    self.metrics.leases_lost.inc()
                    self._drop(name)

    async def release(self, deployment: str) -> None:
        held = self._held.get(deployment)
        self._drop(deployment)
        if held is None:
            return
        try:
            await self._release(
                keys=[self._lease_key(deployment)], args=[f"{self.owner}|{held[0]}"]
            )
        except RedisError as exc:  # it expires on its own
            self._failed("lease", deployment, exc)

    def forget(self, deployment: str) -> None:
        self._drop(deployment)

    def _drop(self, deployment: str) -> None:
        if self._held.pop(deployment, None) is not None:
            self.metrics.leases_held.set(len(self._held))

    # -- health ----------------------------------------------------------------------------

    def _ok(self) -> None:
        if not self.healthy:
            log.info("redis reachable again")
        self.healthy = True
        self.metrics.state_store_up.set(1)

    def _failed(self, operation: str, deployment: str, exc: Exception) -> None:
        self.healthy = False
        self.metrics.state_store_up.set(0)
        self.metrics.redis_errors.labels(operation).inc()
        event = (
            "redis refused authentication"
            if isinstance(exc, AuthenticationError)
            else "redis unavailable"
        )
        held = self._log_throttle.allow((event, operation))
        if held is None:
            return
        extra = {"suppressed": held} if held else {}
        log.error(
            event, operation=operation, deployment=deployment, error=describe_error(exc), **extra
        )

    async def close(self) -> None:
        await self.redis.aclose()
