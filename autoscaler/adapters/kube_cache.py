"""The workload cache: every Deployment's and StatefulSet's ``spec.replicas``, ready
replicas, resourceVersion and annotation controls, kept by one list-then-watch per kind and
namespace (all namespaces when none are named).

A lookup here is what the engine's ``observe`` costs: never a request, so 1,000 deployments
deciding every 2 s cost no API calls; the API server pushes changes. A watch that expires
(410 Gone) or breaks is re-listed, with jittered backoff after failures. One unreadable
object is skipped, one whose annotations defeat the parser is kept with fallback controls:
neither costs the watch.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import msgspec
import structlog

from autoscaler.adapters.kube_annotations import announce, pinned_write, read_controls
from autoscaler.adapters.kube_api import (
    RETRYABLE,
    ApiError,
    Kind,
    KubeApi,
    api_error,
    backoff,
    lines,
)
from autoscaler.config.annotations import NO_CONTROLS, TargetControls

log = structlog.get_logger("autoscaler.actuator.kubernetes")

LIST_PAGE = 500
WATCH_TIMEOUT_S = (300, 600)
"""A watch asks the server to end it after a random 5 to 10 minutes (client-go's reflector
does the same), so that watches of many daemons do not all re-list at once."""
SKIP_LOG_INTERVAL_S = 60.0
"""A workload that cannot be read is logged at most this often per kind and reason (a watch
re-delivers it on every change and every re-list); the metric counts each time."""

Scope = tuple[Kind, str | None]
"""A kind and a namespace (None: all namespaces)."""


@dataclass(frozen=True, slots=True)
class Workload:
    kind: Kind
    namespace: str
    name: str
    replicas: int
    """``spec.replicas``: what has been asked for."""
    ready: int
    resource_version: str
    controls: TargetControls = NO_CONTROLS

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class UnreadableAnnotations(Exception):
    """Parsing a workload's annotations raised; the workload is kept, with ``controls``."""

    def __init__(self, workload: Workload, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}"[:300])
        self.workload = workload


def workload_from(kind: Kind, obj: Mapping[str, Any]) -> Workload:
    """The cache entry for one listed or watched object. Raises on an object that lacks what
    the API promises (the caller skips it), and ``UnreadableAnnotations`` carrying a usable
    workload when only its annotations defeat the parser."""
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    workload = Workload(
        kind=kind,
        namespace=str(meta["namespace"]),
        name=str(meta["name"]),
        # An unset spec.replicas means 1 (the API server defaults it on create).
        replicas=int(spec.get("replicas", 1)),
        ready=int(status.get("readyReplicas") or 0),
        resource_version=str(meta["resourceVersion"]),
    )
    controls, error = read_controls(
        f"{meta['namespace']}/{meta['name']}", meta.get("annotations") or {}
    )
    workload = replace(workload, controls=controls)
    if error is not None:
        raise UnreadableAnnotations(workload, error) from error
    return workload


def older(version: str, than: str) -> bool:
    """Whether resourceVersion ``version`` is older than ``than``. They are opaque to clients
    in general, but etcd's are increasing integers; this is only used to drop a watch event
    that arrives after the response to our own, later, patch."""
    try:
        return int(version) < int(than)
    except ValueError:
        return False


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class WorkloadCache:
    """The cluster's workloads as the watches last saw them."""

    def __init__(
        self,
        api: KubeApi,
        *,
        namespaces: Sequence[str],
        kinds: Sequence[Kind],
        on_pinned: Callable[[str, int], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.metrics = api.metrics
        self.namespaces = tuple(namespaces)
        self.kinds = tuple(kinds)
        self.on_pinned = on_pinned
        """Called with a workload pinned by annotation to a count it is not at."""
        self.clock = clock
        scopes: tuple[str | None, ...] = self.namespaces or (None,)
        self.scopes: dict[Scope, dict[str, Workload]] = {
            (kind, ns): {} for kind in self.kinds for ns in scopes
        }
        self._listed: set[Scope] = set()
        self.synced = asyncio.Event()
        """Set once every watch has listed its scope: before that, an absent target may
        merely not have been read yet."""
        self._ambiguous: set[str] = set()
        self._failing: dict[Scope, str] = {}  # scope -> its last error
        self._skip_logged: dict[tuple[Kind, str], tuple[float, int]] = {}  # -> (at, unlogged)
        self.on_target: Callable[[str], Awaitable[None]] | None = None
        """Called with each workload the watches find for the first time."""
        self.on_gone: Callable[[str], Awaitable[None]] | None = None
        """Called when a workload is deleted."""

    # -- reading the cache -----------------------------------------------------------------

    def problems(self) -> list[str]:
        """What keeps the cache from a full picture of the cluster, for /healthz."""
        problems = [
            f"Kubernetes: listing {kind}s in {ns or 'all namespaces'} fails: {error}"
            for (kind, ns), error in sorted(self._failing.items(), key=str)
        ]
        if not self.synced.is_set() and not problems:
            problems.append("Kubernetes: workloads not listed yet")
        return problems

    def targets(self) -> list[str]:
        """Every workload in the cache, as ``namespace/name``."""
        return sorted({key for scope in self.scopes.values() for key in scope})

    def target(self, key: str) -> Workload | None:
        """The cached workload named ``namespace/name``: None when there is none, or when a
        Deployment and a StatefulSet share the name (which one an event means is unknown)."""
        namespace = key.partition("/")[0]
        scope = namespace if self.namespaces else None
        found = [
            w
            for kind in self.kinds
            if (w := self.scopes.get((kind, scope), {}).get(key)) is not None
        ]
        if len(found) == 1:
            return found[0]
        if found and key not in self._ambiguous:
            self._ambiguous.add(key)
            log.warning("a Deployment and a StatefulSet share this name: left alone", target=key)
        return None

    def update_local(self, workload: Workload, replicas: int, version: str) -> None:
        """Record what a scale request answered, ahead of the watch event that follows."""
        scope = self.scopes[(workload.kind, workload.namespace if self.namespaces else None)]
        current = scope.get(workload.key)
        if current is None or older(version, current.resource_version):
            return
        scope[workload.key] = replace(current, replicas=replicas, resource_version=version)

    # -- listing and watching --------------------------------------------------------------

    async def list_all(self) -> None:
        """List every scope once, without watching."""
        for kind, namespace in self.scopes:
            await self._list(kind, namespace)

    async def watch_loop(self, kind: Kind, namespace: str | None) -> None:
        failures = 0
        while True:
            try:
                version = await self._list(kind, namespace)
                failures = 0
                self._failing.pop((kind, namespace), None)
                while True:
                    version = await self._watch(kind, namespace, version)
            except _Expired:
                self.metrics.kube_watch_restarts.labels(kind, "expired").inc()
                log.info("watch expired: listing again", kind=kind, namespace=namespace)
            except Exception as exc:
                # ApiError and connection errors; ValueError/KeyError/DecodeError/RecursionError:
                # a response that is not what the API promises, list again rather than trust a
                # half-read stream; anything else is a bug, which must cost this watch a
                # re-list, not the daemon its picture of the cluster.
                if not isinstance(
                    exc,
                    (ApiError, *RETRYABLE, ValueError, KeyError, msgspec.DecodeError),
                ):
                    log.error(
                        "watch failed unexpectedly",
                        kind=kind,
                        namespace=namespace,
                        exc_info=not isinstance(exc, RecursionError),
                    )
                failures += 1
                self._failing[(kind, namespace)] = (str(exc) or type(exc).__name__)[:300]
                self.metrics.kube_watch_restarts.labels(kind, "failed").inc()
                delay = backoff(failures)
                log.warning(
                    "watch failed: listing again",
                    kind=kind,
                    namespace=namespace,
                    error=str(exc) or type(exc).__name__,
                    retry_in_s=round(delay, 2),
                )
                await asyncio.sleep(delay)

    async def _list(self, kind: Kind, namespace: str | None) -> str:
        call, args = self.api.lister(kind, namespace)
        items: list[Workload] = []
        token: str | None = None
        while True:
            page = await self.api.request(
                "list", call, *args, limit=LIST_PAGE, _continue=token, _request_timeout=60
            )
            for obj in page.get("items") or ():
                workload = self._read(kind, obj)
                if workload is not None:
                    items.append(workload)
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or None
            if token is None:
                break
        await self._replace_scope(kind, namespace, items)
        return str(metadata["resourceVersion"])

    async def _watch(self, kind: Kind, namespace: str | None, version: str) -> str:
        """Follow one watch until the server ends it; return the resourceVersion reached."""
        call, args = self.api.lister(kind, namespace)
        timeout_s = random.randint(*WATCH_TIMEOUT_S)
        await self.api.take_token()
        try:
            response = await call(
                *args,
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=timeout_s,
                _preload_content=False,
                _request_timeout=aiohttp.ClientTimeout(sock_connect=10, sock_read=timeout_s + 30),
            )
        except RETRYABLE:
            self.metrics.kube_requests.labels("watch", "0").inc()
            raise
        self.metrics.kube_requests.labels("watch", str(response.status)).inc()
        try:
            if response.status == 410:
                raise _Expired
            if response.status != 200:
                raise api_error(response.status, await response.read(), None)
            async for line in lines(response.content):
                event = msgspec.json.decode(line)
                kind_of_event = event["type"]
                obj = event["object"]
                if kind_of_event == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired
                    raise ApiError(int(obj.get("code") or 0), str(obj.get("message")))
                version = str(obj["metadata"]["resourceVersion"])
                if kind_of_event == "BOOKMARK":
                    continue
                workload = self._read(kind, obj)
                if workload is None:
                    continue
                if kind_of_event == "DELETED":
                    await self._remove(kind, namespace, workload.key)
                else:
                    await self._put(kind, namespace, workload)
        finally:
            response.release()
        return version

    def _read(self, kind: Kind, obj: Any) -> Workload | None:
        """``workload_from`` for one object, never raising: one bad workload must not break a
        list (which would retry forever) or a watch. An object without the fields the API
        promises is skipped; one whose annotations cannot be parsed is kept with fallback
        controls."""
        try:
            return workload_from(kind, obj)
        except UnreadableAnnotations as exc:
            self._skipped(kind, "annotations", exc.workload.key, exc.__cause__ or exc)
            return exc.workload
        except Exception as exc:  # RecursionError included
            self._skipped(kind, "object", _describe(obj), exc)
            return None

    def _skipped(self, kind: Kind, reason: str, target: str, exc: BaseException) -> None:
        self.metrics.kube_objects_skipped.labels(kind, reason).inc()
        now = self.clock()
        last, unlogged = self._skip_logged.get((kind, reason), (-math.inf, 0))
        if now - last < SKIP_LOG_INTERVAL_S:
            self._skip_logged[(kind, reason)] = (last, unlogged + 1)
            return
        self._skip_logged[(kind, reason)] = (now, 0)
        log.error(
            "workload annotations unreadable: ignored"
            if reason == "annotations"
            else "workload unreadable: skipped",
            kind=kind,
            target=target,
            error=(f"{type(exc).__name__}: {exc}")[:300],
            not_logged_since_last=unlogged,
        )

    async def _replace_scope(
        self, kind: Kind, namespace: str | None, items: list[Workload]
    ) -> None:
        scope = self.scopes[(kind, namespace)]
        listed = {w.key for w in items}
        for key in [k for k in scope if k not in listed]:
            await self._remove(kind, namespace, key)
        for workload in items:
            await self._put(kind, namespace, workload)
        self._listed.add((kind, namespace))
        if len(self._listed) == len(self.scopes):
            self.synced.set()

    async def _put(self, kind: Kind, namespace: str | None, workload: Workload) -> None:
        scope = self.scopes[(kind, namespace)]
        old = scope.get(workload.key)
        if old is not None and older(workload.resource_version, old.resource_version):
            return
        scope[workload.key] = workload
        self.metrics.kube_targets.labels(kind).set(len(scope))
        announce(workload.key, workload.controls, old.controls if old is not None else None)
        pinned = pinned_write(workload.controls, workload.replicas)
        if pinned is not None:
            self.on_pinned(workload.key, pinned)
        if old is None and self.on_target is not None:
            await self._notify(self.on_target, workload.key)

    async def _remove(self, kind: Kind, namespace: str | None, key: str) -> None:
        scope = self.scopes[(kind, namespace)]
        if scope.pop(key, None) is None:
            return
        self.metrics.kube_targets.labels(kind).set(len(scope))
        self._ambiguous.discard(key)
        if self.on_gone is not None:
            await self._notify(self.on_gone, key)

    async def _notify(self, callback: Callable[[str], Awaitable[None]], key: str) -> None:
        # The target is already in (or out of) the cache: a callback that raised would make
        # the watch re-list, which would not call it again, and would stall every other target.
        try:
            await callback(key)
        except Exception:
            log.exception("workload callback failed", target=key)


def _describe(obj: Any) -> str:
    """``namespace/name`` of a malformed object, as far as it can be told."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping):
        return "?"
    return f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"[:600]
