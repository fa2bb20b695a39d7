"""Policy hot reload: a valid version is swapped in whole, an invalid one is rejected and the
previous policies stay; a ConfigMap-style symlink swap is noticed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from autoscaler.adapters.dry_run import DryRunActuator
from autoscaler.adapters.memory_state import InMemoryStateStore
from autoscaler.config.loader import load_policies
from autoscaler.core.events import RequestStarted
from autoscaler.daemon.engine import Engine
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.reload import PolicyWatcher

T0 = 1_800_000_000.0
GOOD = (
    "defaults: {parallelism: 1, target_utilization: 1, max_replicas: %d}\n"
    "deployments: [{match: prod/*}]\n"
)


def build(paths: list[Path]) -> tuple[Engine, PolicyWatcher, DryRunActuator]:
    actuator = DryRunActuator()
    engine = Engine(
        load_policies(paths),
        actuator,
        InMemoryStateStore(),
        DaemonMetrics(),
        lambda: T0,
        decide_unmatched=False,
    )
    return engine, PolicyWatcher(paths, engine, interval_s=0.01), actuator


def burst(engine: Engine, count: int) -> None:
    events = [RequestStarted(deployment="prod/a", ts=T0, request_id=f"r{i}") for i in range(count)]
    asyncio.run(engine.ingest(events, T0))
    asyncio.run(engine.tick())


def bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_valid_change_is_swapped_in(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(GOOD % 4)
    engine, watcher, actuator = build([tmp_path])
    burst(engine, 9)
    assert actuator.replicas["prod/a"] == 4
    policy.write_text(GOOD % 6)
    bump_mtime(policy)
    assert asyncio.run(watcher.check()) is True
    asyncio.run(engine.tick())
    assert actuator.replicas["prod/a"] == 6
    assert engine.metrics.policy_reloads.labels("ok")._value.get() == 1
    assert asyncio.run(watcher.check()) is None  # nothing changed since


def test_invalid_change_is_rejected_and_the_old_policies_stay(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(GOOD % 4)
    engine, watcher, actuator = build([tmp_path])
    before = engine.policies
    policy.write_text("defaults: {min_replicas: 12, max_replicas: 10}\n")
    bump_mtime(policy)
    assert asyncio.run(watcher.check()) is False
    assert engine.policies is before
    assert engine.metrics.policy_reloads.labels("rejected")._value.get() == 1
    burst(engine, 9)
    assert actuator.replicas["prod/a"] == 4


def test_configmap_symlink_swap_is_noticed(tmp_path: Path) -> None:
    # The layout kubelet writes: name -> ..data/name, ..data -> ..<timestamp>/
    mount = tmp_path / "mount"
    mount.mkdir()
    first, second = mount / "..2026_11_23_1", mount / "..2026_11_23_2"
    first.mkdir()
    second.mkdir()
    (first / "p.yaml").write_text(GOOD % 4)
    (second / "p.yaml").write_text(GOOD % 2)
    os.symlink(first.name, mount / "..data")
    os.symlink("..data/p.yaml", mount / "p.yaml")
    engine, watcher, actuator = build([mount])
    burst(engine, 9)
    assert actuator.replicas["prod/a"] == 4
    os.symlink(second.name, mount / "..data_tmp")
    os.replace(mount / "..data_tmp", mount / "..data")  # the atomic swap
    assert asyncio.run(watcher.check()) is True
    asyncio.run(engine.tick())
    assert actuator.replicas["prod/a"] == 2
