"""The daemon over real HTTP on loopback: ingest, decisions, metrics, probes, draining."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from autoscaler.daemon.config import DaemonConfig, HttpConfig
from autoscaler.daemon.run import Daemon


@asynccontextmanager
async def running(config: DaemonConfig) -> AsyncIterator[tuple[Daemon, str]]:
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())
    for _ in range(200):
        if daemon.ready or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()  # raise the start-up error
    assert daemon.ready and daemon.port
    try:
        yield daemon, f"http://127.0.0.1:{daemon.port}"
    finally:
        daemon.request_stop()
        assert not daemon.ready  # /readyz answers 503 from here on, while it drains
        await asyncio.wait_for(task, timeout=10)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


EMBEDDED = DaemonConfig(http=HttpConfig(port=0), tick_s=0.05)


def started(name: str, rid: str, ts: float | None = None) -> dict[str, object]:
    return {
        "type": "request_started",
        "deployment": name,
        "ts": ts or time.time(),
        "request_id": rid,
    }


def test_events_in_decisions_out_and_visible_in_metrics() -> None:
    async def scenario() -> None:
        async with running(EMBEDDED) as (daemon, url), aiohttp.ClientSession() as http:
            # The embedded policy: parallelism 4 x 0.7 = 2.8 per replica; 12 in flight -> 5.
            events = [started("default/llm", f"r{i}") for i in range(12)]
            async with http.post(f"{url}/events", json=events) as response:
                assert response.status == 202
                body = await response.json()
            assert body["accepted"] == 12 and body["rejected"] == 0
            assert [d["replicas"] for d in body["decisions"]] == [5]
            assert "concurrency:" in body["decisions"][0]["reason"]
            assert daemon.actuator.replicas["default/llm"] == 5
            async with http.get(f"{url}/metrics") as response:
                text = await response.text()
            assert 'autoscaler_events_total{outcome="applied"} 12.0' in text
            assert 'autoscaler_replicas{deployment="default/llm",kind="desired"} 5.0' in text
            assert "autoscaler_event_to_decision_seconds_count 1.0" in text
            async with http.get(f"{url}/healthz") as response:
                assert response.status == 200
            async with http.get(f"{url}/readyz") as response:
                assert response.status == 200

    run(scenario)


def test_malformed_input_is_counted_and_never_stops_the_daemon() -> None:
    async def scenario() -> None:
        async with running(EMBEDDED) as (daemon, url), aiohttp.ClientSession() as http:
            async with http.post(f"{url}/events", data=b"{not json") as response:
                assert response.status == 400
                assert (await response.json())["rejected"] == 1
            mixed = [started("default/llm", "ok"), {"type": "request_started"}, "x"]
            async with http.post(f"{url}/events", json=mixed) as response:
                assert response.status == 202
                body = await response.json()
            assert (body["accepted"], body["rejected"]) == (1, 2)
            assert body["errors"]
            async with http.get(f"{url}/metrics") as response:
                text = await response.text()
            assert 'autoscaler_events_rejected_total{reason="invalid_json"} 1.0' in text
            assert 'autoscaler_events_rejected_total{reason="invalid_event"} 2.0' in text
            assert daemon.engine.deployments["default/llm"].tracker.in_flight == 1

    run(scenario)


def test_ticks_keep_deciding_without_events() -> None:
    async def scenario() -> None:
        async with running(EMBEDDED) as (daemon, url), aiohttp.ClientSession() as http:
            async with http.post(f"{url}/events", json=[started("default/llm", "a")]) as response:
                assert response.status == 202
            before = daemon.engine.metrics.decisions.labels("default/llm")._value.get()
            await asyncio.sleep(0.4)
            after = daemon.engine.metrics.decisions.labels("default/llm")._value.get()
            assert after >= before + 3  # ticks every 50 ms

    run(scenario)


def test_a_config_file_names_policies_and_unmatched_deployments_are_left_alone(
    tmp_path: Path,
) -> None:
    (tmp_path / "p.yaml").write_text(
        "defaults: {parallelism: 1, target_utilization: 1}\n"
        "deployments: [{match: prod/*, max_replicas: 3}]\n"
    )
    config = DaemonConfig(policies=(tmp_path / "p.yaml",), http=HttpConfig(port=0), tick_s=0.05)

    async def scenario() -> None:
        async with running(config) as (daemon, url), aiohttp.ClientSession() as http:
            events = [started("prod/a", f"r{i}") for i in range(5)] + [started("dev/b", "x")]
            async with http.post(f"{url}/events", json=events) as response:
                body = await response.json()
            assert body["accepted"] == 5
            assert daemon.actuator.replicas == {"prod/a": 3}
            async with http.get(f"{url}/metrics") as response:
                assert "autoscaler_events_unmanaged_total 1.0" in await response.text()

    run(scenario)
