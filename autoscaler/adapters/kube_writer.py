"""The scale writer: brings each target to its *desired* replicas through the ``scale``
subresource.

A decision that changes a target's replicas becomes its desired count; a few writer tasks
send it as a merge patch of ``spec.replicas``, guarded by the resourceVersion the cache
holds. Decisions made while a write is queued or in flight replace its value (at most one
patch per deployment per decision, none when nothing changes). A 409 Conflict (someone else
wrote the workload since) re-reads the scale and patches again, so the decision survives;
429 and 5xx back off with jitter, honouring Retry-After.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from autoscaler.adapters.kube_api import MERGE_PATCH, RETRYABLE, ApiError, KubeApi, backoff
from autoscaler.adapters.kube_cache import Workload, WorkloadCache

log = structlog.get_logger("autoscaler.actuator.kubernetes")

CONFLICT_RETRIES = 5
"""409s in a row that are answered by re-reading at once; after that the write backs off."""

Want = tuple[int, float]
"""Desired replicas, and when they were first handed over (for the write-latency metric)."""


class ScaleWriter:
    def __init__(
        self,
        api: KubeApi,
        cache: WorkloadCache,
        *,
        field_manager: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.cache = cache
        self.metrics = api.metrics
        self.field_manager = field_manager
        self.clock = clock
        self._desired: dict[str, Want] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._inflight: set[str] = set()

    def pending(self, key: str) -> int | None:
        """The replicas being written to ``key``, while a write is queued or in flight."""
        want = self._desired.get(key)
        return want[0] if want is not None else None

    def want(self, key: str, replicas: int) -> None:
        previous = self._desired.get(key)
        since = previous[1] if previous is not None else self.clock()
        self._desired[key] = (replicas, since)
        if key not in self._queued and key not in self._inflight:
            self._queued.add(key)
            self._queue.put_nowait(key)

    async def drain(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) for the writes asked for so far."""
        deadline = self.clock() + timeout_s
        while self._desired and self.clock() < deadline:
            await asyncio.sleep(0.02)
        if self._desired:
            log.warning("stopping with writes not done", targets=sorted(self._desired))

    async def settled(self) -> None:
        """Wait until no write is queued or in flight (tests and the benchmark)."""
        while self._desired:
            await asyncio.sleep(0.01)

    async def writer(self) -> None:
        """One writer task: takes targets from the queue, one at a time, until cancelled."""
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._inflight.add(key)
            try:
                await self._write(key)
            except Exception:
                # A bug or an answer the API does not promise must cost this write, not the
                # daemon: the next decision asks again.
                self.metrics.kube_requests.labels("patch", "error").inc()
                log.exception("scale write failed unexpectedly", target=key)
                self._desired.pop(key, None)
            finally:
                self._inflight.discard(key)
                if key in self._desired and key not in self._queued:
                    # Wanted again after the write gave up (it backs off in the queue).
                    self._queued.add(key)
                    self._queue.put_nowait(key)

    def _settle(self, key: str, want: Want) -> None:
        if self._desired.get(key) == want:
            del self._desired[key]

    async def _write(self, key: str) -> None:
        """Bring the target to its desired replicas; newer decisions replace the value being
        written between attempts."""
        failures = conflicts = 0
        while self._next_write(key) is not None:
            # The token first: a write that waited for the budget is built from the cache as
            # it is when it goes out, not as it was when it started waiting (a stale
            # resourceVersion would only buy a 409 and two more requests).
            await self.api.take_token()
            pending = self._next_write(key)
            if pending is None:
                break
            want, workload = pending
            replicas, since = want
            try:
                scale = await self.api.request(
                    "patch",
                    self.api.calls(workload.kind)["patch_scale"],
                    workload.name,
                    workload.namespace,
                    {
                        "metadata": {"resourceVersion": workload.resource_version},
                        "spec": {"replicas": replicas},
                    },
                    token_taken=True,
                    field_manager=self.field_manager,
                    _content_type=MERGE_PATCH,
                    _request_timeout=10,
                )
            except ApiError as exc:
                if exc.code == 409:
                    # Written by someone else since our cache saw it: re-read and write the
                    # decision again on top of what is there now.
                    # The autoscaler owns spec.replicas (as the HPA does): a count someone else
                    # set is overwritten too, but said so.
                    conflicts += 1
                    if conflicts > CONFLICT_RETRIES:
                        await asyncio.sleep(backoff(conflicts - CONFLICT_RETRIES))
                    theirs = await self._refresh(workload)
                    log.info(
                        "scale conflict: re-read, writing again",
                        target=key,
                        attempt=conflicts,
                        replicas_changed_by_other_writer=theirs is not None
                        and theirs != workload.replicas,
                    )
                    continue
                if exc.code == 429 or exc.code >= 500:
                    failures += 1
                    delay = exc.retry_after_s or backoff(failures)
                    log.warning(
                        "scale refused: retrying", target=key, error=str(exc), retry_in_s=delay
                    )
                    await asyncio.sleep(delay)
                    continue
                # 403, 404, 422: retrying cannot help. The next decision asks again.
                log.error("scale failed", target=key, replicas=replicas, error=str(exc))
                self._settle(key, want)
                return
            except RETRYABLE as exc:
                failures += 1
                delay = backoff(failures)
                log.warning(
                    "scale request failed: retrying",
                    target=key,
                    error=str(exc) or type(exc).__name__,
                    retry_in_s=delay,
                )
                await asyncio.sleep(delay)
                continue
            # A Scale's replicas is omitted when 0 (omitempty), unlike a Deployment's.
            self.cache.update_local(
                workload,
                int(scale["spec"].get("replicas", 0)),
                str(scale["metadata"]["resourceVersion"]),
            )
            self.metrics.kube_write_seconds.observe(max(0.0, self.clock() - since))
            self._settle(key, want)
            failures = conflicts = 0

    def _next_write(self, key: str) -> tuple[Want, Workload] | None:
        """The write still owed to ``key``, settling the ones there is no need for (the
        target is gone, paused, or already there)."""
        while (want := self._desired.get(key)) is not None:
            workload = self.cache.target(key)
            if (
                workload is None
                or workload.replicas == want[0]
                # A held target takes only the count it is pinned to.
                or (workload.controls.held and workload.controls.paused_replicas != want[0])
            ):
                self._settle(key, want)
            else:
                return want, workload
        return None

    async def _refresh(self, workload: Workload) -> int | None:
        """Re-read the scale into the cache; the replicas found (None if it failed)."""
        try:
            scale = await self.api.request(
                "get",
                self.api.calls(workload.kind)["read_scale"],
                workload.name,
                workload.namespace,
                _request_timeout=10,
            )
        except (ApiError, *RETRYABLE) as exc:
            log.warning("re-reading scale failed", target=workload.key, error=str(exc))
            await asyncio.sleep(backoff(1))
            return None
        replicas = int(scale["spec"].get("replicas", 0))
        self.cache.update_local(workload, replicas, str(scale["metadata"]["resourceVersion"]))
        return replicas
