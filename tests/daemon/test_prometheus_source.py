"""PromQL readings from a real Prometheus drive the ``metric`` policy (KEDA's prometheus scaler);
unusable answers are counted by reason and the daemon keeps running. Plus the config's checks."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from pydantic import ValidationError

from autoscaler.config.loader import PolicyFileError
from autoscaler.daemon.config import (
    DaemonConfig,
    HttpConfig,
    PrometheusQueryConfig,
    load_daemon_config,
)
from autoscaler.daemon.run import Daemon

POLICY = (
    "deployments:\n"
    "  - match: metric/*\n"
    "    policy: metric\n"
    "    min_replicas: 0\n"
    "    max_replicas: 20\n"
    "    params: {target_per_replica: 5, activation_threshold: 2}\n"
)
REASONS = ("unreachable", "query_failed", "empty", "multiple_series", "bad_value")


def errors(daemon: Daemon, reason: str) -> float:
    value = daemon.engine.metrics.registry.get_sample_value(
        "autoscaler_prometheus_errors_total", {"reason": reason}
    )
    return value or 0.0


def prometheus_query(url: str, query: str) -> list[dict[str, object]]:
    address = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(address, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success"
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def wait_for_self_scrape(url: str) -> None:
    """Until Prometheus has scraped itself: the queries below read its own metrics."""
    deadline = time.monotonic() + 60
    query = 'count(prometheus_http_request_duration_seconds_bucket{job="self"}) > 1'
    while not prometheus_query(url, query):
        assert time.monotonic() < deadline, "prometheus never scraped itself"
        time.sleep(0.2)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens here once the probe is closed


def config_for(tmp_path: Path, url: str, *queries: PrometheusQueryConfig) -> DaemonConfig:
    (tmp_path / "p.yaml").write_text(POLICY)
    return DaemonConfig(
        policies=(tmp_path / "p.yaml",),
        http=HttpConfig(port=0),
        tick_s=0.1,
        prometheus_url=url,
        prometheus_queries=queries,
        prometheus_interval_s=0.2,
    )


@asynccontextmanager
async def running(config: DaemonConfig) -> AsyncIterator[tuple[Daemon, asyncio.Task[None]]]:
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())
    for _ in range(500):
        if daemon.ready or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
    assert daemon.ready and daemon.port
    try:
        yield daemon, task
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, timeout=30)


async def until(
    what: str, check: Callable[[], bool], task: asyncio.Task[None], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert not task.done(), task.exception()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


# -- readings drive decisions ----------------------------------------------------------------


def test_prometheus_scrapes_the_daemon_and_its_reading_scales_a_deployment(
    services: dict[str, str], tmp_path: Path
) -> None:
    """The full loop: events posted to the daemon raise its own /metrics counter, Prometheus
    scrapes it, the daemon's query reads it back as a signal, and `metric` scales on it."""
    url, targets = services["PROMETHEUS_URL"], Path(services["PROMETHEUS_TARGETS_DIR"])
    run = uuid.uuid4().hex[:12]
    config = config_for(
        tmp_path,
        url,
        PrometheusQueryConfig(
            deployment="metric/scraped",
            query=f'sum(autoscaler_events_unmanaged_total{{run="{run}"}})',
        ),
        # A scalar result (not a vector) from Prometheus' scrape of itself: 1 x 12 = 12.
        PrometheusQueryConfig(
            deployment="metric/self", query='scalar(sum(up{job="self"})) * 12', signal="selfup"
        ),
    )
    # The second deployment scales on its own signal name.
    (tmp_path / "p.yaml").write_text(
        POLICY + "  - {match: metric/self, policy: metric, params: {signal: selfup}}\n"
    )
    target = targets / f"{run}.json"

    async def scenario() -> None:
        async with running(config) as (daemon, task), aiohttp.ClientSession() as http:
            # Written whole then renamed: Prometheus must never read half a file.
            partial = targets / f".{run}.tmp"
            partial.write_text(
                json.dumps([{"targets": [f"127.0.0.1:{daemon.port}"], "labels": {"run": run}}])
            )
            partial.rename(target)
            # 23 events for a deployment no rule matches: counted as unmanaged, nothing else.
            events = [
                {"type": "queue_length", "deployment": "load/gen", "ts": time.time(), "value": 1}
                for _ in range(23)
            ]
            async with http.post(f"http://127.0.0.1:{daemon.port}/events", json=events) as r:
                assert r.status == 202
            replicas = daemon.actuator.replicas
            wanted = {"metric/scraped": 5, "metric/self": 3}  # ceil(23 / 5), ceil(12 / 5)
            await until(
                "both deployments scaled",
                lambda: all(replicas.get(k) == v for k, v in wanted.items()),
                task,
                timeout_s=90,
            )
            scraped = daemon.engine.deployments["metric/scraped"].last_decision
            assert scraped is not None
            assert scraped.reason == "metric: prometheus 23 at 5/replica -> 5"
            own = daemon.engine.deployments["metric/self"].last_decision
            assert own is not None
            assert own.reason == "metric: selfup 12 at 5/replica -> 3"
            # From zero straight to the HPA's answer in one step (KEDA activation).
            assert ("metric/self", 0, 3) in daemon.actuator.applied
            # Until Prometheus had scraped the daemon (the first poll ran before the target
            # file existed), that query's answer was empty: counted, not read as 0.
            assert errors(daemon, "empty") >= 1
            assert errors(daemon, "query_failed") == errors(daemon, "unreachable") == 0
            assert daemon.actuator.applied.count(("metric/scraped", 0, 5)) == 1

    try:
        asyncio.run(scenario())
    finally:
        target.unlink(missing_ok=True)


# -- unusable answers ------------------------------------------------------------------------


def test_each_unusable_answer_is_counted_once_per_poll_and_the_good_one_still_lands(
    services: dict[str, str], tmp_path: Path
) -> None:
    url = services["PROMETHEUS_URL"]
    wait_for_self_scrape(url)
    # A peer that accepts connections and never answers: a hung Prometheus.
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    hung_url = f"http://127.0.0.1:{hung.getsockname()[1]}"

    def q(name: str, query: str, query_url: str | None = None) -> PrometheusQueryConfig:
        return PrometheusQueryConfig(deployment=f"metric/{name}", query=query, url=query_url)

    queries = (
        q("good", 'sum(up{job="self"}) * 15'),
        q("syntax", 'sum(up{job="self"'),  # Prometheus answers 400 bad_data
        q("empty", 'up{job="no-such-job"}'),
        q("several", 'sum by (le) (prometheus_http_request_duration_seconds_bucket{job="self"})'),
        q("nan", "vector(0) / 0"),
        q("inf", "vector(1) / 0"),
        q("negative", "vector(-3)"),
        q("huge", "vector(2e9)"),
        q("range", 'up{job="self"}[1m]'),  # a matrix, not an instant reading
        q("string", '"hello"'),
        q("refused", "vector(1)", f"http://127.0.0.1:{closed_port()}"),
        q("hung", "vector(1)", hung_url),
    )
    config = config_for(tmp_path, url, *queries)

    async def scenario() -> None:
        # Not started: one poll by hand, to count exactly.
        daemon = Daemon(config)
        assert daemon.prometheus is not None
        started = time.monotonic()
        await daemon.prometheus.poll_once()
        elapsed = time.monotonic() - started
        counts = {reason: errors(daemon, reason) for reason in REASONS}
        assert counts == {
            "unreachable": 2,  # refused, and hung past the 3 s timeout
            "query_failed": 1,
            "empty": 1,
            "multiple_series": 1,
            "bad_value": 6,  # NaN, +Inf, -3, 2e9, a range vector, a string
        }
        # The queries ran side by side: the hung one cost its timeout once, not per query.
        assert elapsed < 6, elapsed
        # Only the good reading became an event; no other deployment was even created.
        assert list(daemon.engine.deployments) == ["metric/good"]
        tracker = daemon.engine.deployments["metric/good"].tracker
        assert tracker.counts["applied"] == 1
        assert dict(tracker.snapshot(daemon.engine.clock(), "metric/good", 0, 0).signals) == {
            "prometheus": 15.0
        }

    try:
        asyncio.run(scenario())
    finally:
        hung.close()


def test_the_daemon_keeps_running_through_errors_and_decides_on_the_good_query(
    services: dict[str, str], tmp_path: Path
) -> None:
    url = services["PROMETHEUS_URL"]
    wait_for_self_scrape(url)
    config = config_for(
        tmp_path,
        url,
        PrometheusQueryConfig(deployment="metric/good", query='sum(up{job="self"}) * 15'),
        PrometheusQueryConfig(deployment="metric/bad", query="sum(rate(up[1m]"),
        PrometheusQueryConfig(deployment="metric/empty", query='up{job="nope"}'),
        PrometheusQueryConfig(
            deployment="metric/gone", query="vector(1)", url=f"http://127.0.0.1:{closed_port()}"
        ),
    )

    async def scenario() -> None:
        async with running(config) as (daemon, task), aiohttp.ClientSession() as http:
            await until(
                "several failed polls and the good decision",
                lambda: (
                    daemon.actuator.replicas.get("metric/good") == 3
                    and all(
                        errors(daemon, r) >= 3 for r in ("query_failed", "empty", "unreachable")
                    )
                ),
                task,
                timeout_s=30,
            )
            assert not task.done()
            async with http.get(f"http://127.0.0.1:{daemon.port}/metrics") as response:
                exposition = await response.text()
            for reason in ("query_failed", "empty", "unreachable"):
                assert f'autoscaler_prometheus_errors_total{{reason="{reason}"}}' in exposition
            assert "metric/bad" not in daemon.actuator.replicas
        # Stopped on request: the source's task ended cleanly with the rest.
        assert task.done() and task.exception() is None

    asyncio.run(scenario())


# -- configuration ---------------------------------------------------------------------------

PROM = "http://127.0.0.1:9090"


def test_defaults() -> None:
    config = DaemonConfig()
    assert (config.prometheus_url, config.prometheus_queries) == (None, ())
    assert config.prometheus_interval_s == 15.0
    query = PrometheusQueryConfig(deployment="ns/app", query="up")
    assert (query.signal, query.url) == ("prometheus", None)


def test_a_query_needs_a_prometheus_url() -> None:
    query = PrometheusQueryConfig(deployment="ns/app", query="up")
    with pytest.raises(ValidationError, match=r"prometheus_queries\[0\]\.url"):
        DaemonConfig(prometheus_queries=(query,))
    DaemonConfig(prometheus_queries=(query,), prometheus_url=PROM)
    DaemonConfig(prometheus_queries=(query.model_copy(update={"url": PROM}),))


def test_one_signal_per_deployment_is_fed_by_one_query() -> None:
    a = PrometheusQueryConfig(deployment="ns/app", query="up")
    with pytest.raises(ValidationError, match=r"prometheus_queries\[1\]\.signal"):
        DaemonConfig(prometheus_url=PROM, prometheus_queries=(a, a.model_copy()))
    DaemonConfig(
        prometheus_url=PROM,
        prometheus_queries=(
            a,
            a.model_copy(update={"signal": "other"}),
            a.model_copy(update={"deployment": "ns/other"}),
        ),
    )


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"signal": "Prom"}, id="signal-upper-case"),
        pytest.param({"signal": "a" * 64}, id="signal-too-long"),
        pytest.param({"query": ""}, id="empty-query"),
        pytest.param({"deployment": "no-namespace"}, id="deployment-without-namespace"),
        pytest.param({"url": "127.0.0.1:9090"}, id="url-without-scheme"),
        pytest.param({"interval": 1}, id="unknown-key"),
    ],
)
def test_bad_query_entries(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PrometheusQueryConfig.model_validate({"deployment": "ns/app", "query": "up", **fields})


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"prometheus_interval_s": 0}, id="interval-0"),
        # A reading must be refreshed inside the tracker's 60 s signal TTL even after a miss.
        pytest.param({"prometheus_interval_s": 31}, id="interval-beyond-30"),
        pytest.param({"prometheus_url": "prometheus:9090"}, id="url-without-scheme"),
    ],
)
def test_bad_top_level_settings(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DaemonConfig.model_validate(fields)


def test_config_file_problems_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "daemon.yaml"
    path.write_text(
        "prometheus_queries:\n"
        "  - {deployment: ns/app, query: 'sum(up)'}\n"
        "  - {deployment: ns/app, query: 'sum(up)', url: 'http://p:9090'}\n"
    )
    with pytest.raises(PolicyFileError) as info:
        load_daemon_config(path)
    assert "prometheus_queries[0].url" in str(info.value)
    path.write_text(
        "prometheus_url: http://p:9090\n"
        "prometheus_interval_s: 5\n"
        "prometheus_queries:\n"
        "  - {deployment: ns/app, query: 'sum(vllm:num_requests_waiting)', signal: waiting}\n"
    )
    config = load_daemon_config(path)
    assert config.prometheus_interval_s == 5
    assert config.prometheus_queries[0].signal == "waiting"
