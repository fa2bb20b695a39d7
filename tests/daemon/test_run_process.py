"""`autoscaler run` as a real process: embedded defaults, JSON logs with reasons, its build
info in /metrics, SIGTERM drains and exits 0; a port in use is one line and exit 2."""

from __future__ import annotations

import json
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path

import pytest
from process_helpers import free_port, wait_ready

CLI = Path(sys.executable).with_name("autoscaler")


def test_embedded_defaults_decide_log_and_drain_on_sigterm() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(CLI), "--log-json", "run", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(url, process)
        events = [
            {
                "type": "request_started",
                "deployment": "default/llm",
                "ts": time.time(),
                "request_id": f"r{i}",
            }
            for i in range(12)
        ]
        request = urllib.request.Request(
            f"{url}/events",
            data=json.dumps(events).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 202
            assert json.loads(response.read())["decisions"][0]["replicas"] == 8
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            exposition = response.read().decode()
        # What runs, for dashboards and rollouts (issue 9).
        build_info = (
            f'autoscaler_build_info{{python="{platform.python_version()}",'
            f'version="{version("autoscaler")}"}} 1.0'
        )
        assert build_info in exposition.splitlines()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
    logs = [
        json.loads(line)
        for line in process.stderr.read().decode().splitlines()
        if line.startswith("{")
    ]
    scaled = [entry for entry in logs if entry.get("event") == "would scale"]
    assert scaled and scaled[0]["replicas"] == 8 and scaled[0]["reason"].startswith("slo:")
    assert any(entry.get("event") == "daemon stopped" for entry in logs)


def test_a_bad_policy_file_stops_the_start_with_the_error(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text(
        "defaults: {scale_down_delay_s: 0, policy: concurrency, "
        "min_replicas: 12, max_replicas: 10}\n"
    )
    result = subprocess.run(
        [str(CLI), "run", "--policies", str(bad), "--port", str(free_port())],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert (
        f"{bad}:1: defaults.min_replicas=12: must be <= max_replicas (10)" in result.stderr.decode()
    )


@pytest.mark.parametrize("taken_port", ["port", "metrics_port"])
def test_a_port_in_use_is_one_line_and_exit_2_not_a_traceback(
    tmp_path: Path, taken_port: str
) -> None:
    # Issue 9: a second `run` on a used port printed a 52-line ExceptionGroup traceback.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = {"port": free_port(), "metrics_port": free_port(), taken_port: port}
        config = tmp_path / "daemon.yaml"
        config.write_text(json.dumps({"http": ports}), encoding="utf-8")  # JSON is YAML
        result = subprocess.run(
            [str(CLI), "--log-json", "run", "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    # Everything else on stderr is the JSON log; the failure is one plain line.
    plain = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert plain == [f"cannot listen on 127.0.0.1:{port}: address already in use"]
