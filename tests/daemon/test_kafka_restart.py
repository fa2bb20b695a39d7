"""A daemon killed mid-stream (SIGKILL: no drain, no lease release, uncommitted offsets) and
started again: the new process waits out the dead one's lease, loads its state from Redis,
re-reads the uncommitted events, and neither repeats a scale action nor flaps."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kafka_helpers import event, produce_sync
from process_helpers import free_port, wait_ready

CLI = Path(sys.executable).with_name("autoscaler")
LEASE_S = 3.0
DELAY_S = 8.0

POLICY = f"""
defaults:
  policy: concurrency
  min_replicas: 1
  max_replicas: 20
  parallelism: 1
  target_utilization: 1.0
  window_s: 4
  panic_window_s: 2
  scale_down_delay_s: {DELAY_S}
deployments:
  - match: prod/*
"""


class Daemon:
    """``autoscaler run`` as a process, its JSON log lines collected as they come."""

    def __init__(self, config: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [str(CLI), "--log-json", "run", "--config", str(config), "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.logs: list[dict[str, Any]] = []
        self.other: list[str] = []  # anything not a JSON log line (a traceback)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            wait_ready(f"http://127.0.0.1:{self.port}", self.process)
        except AssertionError as exc:
            self._reader.join(timeout=5)
            raise AssertionError(f"{exc}\n{self.logs}\n{''.join(self.other)}") from None

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if line.startswith(b"{"):
                self.logs.append(json.loads(line))
            else:
                self.other.append(line.decode(errors="replace"))

    def scaled(self) -> list[tuple[str, int, int]]:
        return [
            (e["deployment"], e["current"], e["replicas"])
            for e in list(self.logs)
            if e.get("event") == "would scale"
        ]

    def wait_for(self, want: set[tuple[str, int, int]], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if want <= set(self.scaled()):
                return
            assert self.process.poll() is None, "daemon died"
            time.sleep(0.05)
        raise AssertionError(f"wanted {want}, saw {self.scaled()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)
        self._reader.join(timeout=5)


def test_a_killed_daemon_restarts_without_repeating_or_undoing_a_step(
    services: dict[str, str], tmp_path: Path
) -> None:
    bootstrap = services["KAFKA_BOOTSTRAP"]
    topic = f"restart-{uuid.uuid4().hex[:8]}"
    (tmp_path / "p.yaml").write_text(POLICY)
    config = tmp_path / "daemon.yaml"
    config.write_text(
        json.dumps(
            {
                "policies": ["p.yaml"],
                "tick_s": 0.2,
                "kafka": {"bootstrap_servers": bootstrap, "topics": [topic], "group_id": topic},
                "redis_url": services["REDIS_URL"],
                "redis_namespace": f"{topic}:",
                "lease_s": LEASE_S,
            }
        )
    )
    # Long requests: 6 on prod/a and 3 on prod/b stay in flight across the restart.
    long_running = [event("request_started", "prod/a", f"a{i}") for i in range(6)]
    long_running += [event("request_started", "prod/b", f"b{i}") for i in range(3)]

    produce_sync(bootstrap, topic, long_running)  # creates the topic, before anyone subscribes
    first = Daemon(config)
    try:
        first.wait_for({("prod/a", 1, 6), ("prod/b", 1, 3)}, timeout_s=60)
        # Mid-stream: events keep arriving (one request on prod/c, within its one replica, so
        # no scale action races the kill), and the daemon dies without warning.
        produce_sync(bootstrap, topic, [event("request_started", "prod/c", "c0")])
        first.process.kill()
        first.process.wait(timeout=10)
    finally:
        first.stop()
    killed_at = time.monotonic()
    produce_sync(bootstrap, topic, [event("request_finished", "prod/c", "c0")])

    second = Daemon(config)
    try:
        # The old lease must run out before the new process may act; then it carries on from
        # the saved state and, a little later, the load ends.
        time.sleep(max(0.0, killed_at + LEASE_S + 1.5 - time.monotonic()))
        produce_sync(
            bootstrap, topic, [event("request_finished", "prod/a", f"a{i}") for i in range(6)]
        )
        load_ended = time.monotonic()
        second.wait_for({("prod/a", 6, 1)}, timeout_s=DELAY_S + 30)
        scaled_down_after = time.monotonic() - load_ended
        time.sleep(3)  # prod/b's delay would be over too, had its requests been forgotten
        held = [e for e in second.logs if e.get("event") == "state loaded"]
    finally:
        second.stop()

    assert first.scaled() == [("prod/a", 1, 6), ("prod/b", 1, 3)]
    # The restarted daemon made exactly one change: the scale-down once the delay had passed.
    # It did not scale prod/a or prod/b up a second time from the floor, and never went down
    # and back up (flapping) while the long requests were still running.
    assert second.scaled() == [("prod/a", 6, 1)]
    assert scaled_down_after >= DELAY_S - 1.0
    # The commit never passed a running request's start, so the new process re-read both
    # deployments' requests, loaded their saved state, and kept prod/b at 3 (its 3 requests
    # are still running), instead of scaling it down as idle.
    assert {e["deployment"] for e in held} >= {"prod/a", "prod/b"}
