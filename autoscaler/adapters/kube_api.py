"""The Kubernetes API as the actuator's parts use it: one client, one request budget, the
calls per workload kind, errors as ``ApiError`` and jittered backoff.

Every request first takes a token from the client-side QPS budget and is counted by verb and
status; bodies are decoded with msgspec (the generated client's models are never built).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import aiohttp
import msgspec
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from autoscaler.adapters.rate_budget import RequestBudget
from autoscaler.daemon.metrics import DaemonMetrics

Kind = Literal["Deployment", "StatefulSet"]
KINDS: tuple[Kind, ...] = ("Deployment", "StatefulSet")

MERGE_PATCH = "application/merge-patch+json"
BACKOFF_BASE_S = 0.1
BACKOFF_CAP_S = 10.0


class ApiError(Exception):
    def __init__(self, code: int, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"HTTP {code}: {message}")
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s


RETRYABLE = (aiohttp.ClientError, TimeoutError, OSError)
"""Failures of the connection rather than answers: worth another try after a backoff."""


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


class KubeApi:
    """The client, the budget every request takes a token from, and the request counters."""

    def __init__(
        self, api: k8s.ApiClient | None, metrics: DaemonMetrics, budget: RequestBudget | None
    ) -> None:
        self.api = api
        """None until ``connect``: loading a kubeconfig is a coroutine."""
        self.apps = k8s.AppsV1Api(api) if api is not None else None
        self.metrics = metrics
        self.budget = budget if budget is not None else RequestBudget(20, 40)

    async def connect(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        self.api = await api_client(kubeconfig, context)
        self.apps = k8s.AppsV1Api(self.api)

    async def close(self) -> None:
        if self.api is not None:
            await self.api.close()

    async def take_token(self) -> None:
        waited = await self.budget.acquire()
        if waited:
            self.metrics.kube_budget_wait.inc(waited)

    async def request(
        self,
        verb: str,
        call: Callable[..., Awaitable[Any]],
        *args: Any,
        token_taken: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Send one request within the budget; the decoded body, or ApiError."""
        if not token_taken:
            await self.take_token()
        try:
            response = await call(*args, _preload_content=False, **kwargs)
        except RETRYABLE:
            self.metrics.kube_requests.labels(verb, "0").inc()
            raise
        try:
            self.metrics.kube_requests.labels(verb, str(response.status)).inc()
            body = await response.read()
            if 200 <= response.status < 300:
                return msgspec.json.decode(body)
            raise api_error(response.status, body, response.headers.get("Retry-After"))
        finally:
            response.release()

    def calls(self, kind: Kind) -> dict[str, Callable[..., Awaitable[Any]]]:
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

    def lister(
        self, kind: Kind, namespace: str | None
    ) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        calls = self.calls(kind)
        if namespace is None:
            return calls["list_all"], ()
        return calls["list_ns"], (namespace,)


def api_error(code: int, body: bytes, retry_after: str | None) -> ApiError:
    try:
        message = str(msgspec.json.decode(body).get("message", ""))
    except (msgspec.DecodeError, AttributeError):
        message = body[:200].decode(errors="replace")
    seconds: float | None = None
    if retry_after is not None:
        with contextlib.suppress(ValueError):
            seconds = min(BACKOFF_CAP_S, max(0.0, float(retry_after)))
    return ApiError(code, message, seconds)


def backoff(failures: int) -> float:
    """Exponential from 0.1 s, capped at 10 s, with full jitter in [0.5, 1.5) of the step so
    that many daemons or targets retrying at once spread out."""
    step = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** max(0, failures - 1))
    return step * (0.5 + random.random())


async def lines(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
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
