"""The daemon over real HTTP on loopback: ingest, decisions, metrics, probes, draining."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from autoscaler.config.loader import PolicyFileError
from autoscaler.daemon.config import DaemonConfig, HttpConfig, load_daemon_config
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
            # The embedded `slo` policy: 12 arriving at once read as 12 req/s, at its 2 s service
            # prior 24 busy slots; 8 replicas of 4 keep waits over 2 s within 0.1%.
            events = [started("default/llm", f"r{i}") for i in range(12)]
            async with http.post(f"{url}/events", json=events) as response:
                assert response.status == 202
                body = await response.json()
            assert body["accepted"] == 12 and body["rejected"] == 0
            assert [d["replicas"] for d in body["decisions"]] == [8]
            assert body["decisions"][0]["reason"].startswith("slo:")
            assert daemon.actuator.replicas["default/llm"] == 8
            async with http.get(f"{url}/metrics") as response:
                text = await response.text()
            assert 'autoscaler_events_total{outcome="applied"} 12.0' in text
            assert 'autoscaler_replicas{deployment="default/llm",kind="desired"} 8.0' in text
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


def decisions(daemon: Daemon) -> float:
    return (
        daemon.engine.metrics.registry.get_sample_value(
            "autoscaler_decisions_total", {"deployment": "default/llm"}
        )
        or 0.0
    )


def test_ticks_keep_deciding_without_events() -> None:
    async def scenario() -> None:
        async with running(EMBEDDED) as (daemon, url), aiohttp.ClientSession() as http:
            async with http.post(f"{url}/events", json=[started("default/llm", "a")]) as response:
                assert response.status == 202
            before = decisions(daemon)
            await asyncio.sleep(0.4)
            after = decisions(daemon)
            assert after >= before + 3  # ticks every 50 ms

    run(scenario)


def test_a_config_file_names_policies_and_unmatched_deployments_are_left_alone(
    tmp_path: Path,
) -> None:
    (tmp_path / "p.yaml").write_text(
        "defaults: {scale_down_delay_s: 0, policy: concurrency, "
        "parallelism: 1, target_utilization: 1}\n"
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


# -- hardening (issue 9) -------------------------------------------------------------------


async def _post(
    http: aiohttp.ClientSession, url: str, body: bytes, **headers: str
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{url}/events", data=body, headers=headers) as response:
        return response.status, await response.json()


async def _metric_lines(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(f"{url}/metrics") as response:
        assert response.status == 200
        return await response.text()


BODIES = [
    # (body, status, reason, detail): the inputs, one request each.
    pytest.param(b"[" * 1000 + b"]" * 1000, 400, "too_deep", "16 levels", id="1000 levels"),
    pytest.param(
        b"[" + b"{}," * 2_796_000 + b"{}]", 413, "too_many", "2796001 events", id="8 MiB of {}"
    ),
    pytest.param(
        b'{"type": "queue_length", "deployment": "\\ud800", "ts": 1, "value": 1}',
        400,
        "invalid_json",
        "invalid unicode escape",
        id="lone surrogate",
    ),
    pytest.param(
        b'{"type": "queue_length", "deployment": "\xff", "ts": 1, "value": 1}',
        400,
        "invalid_json",
        "invalid UTF-8",
        id="invalid utf-8",
    ),
    pytest.param(b" " * (8 * 2**20 + 1), 413, "too_large", "max_body_bytes", id="over 8 MiB"),
]


@pytest.mark.parametrize(("body", "status", "reason", "detail"), BODIES)
def test_bodies_against_the_limits_are_refused_with_a_reason_and_counted(
    body: bytes, status: int, reason: str, detail: str
) -> None:
    async def scenario() -> None:
        async with running(EMBEDDED) as (daemon, url), aiohttp.ClientSession() as http:
            code, answer = await _post(http, url, body)
            assert code == status, answer
            assert (answer["accepted"], answer["rejected"]) == (0, 1)
            assert answer["reasons"] == {reason: 1}
            assert detail in answer["errors"][0] and "truncated" not in answer["errors"][0]
            text = await _metric_lines(http, url)
            assert f'autoscaler_events_rejected_total{{reason="{reason}"}} 1.0' in text
            assert not daemon.engine.deployments  # nothing applied
            code, answer = await _post(http, url, json.dumps(started("default/llm", "a")).encode())
            assert (code, answer["accepted"]) == (202, 1)  # and the daemon goes on

    run(scenario)


def test_the_answer_counts_each_outcome_and_accepted_means_applied() -> None:
    async def scenario() -> None:
        async with running(EMBEDDED) as (_, url), aiohttp.ClientSession() as http:
            now = time.time()
            first = [started("default/llm", "a"), started("default/llm", "a")]
            code, answer = await _post(http, url, json.dumps(first).encode())
            assert (code, answer["accepted"], answer["ignored"]) == (202, 1, 1)
            assert answer["outcomes"] == {"applied": 1, "duplicate": 1}
            # The issue: a sample a year ahead was accepted and made every later one stale.
            ahead = {"type": "queue_length", "deployment": "default/llm", "value": 50}
            batch = [{**ahead, "ts": now + 365 * 86400}, {**ahead, "ts": 1}, {**ahead, "ts": now}]
            code, answer = await _post(http, url, json.dumps(batch).encode())
            assert code == 202
            assert (answer["accepted"], answer["rejected"]) == (1, 2)
            assert answer["reasons"] == {"skewed": 2}
            stale = [{**ahead, "ts": now - 1, "value": 1}]
            code, answer = await _post(http, url, json.dumps(stale).encode())
            assert (code, answer["accepted"], answer["ignored"]) == (202, 0, 1)
            assert answer["outcomes"] == {"stale": 1}
            text = await _metric_lines(http, url)
            assert 'autoscaler_events_total{outcome="stale"} 1.0' in text
            assert 'autoscaler_events_rejected_total{reason="skewed"} 2.0' in text

    run(scenario)


async def _exploding_ingest(*_: Any) -> Any:
    """A fault injected where the handler hands the batch to the engine. A failure while
    deciding is the engine's to contain (it counts each one and decides the rest); anything
    else that raises in a handler is what the middleware answers."""
    raise RuntimeError("engine exploded")


def test_an_unexpected_error_is_a_json_500_with_a_reason_and_counted() -> None:
    async def scenario() -> None:
        async with running(EMBEDDED) as (daemon, url), aiohttp.ClientSession() as http:
            real_ingest = daemon.engine.ingest
            daemon.engine.ingest = _exploding_ingest  # type: ignore[method-assign]
            body = json.dumps([started("default/llm", f"r{i}") for i in range(9)]).encode()
            async with http.post(f"{url}/events", data=body) as response:
                assert response.status == 500
                answer = await response.json()
            assert answer == {
                "error": "internal error",
                "reason": "RuntimeError: engine exploded",
            }
            daemon.engine.ingest = real_ingest  # type: ignore[method-assign]
            text = await _metric_lines(http, url)
            assert 'autoscaler_http_errors_total{reason="RuntimeError"} 1.0' in text
            async with http.get(f"{url}/healthz") as response:
                assert response.status == 200

    run(scenario)


def test_healthz_answers_while_a_big_body_is_processed() -> None:
    async def scenario() -> None:
        async with running(EMBEDDED) as (_, url), aiohttp.ClientSession() as http:
            big = b"[" + b"{}," * 2_796_000 + b"{}]"
            latencies: list[float] = []

            async def probe() -> None:
                while True:
                    begun = time.perf_counter()
                    async with http.get(f"{url}/healthz") as response:
                        assert response.status == 200
                    latencies.append(time.perf_counter() - begun)
                    await asyncio.sleep(0.01)

            prober = asyncio.create_task(probe())
            try:
                for _ in range(3):
                    code, _answer = await _post(http, url, big)
                    assert code == 413
            finally:
                prober.cancel()
            assert latencies and max(latencies) < 0.5, max(latencies)

    run(scenario)


# -- auth and the metrics port (issue 9, Security) -----------------------------------------

TOKEN = "s3cret-token-0123456789"


def _token_file(tmp_path: Path, token: str = TOKEN) -> Path:
    path = tmp_path / "token"
    path.write_text(token + "\n")
    return path


@pytest.mark.parametrize(
    ("header", "status", "reason"),
    [
        (None, 401, "missing"),
        ("", 401, "missing"),
        ("Bearer", 401, "missing"),
        (f"Basic {TOKEN}", 401, "missing"),
        ("Bearer wrong", 401, "invalid"),
        (f"Bearer {TOKEN}x", 401, "invalid"),
        (f"Bearer {TOKEN[:-1]}", 401, "invalid"),
        (f"Bearer {TOKEN}", 202, None),
        (f"bearer  {TOKEN} ", 202, None),
    ],
)
def test_events_need_the_bearer_token_when_one_is_configured(
    tmp_path: Path, header: str | None, status: int, reason: str | None
) -> None:
    config = DaemonConfig(
        http=HttpConfig(port=0, auth_token_file=_token_file(tmp_path)), tick_s=0.05
    )

    async def scenario() -> None:
        async with running(config) as (daemon, url), aiohttp.ClientSession() as http:
            headers = {} if header is None else {"Authorization": header}
            body = json.dumps(started("default/llm", "a")).encode()
            code, answer = await _post(http, url, body, **headers)
            assert code == status, answer
            if reason is None:
                assert answer["accepted"] == 1
                return
            assert answer == {"error": "unauthorized", "reason": f"bearer token {reason}"}
            assert not daemon.engine.deployments
            text = await _metric_lines(http, url)  # probes and metrics need no token
            assert f'autoscaler_http_unauthorized_total{{reason="{reason}"}} 1.0' in text

    run(scenario)


def test_a_rotated_token_file_is_picked_up(tmp_path: Path) -> None:
    path = _token_file(tmp_path)
    config = DaemonConfig(http=HttpConfig(port=0, auth_token_file=path), tick_s=0.05)
    body = json.dumps(started("default/llm", "a")).encode()

    async def scenario() -> None:
        async with running(config) as (_, url), aiohttp.ClientSession() as http:
            assert (await _post(http, url, body, Authorization=f"Bearer {TOKEN}"))[0] == 202
            # A Secret's rotation: the new file is swapped in under the same name.
            fresh = tmp_path / "token.new"
            fresh.write_text("rotated-token\n")
            fresh.replace(path)
            assert (await _post(http, url, body, Authorization=f"Bearer {TOKEN}"))[0] == 401
            assert (await _post(http, url, body, Authorization="Bearer rotated-token"))[0] == 202
            # Emptied or removed (half a swap): the token in force stays, nobody gets in free.
            path.write_text("")
            assert (await _post(http, url, body))[0] == 401
            assert (await _post(http, url, body, Authorization="Bearer rotated-token"))[0] == 202
            path.unlink()
            assert (await _post(http, url, body, Authorization="Bearer rotated-token"))[0] == 202

    run(scenario)


@pytest.mark.parametrize("content", [None, "", "  \n"], ids=["missing", "empty", "blank"])
def test_a_token_file_missing_or_empty_at_start_is_a_config_error(
    tmp_path: Path, content: str | None
) -> None:
    token = tmp_path / "token"
    if content is not None:
        token.write_text(content)
    config = tmp_path / "daemon.yaml"
    config.write_text("http: {auth_token_file: token}\n")
    with pytest.raises(PolicyFileError) as caught:
        load_daemon_config(config)
    assert "http.auth_token_file" in str(caught.value)
    token.write_text(TOKEN)
    assert load_daemon_config(config).http.auth_token_file == token.resolve()


def test_metrics_on_their_own_port(tmp_path: Path) -> None:
    config = DaemonConfig(
        http=HttpConfig(port=0, metrics_port=0, auth_token_file=_token_file(tmp_path)),
        tick_s=0.05,
    )

    async def scenario() -> None:
        async with running(config) as (daemon, url), aiohttp.ClientSession() as http:
            assert daemon.metrics_port and daemon.metrics_port != daemon.port
            metrics_url = f"http://127.0.0.1:{daemon.metrics_port}"
            body = json.dumps(started("default/llm", "a")).encode()
            assert (await _post(http, url, body, Authorization=f"Bearer {TOKEN}"))[0] == 202
            async with http.get(f"{url}/metrics") as response:
                assert response.status == 404
            text = await _metric_lines(http, metrics_url)
            assert 'autoscaler_events_total{outcome="applied"} 1.0' in text
            for base in (url, metrics_url):
                for probe in ("healthz", "readyz"):
                    async with http.get(f"{base}/{probe}") as response:
                        assert response.status == 200
            async with http.post(f"{metrics_url}/events", data=body) as response:
                assert response.status == 404  # events go to the main port only

    run(scenario)


def test_the_metrics_port_must_differ_from_the_main_one() -> None:
    with pytest.raises(ValidationError, match="must differ from port"):
        HttpConfig(port=9000, metrics_port=9000)
