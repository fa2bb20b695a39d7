"""HTTP front of the daemon (aiohttp): ``POST /events`` (one JSON event or an array),
``GET /metrics``, ``GET /healthz`` and ``GET /readyz``.

No single request can stall the loop or make the daemon hold much: a body is refused whole
(413, nothing applied) when it holds more than ``limits.max_events_per_body`` events, and
(400) when it nests deeper than ``limits.max_json_depth``, both found by a vectorised scan
before anything is decoded (off the loop for big bodies); what is accepted is decoded and
applied in slices, with a turn for the loop between. With a token file, ``POST /events``
needs ``Authorization: Bearer <token>``. With a metrics port, ``/metrics`` is served there
(beside the probes) and not on the main port. Any unexpected error is a JSON 500 with a reason,
logged and counted, never a bare one.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from autoscaler.core.decider import Decision
from autoscaler.core.events import Rejected, decode_item, split_events
from autoscaler.daemon.config import LimitsConfig
from autoscaler.daemon.ports import EventSink, IngestResult

log = structlog.get_logger("autoscaler.http")

SLICE = 1000
"""Events decoded and applied before the loop gets a turn (about 2 ms of work)."""
OFF_LOOP_BYTES = 1 << 20
"""Bodies this big are scanned in a worker thread (numpy lets go of the GIL): 8 MiB take
about 200 ms, which /healthz would otherwise wait for."""


class BearerToken:
    """The token in a file (a mounted Secret), read again whenever the file changes: a
    Secret's rotation swaps the file (a new inode behind its symlink), and new requests need
    the new token from then on. A file that goes missing or empty later keeps the token in
    force (a half-done swap must not open /events, nor lock every producer out)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int, int] | None = None
        self._token = b""
        if not self._reload():
            raise ValueError(f"{path}: no token (missing, unreadable or empty)")

    def _reload(self) -> bool:
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return True
            token = self.path.read_bytes().strip()
        except OSError as exc:
            log.error("token file unreadable; the token in force stays", error=str(exc))
            return False
        if not token:
            log.error("token file empty; the token in force stays", path=str(self.path))
            return False
        if self._stamp is not None:
            log.info("token file changed: new token in force", path=str(self.path))
        self._stamp, self._token = stamp, token
        return True

    def refusal(self, header: str | None) -> str | None:
        """None when ``header`` carries the token, else why not: missing or invalid."""
        self._reload()
        scheme, _, presented = (header or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return "missing"
        # Constant time: how far a guess matches must not show in the answer's timing.
        if hmac.compare_digest(presented.strip().encode(), self._token):
            return None
        return "invalid"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error_middleware(sink: EventSink) -> Middleware:
    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except (web.HTTPException, ConnectionError):
            raise  # a deliberate answer (404, 405, ...), or a client gone: nobody to answer
        except Exception as exc:
            reason = type(exc).__name__
            sink.metrics.http_errors.labels(reason).inc()
            log.exception("request failed", path=request.path, reason=reason)
            return web.json_response(
                {"error": "internal error", "reason": f"{reason}: {exc}"[:500]}, status=500
            )

    return errors


def build_app(
    sink: EventSink,
    is_ready: Callable[[], bool],
    max_body_bytes: int,
    problems: Callable[[], list[str]] = list,
    *,
    limits: LimitsConfig | None = None,
    token: BearerToken | None = None,
    serve_metrics: bool = True,
) -> web.Application:
    """``problems`` names what is degraded beyond the state store (the actuator's view).
    Without ``serve_metrics`` /metrics is left to ``build_metrics_app`` on another port."""
    limits = limits if limits is not None else LimitsConfig()
    app = web.Application(client_max_size=max_body_bytes, middlewares=[_error_middleware(sink)])

    async def post_events(request: web.Request) -> web.Response:
        if token is not None:
            refused = token.refusal(request.headers.get("Authorization"))
            if refused is not None:
                sink.metrics.http_unauthorized.labels(refused).inc()
                return web.json_response(
                    {"error": "unauthorized", "reason": f"bearer token {refused}"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="autoscaler"'},
                )
        received = sink.clock()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            refusal = sink.count_rejected(
                "too_large", f"body over {max_body_bytes} bytes (http.max_body_bytes)"
            )
            return _answer(refusal, [], 413)
        split = partial(
            split_events,
            body,
            max_depth=limits.max_json_depth,
            max_events=limits.max_events_per_body,
        )
        parts = await asyncio.to_thread(split) if len(body) >= OFF_LOOP_BYTES else split()
        if isinstance(parts, Rejected):
            refusal = sink.count_rejected(parts.reason, parts.detail)
            return _answer(refusal, [], 413 if parts.reason == "too_many" else 400)
        result = IngestResult()
        for start in range(0, len(parts), SLICE):
            if start:
                await asyncio.sleep(0)
            items = [decode_item(part) for part in parts[start : start + SLICE]]
            result.add(await sink.ingest(items, received))
        decisions = await sink.decide_pending()
        valid = result.accepted + result.ignored + result.unmanaged
        return _answer(result, decisions, 400 if result.rejected and not valid else 202)

    app.router.add_post("/events", post_events)
    _add_probes(app, sink, is_ready, problems, serve_metrics=serve_metrics)
    return app


def build_metrics_app(
    sink: EventSink, is_ready: Callable[[], bool], problems: Callable[[], list[str]] = list
) -> web.Application:
    """/metrics with the probes, for ``http.metrics_port``: Prometheus and the kubelet reach
    it, producers need not (a NetworkPolicy can tell the ports apart)."""
    app = web.Application(middlewares=[_error_middleware(sink)])
    _add_probes(app, sink, is_ready, problems, serve_metrics=True)
    return app


def _answer(
    result: IngestResult, decisions: list[tuple[str, Decision]], status: int
) -> web.Response:
    return web.json_response(
        {
            "accepted": result.accepted,
            "ignored": result.ignored,
            "rejected": result.rejected,
            "unmanaged": result.unmanaged,
            "outcomes": result.outcomes,
            "reasons": result.reasons,
            "decisions": [
                {"deployment": name, "replicas": d.replicas, "reason": d.reason}
                for name, d in decisions
            ],
            "errors": result.errors,
        },
        status=status,
    )


def _add_probes(
    app: web.Application,
    sink: EventSink,
    is_ready: Callable[[], bool],
    problems: Callable[[], list[str]],
    *,
    serve_metrics: bool,
) -> None:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(sink.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        # Alive either way (restarting would bring neither Redis nor the API server back),
        # but say what is degraded.
        degraded = list(problems())
        if not sink.store_healthy:
            degraded.insert(0, "state store unreachable, no scale-downs")
        if degraded:
            return web.Response(text=f"ok; degraded: {'; '.join(degraded)}\n")
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if is_ready():
            return web.Response(text="ready\n")
        return web.Response(text="not ready\n", status=503)

    if serve_metrics:
        app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
