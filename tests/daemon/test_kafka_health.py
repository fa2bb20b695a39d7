"""A Kafka outage is visible (issue 9, item 10): with the brokers out of reach ``/healthz``
says degraded with the cause, ``autoscaler_kafka_up`` is 0, errors are counted by kind, no
lag of 0 is made up, aiokafka's complaints reach stderr as rate-limited JSON lines, and once
the broker is back all of it clears and events flow again. Against a broker of the test's
own (devtools.services), stopped and started again on the same port."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from kafka_helpers import produce_sync, restart_kafka, started
from process_helpers import free_port, wait_ready

from autoscaler.adapters.kafka_source import error_kind
from autoscaler.daemon.config import DaemonConfig, HttpConfig, KafkaConfig
from autoscaler.daemon.run import Daemon
from autoscaler.logs import Throttle, configure_logging
from devtools import services as devservices

CLI = Path(sys.executable).with_name("autoscaler")
POLICY = (
    "defaults: {scale_down_delay_s: 0, policy: concurrency, "
    "parallelism: 1, target_utilization: 1, max_replicas: 20}\n"
    "deployments: [{match: prod/*}]\n"
)


def metric(text: str, name: str) -> float | None:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found[1]) if found else None


def test_a_cluster_out_of_reach_at_start_leaves_the_daemon_up_and_degraded(
    tmp_path: Path,
) -> None:
    # Nothing listens on this port: connection refused, like a broker not up yet.
    bootstrap = f"127.0.0.1:{free_port()}"
    config = DaemonConfig(
        http=HttpConfig(port=0),
        kafka=KafkaConfig(bootstrap_servers=bootstrap, health_interval_s=0.5),
    )

    async def scenario() -> None:
        daemon = Daemon(config)
        task = asyncio.create_task(daemon.run())
        try:
            deadline = time.monotonic() + 20
            while daemon.port is None and time.monotonic() < deadline:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.05)
            base = f"http://127.0.0.1:{daemon.port}"
            async with aiohttp.ClientSession() as http:
                health = ""
                while time.monotonic() < deadline and "Kafka" not in health:
                    assert not task.done(), task.exception()
                    async with http.get(f"{base}/healthz") as response:
                        assert response.status == 200
                        health = await response.text()
                    await asyncio.sleep(0.1)
                assert health.startswith("ok; degraded: Kafka: cannot connect to " + bootstrap)
                await asyncio.sleep(2)  # still retrying, still up
                assert not task.done(), task.exception()
                async with http.get(f"{base}/metrics") as response:
                    text = await response.text()
            assert metric(text, "autoscaler_kafka_up") == 0
            errors = metric(text, 'autoscaler_kafka_errors_total{kind="connection"}')
            assert errors is not None and errors >= 2
        finally:
            daemon.request_stop()
            await asyncio.wait_for(task, timeout=20)

    asyncio.run(scenario())


def test_a_daemon_without_kafka_exports_no_kafka_up() -> None:
    # A gauge at 0 on a daemon that never had Kafka would be a false alarm.
    daemon = Daemon(DaemonConfig(http=HttpConfig(port=0)))
    names = {family.name for family in daemon.engine.metrics.registry.collect()}
    assert "autoscaler_kafka_up" not in names


class DaemonProcess:
    """``autoscaler --log-json run`` as a process; every stderr line kept."""

    def __init__(self, config: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [str(CLI), "--log-json", "run", "--config", str(config), "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.lines: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_ready(f"http://127.0.0.1:{self.port}", self.process)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def get(self, path: str) -> str:
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines)]

    def wait(self, condition: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the daemon died"
            if condition():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}: {self.get('/healthz')!r}")

    def stop(self) -> int:
        self.process.terminate()
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=5)
        return code


def test_a_broker_outage_shows_in_health_and_metrics_and_clears_when_it_is_back(
    tmp_path: Path,
) -> None:
    base = tmp_path / "broker"
    env = devservices.start(["kafka"], base)
    try:
        bootstrap = env["KAFKA_BOOTSTRAP"]
        topic = f"outage-{uuid.uuid4().hex[:8]}"
        (tmp_path / "p.yaml").write_text(POLICY)
        config = tmp_path / "daemon.yaml"
        config.write_text(
            "policies: [p.yaml]\n"
            "tick_s: 0.2\n"
            f"kafka: {{bootstrap_servers: '{bootstrap}', topics: [{topic}], "
            f"group_id: g-{topic}, health_interval_s: 1}}\n"
        )
        produce_sync(bootstrap, topic, [started("prod/a", "a0")])
        daemon = DaemonProcess(config)
        try:
            daemon.wait(lambda: daemon.get("/healthz") == "ok\n", 60, "healthy")
            daemon.wait(
                lambda: metric(daemon.get("/metrics"), "autoscaler_kafka_up") == 1, 30, "up"
            )
            daemon.wait(
                lambda: 'autoscaler_kafka_lag{partition="' in daemon.get("/metrics"), 30, "lag"
            )

            outage = time.monotonic()
            devservices.stop(base)  # the broker goes away (SIGTERM: a clean shutdown)
            stopped_s = time.monotonic() - outage
            daemon.wait(lambda: "Kafka: brokers" in daemon.get("/healthz"), 30, "degraded")
            detected_s = time.monotonic() - outage
            health = daemon.get("/healthz")
            assert health.startswith(f"ok; degraded: Kafka: brokers {bootstrap} unreachable")
            text = daemon.get("/metrics")
            assert metric(text, "autoscaler_kafka_up") == 0
            assert "autoscaler_kafka_lag{" not in text  # no made-up 0
            time.sleep(10)  # let aiokafka complain for a while
            text = daemon.get("/metrics")
            # aiokafka retries by itself; its complaints are counted, by kind.
            for kind in ("connection", "fetch", "coordinator"):
                count = metric(text, f'autoscaler_kafka_errors_total{{kind="{kind}"}}')
                assert count is not None and count > 0, (kind, text)
            lines_during_outage = len(daemon.lines)

            restart_kafka(base)  # same port, same data
            daemon.wait(lambda: daemon.get("/healthz") == "ok\n", 90, "healthy again")
            assert metric(daemon.get("/metrics"), "autoscaler_kafka_up") == 1
            produce_sync(bootstrap, topic, [started("prod/a", "a1")])
            daemon.wait(
                lambda: any(
                    e.get("event") == "would scale" and e.get("replicas") == 2
                    for e in daemon.logs()
                ),
                60,
                "events after the outage",
            )
        finally:
            code = daemon.stop()
        assert code == 0
        # Every line is JSON, aiokafka's included, and its repetition is held back.
        logs = daemon.logs()
        from_client = [e for e in logs if str(e.get("logger", "")).startswith("aiokafka")]
        assert from_client, "aiokafka's complaints went missing"
        assert all(e["level"] in ("warning", "error", "critical") for e in from_client)
        assert lines_during_outage < 150, lines_during_outage
        print(
            f"broker stopped in {stopped_s:.1f}s, outage seen {detected_s:.1f}s after the stop "
            f"began; {lines_during_outage} stderr lines until the restart; aiokafka's: "
            f"{sorted({(e['logger'], e['event'][:50]) for e in from_client})}"
        )
    finally:
        devservices.stop(base)


@pytest.mark.parametrize(
    ("logger", "kind"),
    [
        ("aiokafka", "connection"),  # the client's own logger
        ("aiokafka.conn", "connection"),
        ("aiokafka.consumer.fetcher", "fetch"),
        ("aiokafka.consumer.group_coordinator", "coordinator"),
        ("aiokafka.producer.sender", "producer"),
        ("aiokafka.producer.producer", "producer"),
        ("aiokafka.cluster", "other"),
        ("aiokafka.coordinator.assignors.range", "other"),
    ],
)
def test_aiokafka_complaints_count_by_kind(logger: str, kind: str) -> None:
    assert error_kind(logger) == kind


@pytest.mark.parametrize(
    ("times", "allowed"),
    [
        # burst 2 per 10 s: the third and fourth line in a window are held back, and the
        # next line let through says how many were.
        ([0, 1, 2, 3], [0, 0, None, None]),
        ([0, 1, 2, 3, 10], [0, 0, None, None, 2]),
        ([0, 10, 20], [0, 0, 0]),
        ([0, 1, 2, 12, 13, 14, 25], [0, 0, None, 1, 0, None, 1]),
    ],
)
def test_the_throttle_lets_a_burst_through_and_counts_the_rest(
    times: list[float], allowed: list[int | None]
) -> None:
    now = [0.0]
    throttle = Throttle(burst=2, interval_s=10, clock=lambda: now[0])
    got = []
    for at in times:
        now[0] = at
        got.append(throttle.allow("key"))
    assert got == allowed


def test_standard_library_logs_are_json_lines_and_rate_limited(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("info", json=True)
    try:
        client = logging.getLogger("aiokafka")
        for _ in range(100):
            client.error("Unable connect to node with id %s: %s", 1, "refused")
        client.info("Joined group")  # below WARNING: aiokafka's chatter is off
        try:
            raise RuntimeError("boom\nsecond line")
        except RuntimeError:
            logging.getLogger("asyncio").exception("Task exception was never retrieved")
        structlog.get_logger("autoscaler.test").info("ours", n=1)
    finally:  # back to how the other tests of this process found logging
        root = logging.getLogger()
        root.handlers[:] = [h for h in root.handlers if type(h).__name__ != "_StderrHandler"]
        root.setLevel(logging.WARNING)
        for name in ("aiokafka", "kafka"):
            logging.getLogger(name).setLevel(logging.NOTSET)
        structlog.reset_defaults()
    lines = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines]  # every line is JSON
    unable = [r for r in records if r["event"].startswith("Unable connect")]
    assert len(unable) == 3  # the burst; the 97 others are held back
    assert unable[0] == {
        "event": "Unable connect to node with id 1: refused",
        "level": "error",
        "logger": "aiokafka",
        "timestamp": unable[0]["timestamp"],
    }
    assert not [r for r in records if r["event"] == "Joined group"]
    (crash,) = [r for r in records if r.get("logger") == "asyncio"]
    assert "RuntimeError: boom" in crash["exception"]
    (ours,) = [r for r in records if r["event"] == "ours"]
    assert ours["n"] == 1
