"""`autoscaler run` as a real process: embedded defaults, JSON logs with reasons, SIGTERM
drains and exits 0."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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
            assert json.loads(response.read())["decisions"][0]["replicas"] == 5
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
    assert scaled and scaled[0]["replicas"] == 5 and "concurrency:" in scaled[0]["reason"]
    assert any(entry.get("event") == "daemon stopped" for entry in logs)


def test_a_bad_policy_file_stops_the_start_with_the_error(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("defaults: {min_replicas: 12, max_replicas: 10}\n")
    result = subprocess.run(
        [str(CLI), "run", "--policies", str(bad), "--port", str(free_port())],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert (
        f"{bad}: defaults.min_replicas=12: must be <= max_replicas (10)" in result.stderr.decode()
    )
