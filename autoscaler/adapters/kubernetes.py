"""The Kubernetes actuator: scales Deployments and StatefulSets through their ``scale``
subresource and watches them to know their current and ready replicas.

Reading: one list-then-watch per kind and namespace (all namespaces when none are named)
keeps a cache of every workload's ``spec.replicas``, ready replicas, resourceVersion and
annotations. The engine's ``observe`` is a lookup in it, never a request, so 1,000
deployments deciding every 2 s cost no API calls at all; the API server pushes changes.
A watch that expires (410 Gone) or breaks is re-listed, with jittered backoff after failures.

Writing: a decision that changes a target's replicas becomes the target's *desired* count;
a few writer tasks send it as a merge patch of ``spec.replicas`` on the scale subresource,
guarded by the resourceVersion the decision saw. Decisions made while a write is queued or
in flight replace its value (at most one patch per deployment per decision, none when
nothing changes). A 409 Conflict (someone else wrote the workload since) re-reads the scale
and patches again, so the decision survives; 429 and 5xx back off with jitter, honouring
Retry-After; every request first takes a token from the client-side QPS budget.

Scope: the actuator only ever writes to workloads it has seen in its watches and that the
policies manage (``manages``); annotations let ops pause a target or pin its replicas, and
override policy keys for it (see ``autoscaler.config.annotations``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import aiohttp
import msgspec
import structlog
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from autoscaler.adapters.rate_budget import RequestBudget
from autoscaler.config.annotations import NO_CONTROLS, PAUSED, TargetControls, parse_controls
from autoscaler.config.loader import Problem
from autoscaler.core.decider import Decision
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.ports import Observed

log = structlog.get_logger("autoscaler.actuator.kubernetes")

Kind = Literal["Deployment", "StatefulSet"]
KINDS: tuple[Kind, ...] = ("Deployment", "StatefulSet")

NOT_A_TARGET = Observed(0, 0, actionable=False)

MERGE_PATCH = "application/merge-patch+json"
LIST_PAGE = 500
WATCH_TIMEOUT_S = (300, 600)
"""A watch asks the server to end it after a random 5 to 10 minutes (client-go's reflector
does the same), so that watches of many daemons do not all re-list at once."""
CONFLICT_RETRIES = 5
"""409s in a row that are answered by re-reading at once; after that the write backs off."""
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 10.0
SKIP_LOG_INTERVAL_S = 60.0
"""A workload that cannot be read is logged at most this often per kind and reason (a watch
re-delivers it on every change and every re-list); the metric counts each time."""


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
    key = f"{meta['namespace']}/{meta['name']}"
    workload = Workload(
        kind=kind,
        namespace=str(meta["namespace"]),
        name=str(meta["name"]),
        # An unset spec.replicas means 1 (the API server defaults it on create).
        replicas=int(spec.get("replicas", 1)),
        ready=int(status.get("readyReplicas") or 0),
        resource_version=str(meta["resourceVersion"]),
    )
    annotations = meta.get("annotations") or {}
    try:
        return replace(workload, controls=parse_controls(key, annotations))
    except Exception as exc:  # RecursionError included: one annotation must not cost a watch
        raise UnreadableAnnotations(
            replace(workload, controls=_fallback_controls(key, annotations, exc)), exc
        ) from exc


def _fallback_controls(
    key: str, annotations: Mapping[str, str], exc: BaseException
) -> TargetControls:
    """Controls for annotations the parser could not handle: none, except a readable
    ``paused`` (an unreadable neighbour must not un-pause a target ops paused, nor pause one)."""
    problem = Problem(
        f"{key} (annotations)", "", None, f"annotations unreadable, ignored: {type(exc).__name__}"
    )
    kept: TargetControls = NO_CONTROLS
    if isinstance(annotations, Mapping) and isinstance(annotations.get(PAUSED), str):
        with contextlib.suppress(Exception):
            kept = parse_controls(key, {PAUSED: annotations[PAUSED]})
    return replace(kept, problems=(*kept.problems, problem))


def _older(version: str, than: str) -> bool:
    """Whether resourceVersion ``version`` is older than ``than``. They are opaque to clients
    in general, but etcd's are increasing integers; this is only used to drop a watch event
    that arrives after the response to our own, later, patch."""
    try:
        return int(version) < int(than)
    except ValueError:
        return False


class ApiError(Exception):
    def __init__(self, code: int, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"HTTP {code}: {message}")
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


_RETRYABLE = (aiohttp.ClientError, TimeoutError, OSError)


async def api_client(kubeconfig: str | None = None, context: str | None = None) -> k8s.ApiClient:
    """A client from ``kubeconfig``, else the pod's service account when running in a
    cluster, else the default kubeconfig ($KUBECONFIG or ~/.kube/config)."""
    configuration = k8s.Configuration()
    if kubeconfig is None:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException:
            await k8s_config.load_kube_config(context=context, client_configuration=configuration)
    else:
        await k8s_config.load_kube_config(
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    return k8s.ApiClient(configuration)


class KubernetesActuator:
    def __init__(
        self,
        api: k8s.ApiClient | None,
        metrics: DaemonMetrics,
        *,
        namespaces: Sequence[str] = (),
        kinds: Sequence[Kind] = KINDS,
        budget: RequestBudget | None = None,
        dry_run: bool = False,
        manages: Callable[[str], bool] = lambda _name: True,
        writers: int = 4,
        field_manager: str = "autoscaler",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        """None until ``connect``: loading a kubeconfig is a coroutine."""
        self.apps = k8s.AppsV1Api(api) if api is not None else None
        self.metrics = metrics
        self.namespaces = tuple(namespaces)
        self.kinds = tuple(kinds)
        self.budget = budget if budget is not None else RequestBudget(20, 40)
        self.dry_run = dry_run
        self.manages = manages
        self.writers = writers
        self.field_manager = field_manager
        self.clock = clock
        scopes: tuple[str | None, ...] = self.namespaces or (None,)
        self._scopes: dict[tuple[Kind, str | None], dict[str, Workload]] = {
            (kind, ns): {} for kind in self.kinds for ns in scopes
        }
        self._listed: set[tuple[Kind, str | None]] = set()
        self.synced = asyncio.Event()
        """Set once every watch has listed its scope: before that, an absent target may
        merely not have been read yet."""
        self._desired: dict[str, tuple[int, float]] = {}  # key -> (replicas, handed over at)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._inflight: set[str] = set()
        self._would: dict[str, int] = {}  # dry run: the last change logged per target
        self._ambiguous: set[str] = set()
        self._failing: dict[tuple[Kind, str | None], str] = {}  # scope -> its last error
        self._skip_logged: dict[tuple[Kind, str], tuple[float, int]] = {}  # -> (at, unlogged)
        self._closed = asyncio.Event()
        self.on_target: Callable[[str], Awaitable[None]] | None = None
        """Called with each workload the watches find for the first time."""
        self.on_gone: Callable[[str], Awaitable[None]] | None = None
        """Called when a workload is deleted."""

    async def connect(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        self.api = await api_client(kubeconfig, context)
        self.apps = k8s.AppsV1Api(self.api)

    async def close(self) -> None:
        if self.api is not None:
            await self.api.close()

    def problems(self) -> list[str]:
        """What keeps the actuator from a full picture of the cluster, for /healthz."""
        problems = [
            f"Kubernetes: listing {kind}s in {ns or 'all namespaces'} fails: {error}"
            for (kind, ns), error in sorted(self._failing.items(), key=str)
        ]
        if not self.synced.is_set() and not problems:
            problems.append("Kubernetes: workloads not listed yet")
        return problems

    def targets(self) -> list[str]:
        """Every workload in the cache, as ``namespace/name``."""
        return sorted({key for scope in self._scopes.values() for key in scope})

    # -- the Actuator protocol -------------------------------------------------------------

    def target(self, key: str) -> Workload | None:
        """The cached workload named ``namespace/name``: None when there is none, or when a
        Deployment and a StatefulSet share the name (which one an event means is unknown)."""
        namespace = key.partition("/")[0]
        scope = namespace if self.namespaces else None
        found = [
            w
            for kind in self.kinds
            if (w := self._scopes.get((kind, scope), {}).get(key)) is not None
        ]
        if len(found) == 1:
            return found[0]
        if found and key not in self._ambiguous:
            self._ambiguous.add(key)
            log.warning("a Deployment and a StatefulSet share this name: left alone", target=key)
        return None

    async def observe(self, deployment: str) -> Observed | None:
        workload = self.target(deployment)
        if workload is None or workload.controls.held:
            return NOT_A_TARGET
        pending = self._desired.get(deployment)
        # While a write is queued or in flight the replicas asked for are what was decided:
        # the next decision builds on it instead of deciding the same step again.
        current = pending[0] if pending is not None else workload.replicas
        return Observed(current, workload.ready, True, workload.controls.overrides)

    async def apply(self, deployment: str, decision: Decision, fence: int) -> None:
        # The fence is checked by the state store's compare-and-set before this is called;
        # the write itself is guarded by the resourceVersion the decision was based on.
        workload = self.target(deployment)
        if workload is None or workload.controls.held or not self.manages(deployment):
            return
        replicas = decision.replicas
        if self.dry_run:
            if replicas != workload.replicas and self._would.get(deployment) != replicas:
                log.info(
                    "would scale",
                    target=deployment,
                    kind=workload.kind,
                    current=workload.replicas,
                    replicas=replicas,
                    reason=decision.reason,
                )
            self._would[deployment] = replicas
            return
        if replicas == workload.replicas and deployment not in self._desired:
            return
        if replicas != workload.replicas:
            log.info(
                "scaling",
                target=deployment,
                kind=workload.kind,
                current=workload.replicas,
                replicas=replicas,
                ready=workload.ready,
                fence=fence,
                reason=decision.reason,
            )
        self._want(deployment, replicas)

    def _want(self, key: str, replicas: int) -> None:
        previous = self._desired.get(key)
        since = previous[1] if previous is not None else self.clock()
        self._desired[key] = (replicas, since)
        if key not in self._queued and key not in self._inflight:
            self._queued.add(key)
            self._queue.put_nowait(key)

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Watch and write until ``stop``; then keep writing until ``drain`` (the daemon's
        last decisions) or 10 s, whichever comes first."""
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._watch_loop(kind, ns), name=f"watch-{kind}-{ns or 'all'}")
                for kind, ns in self._scopes
            ]
            tasks += [
                group.create_task(self._writer(), name=f"kube-writer-{index}")
                for index in range(self.writers)
            ]
            await stop.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), timeout=10)
            for task in tasks:
                task.cancel()

    async def list_all(self) -> None:
        """List every scope once, without watching (what ``run`` starts with)."""
        for kind, namespace in self._scopes:
            await self._list(kind, namespace)

    async def run_writers(self, stop: asyncio.Event) -> None:
        """Only the writers, until ``stop`` (a test drives the cache with ``list_all``)."""
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._writer()) for _ in range(self.writers)]
            await stop.wait()
            for task in tasks:
                task.cancel()

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait (at most ``timeout_s``) for the writes asked for so far, then let ``run``
        end."""
        deadline = self.clock() + timeout_s
        while self._desired and self.clock() < deadline:
            await asyncio.sleep(0.02)
        if self._desired:
            log.warning("stopping with writes not done", targets=sorted(self._desired))
        self._closed.set()

    async def settled(self) -> None:
        """Wait until no write is queued or in flight (tests and the benchmark)."""
        while self._desired:
            await asyncio.sleep(0.01)

    # -- requests --------------------------------------------------------------------------

    async def _take_token(self) -> None:
        waited = await self.budget.acquire()
        if waited:
            self.metrics.kube_budget_wait.inc(waited)

    async def _request(
        self,
        verb: str,
        call: Callable[..., Awaitable[Any]],
        *args: Any,
        token_taken: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Send one request within the budget; the decoded body, or ApiError."""
        if not token_taken:
            await self._take_token()
        try:
            response = await call(*args, _preload_content=False, **kwargs)
        except _RETRYABLE:
            self.metrics.kube_requests.labels(verb, "0").inc()
            raise
        try:
            self.metrics.kube_requests.labels(verb, str(response.status)).inc()
            body = await response.read()
            if 200 <= response.status < 300:
                return msgspec.json.decode(body)
            raise _api_error(response.status, body, response.headers.get("Retry-After"))
        finally:
            response.release()

    def _calls(self, kind: Kind) -> dict[str, Callable[..., Awaitable[Any]]]:
        apps = self.apps
        if apps is None:
            raise RuntimeError("KubernetesActuator.connect() was not called")
        if kind == "Deployment":
            return {
                "list_ns": apps.list_namespaced_deployment,
                "list_all": apps.list_deployment_for_all_namespaces,
                "read_scale": apps.read_namespaced_deployment_scale,
                "patch_scale": apps.patch_namespaced_deployment_scale,
            }
        return {
            "list_ns": apps.list_namespaced_stateful_set,
            "list_all": apps.list_stateful_set_for_all_namespaces,
            "read_scale": apps.read_namespaced_stateful_set_scale,
            "patch_scale": apps.patch_namespaced_stateful_set_scale,
        }

    def _lister(
        self, kind: Kind, namespace: str | None
    ) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        calls = self._calls(kind)
        if namespace is None:
            return calls["list_all"], ()
        return calls["list_ns"], (namespace,)

    # -- watching --------------------------------------------------------------------------

    async def _watch_loop(self, kind: Kind, namespace: str | None) -> None:
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
                    (ApiError, *_RETRYABLE, ValueError, KeyError, msgspec.DecodeError),
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
                delay = _backoff(failures)
                log.warning(
                    "watch failed: listing again",
                    kind=kind,
                    namespace=namespace,
                    error=str(exc) or type(exc).__name__,
                    retry_in_s=round(delay, 2),
                )
                await asyncio.sleep(delay)

    async def _list(self, kind: Kind, namespace: str | None) -> str:
        call, args = self._lister(kind, namespace)
        items: list[Workload] = []
        token: str | None = None
        while True:
            page = await self._request(
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
        call, args = self._lister(kind, namespace)
        timeout_s = random.randint(*WATCH_TIMEOUT_S)
        await self._take_token()
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
        except _RETRYABLE:
            self.metrics.kube_requests.labels("watch", "0").inc()
            raise
        self.metrics.kube_requests.labels("watch", str(response.status)).inc()
        try:
            if response.status == 410:
                raise _Expired
            if response.status != 200:
                raise _api_error(response.status, await response.read(), None)
            async for line in _lines(response.content):
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
        promises is skipped; one whose annotations cannot be parsed is kept with
        ``_fallback_controls``."""
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
        scope = self._scopes[(kind, namespace)]
        listed = {w.key for w in items}
        for key in [k for k in scope if k not in listed]:
            await self._remove(kind, namespace, key)
        for workload in items:
            await self._put(kind, namespace, workload)
        self._listed.add((kind, namespace))
        if len(self._listed) == len(self._scopes):
            self.synced.set()

    async def _put(self, kind: Kind, namespace: str | None, workload: Workload) -> None:
        scope = self._scopes[(kind, namespace)]
        old = scope.get(workload.key)
        if old is not None and _older(workload.resource_version, old.resource_version):
            return
        scope[workload.key] = workload
        self.metrics.kube_targets.labels(kind).set(len(scope))
        controls = workload.controls
        if old is None or controls != old.controls:
            for problem in controls.problems:
                log.error("annotation ignored", target=workload.key, problem=str(problem))
            if controls.held:
                log.info(
                    "target paused by annotation",
                    target=workload.key,
                    pinned_replicas=controls.paused_replicas,
                )
        pinned = controls.paused_replicas
        if (
            pinned is not None
            and pinned != workload.replicas
            and not self.dry_run
            and self.manages(workload.key)
        ):
            self._want(workload.key, pinned)
        if old is None and self.on_target is not None:
            await self._notify(self.on_target, workload.key)

    async def _remove(self, kind: Kind, namespace: str | None, key: str) -> None:
        scope = self._scopes[(kind, namespace)]
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

    def _update_local(self, workload: Workload, replicas: int, version: str) -> None:
        """Record what a scale request answered, ahead of the watch event that follows."""
        scope = self._scopes[(workload.kind, workload.namespace if self.namespaces else None)]
        current = scope.get(workload.key)
        if current is None or _older(version, current.resource_version):
            return
        scope[workload.key] = replace(current, replicas=replicas, resource_version=version)

    # -- writing ---------------------------------------------------------------------------

    async def _writer(self) -> None:
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

    def _settle(self, key: str, want: tuple[int, float]) -> None:
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
            await self._take_token()
            pending = self._next_write(key)
            if pending is None:
                break
            want, workload = pending
            replicas, since = want
            try:
                scale = await self._request(
                    "patch",
                    self._calls(workload.kind)["patch_scale"],
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
                        await asyncio.sleep(_backoff(conflicts - CONFLICT_RETRIES))
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
                    delay = exc.retry_after_s or _backoff(failures)
                    log.warning(
                        "scale refused: retrying", target=key, error=str(exc), retry_in_s=delay
                    )
                    await asyncio.sleep(delay)
                    continue
                # 403, 404, 422: retrying cannot help. The next decision asks again.
                log.error("scale failed", target=key, replicas=replicas, error=str(exc))
                self._settle(key, want)
                return
            except _RETRYABLE as exc:
                failures += 1
                delay = _backoff(failures)
                log.warning(
                    "scale request failed: retrying",
                    target=key,
                    error=str(exc) or type(exc).__name__,
                    retry_in_s=delay,
                )
                await asyncio.sleep(delay)
                continue
            # A Scale's replicas is omitted when 0 (omitempty), unlike a Deployment's.
            self._update_local(
                workload,
                int(scale["spec"].get("replicas", 0)),
                str(scale["metadata"]["resourceVersion"]),
            )
            self.metrics.kube_write_seconds.observe(max(0.0, self.clock() - since))
            self._settle(key, want)
            failures = conflicts = 0

    def _next_write(self, key: str) -> tuple[tuple[int, float], Workload] | None:
        """The write still owed to ``key``, settling the ones there is no need for (the
        target is gone, paused, or already there)."""
        while (want := self._desired.get(key)) is not None:
            workload = self.target(key)
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
            scale = await self._request(
                "get",
                self._calls(workload.kind)["read_scale"],
                workload.name,
                workload.namespace,
                _request_timeout=10,
            )
        except (ApiError, *_RETRYABLE) as exc:
            log.warning("re-reading scale failed", target=workload.key, error=str(exc))
            await asyncio.sleep(_backoff(1))
            return None
        replicas = int(scale["spec"].get("replicas", 0))
        self._update_local(workload, replicas, str(scale["metadata"]["resourceVersion"]))
        return replicas


def _describe(obj: Any) -> str:
    """``namespace/name`` of a malformed object, as far as it can be told."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping):
        return "?"
    return f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"[:600]


def _api_error(code: int, body: bytes, retry_after: str | None) -> ApiError:
    try:
        message = str(msgspec.json.decode(body).get("message", ""))
    except (msgspec.DecodeError, AttributeError):
        message = body[:200].decode(errors="replace")
    seconds: float | None = None
    if retry_after is not None:
        with contextlib.suppress(ValueError):
            seconds = min(BACKOFF_CAP_S, max(0.0, float(retry_after)))
    return ApiError(code, message, seconds)


def _backoff(failures: int) -> float:
    """Exponential from 0.1 s, capped at 10 s, with full jitter in [0.5, 1.5) of the step so
    that many daemons or targets retrying at once spread out."""
    step = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** max(0, failures - 1))
    return step * (0.5 + random.random())


async def _lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Newline-delimited watch events, of any length (aiohttp's own line reader refuses
    lines over 64 KiB; a workload with a large annotation makes one)."""
    buffer = bytearray()
    async for chunk in stream.iter_any():
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[:end])
            del buffer[: end + 1]
            if line.strip():
                yield line
    if buffer.strip():
        yield bytes(buffer)
