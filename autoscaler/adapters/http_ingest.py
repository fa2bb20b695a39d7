"""HTTP front of the daemon (aiohttp): ``POST /events`` (one JSON event or an array),
``GET /metrics``, ``GET /healthz`` and ``GET /readyz``."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from autoscaler.core.events import Rejected, decode_events
from autoscaler.daemon.engine import Engine


def build_app(
    engine: Engine,
    is_ready: Callable[[], bool],
    max_body_bytes: int,
    problems: Callable[[], list[str]] = list,
) -> web.Application:
    """``problems`` names what is degraded beyond the state store (the actuator's view)."""
    app = web.Application(client_max_size=max_body_bytes)

    async def post_events(request: web.Request) -> web.Response:
        received = engine.clock()
        body = await request.read()
        items = decode_events(body)
        accepted, rejected = await engine.ingest(items, received)
        decisions = await engine.decide_pending()
        errors = [item.detail for item in items if isinstance(item, Rejected)][:5]
        status = 400 if accepted == 0 and rejected > 0 else 202
        return web.json_response(
            {
                "accepted": accepted,
                "rejected": rejected,
                "decisions": [
                    {"deployment": name, "replicas": d.replicas, "reason": d.reason}
                    for name, d in decisions
                ],
                "errors": errors,
            },
            status=status,
        )

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(engine.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        # Alive either way (restarting would bring neither Redis nor the API server back),
        # but say what is degraded.
        degraded = list(problems())
        if not engine.store.healthy:
            degraded.insert(0, "state store unreachable, no scale-downs")
        if degraded:
            return web.Response(text=f"ok; degraded: {'; '.join(degraded)}\n")
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if is_ready():
            return web.Response(text="ready\n")
        return web.Response(text="not ready\n", status=503)

    app.router.add_post("/events", post_events)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
