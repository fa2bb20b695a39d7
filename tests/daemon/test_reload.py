"""Policy hot reload: a valid version is swapped in whole, an invalid one is rejected and the
previous policies stay; a ConfigMap-style symlink swap is noticed."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from autoscaler.adapters.dry_run import DryRunActuator
from autoscaler.adapters.memory_state import InMemoryStateStore, LocalLeases
from autoscaler.config.loader import PolicySet, load_policies
from autoscaler.core.events import RequestStarted
from autoscaler.daemon import reload
from autoscaler.daemon.engine import Engine
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.reload import PolicyWatcher

T0 = 1_800_000_000.0
GOOD = (
    "defaults: {policy: concurrency, scale_down_delay_s: 0, "
    "parallelism: 1, target_utilization: 1, max_replicas: %d}\n"
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
        leases=LocalLeases(),
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


# --- issue 9, item 5: no file (and no failure) takes the daemon down on reload -----------


def alias_bomb() -> str:
    lines = ["defaults: {max_replicas: 3}", "deployments:", "  - match: prod/*", "    params:"]
    lines.append("      l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]")
    for level in range(1, 10):
        lines.append(f"      l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


BAD_VERSIONS = [
    pytest.param(
        ("defaults:\n  params: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
        "nested deeper than 64 levels",
        id="nested-5000-deep",  # RecursionError killed the daemon
    ),
    pytest.param(
        ("defaults:\n  max_replicas: " + "9" * 4301 + "\n").encode(),
        "number longer than 100 characters",
        id="int-of-4301-digits",  # ValueError killed the daemon
    ),
    pytest.param(alias_bomb().encode(), "alias bomb", id="billion-laughs"),  # MemoryError
    pytest.param(
        b"defaults: {max_replicas: 4, max_replicas: 5}\ndeployments: [{match: prod/*}]\n",
        "duplicate key",
        id="duplicate-key",
    ),
    pytest.param(b"defaults: {max_replicas: \xff}\n", "not UTF-8", id="not-utf8"),
    pytest.param(b"#" * 300_000, "larger than 262144 bytes", id="too-big"),
]


def rejected(engine: Engine) -> float:
    return float(engine.metrics.policy_reloads.labels("rejected")._value.get())


@pytest.mark.parametrize(("content", "logged"), BAD_VERSIONS)
def test_hostile_version_is_rejected_and_the_old_policies_stay(
    tmp_path: Path, content: bytes, logged: str, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(GOOD % 4)
    engine, watcher, actuator = build([tmp_path])
    before = engine.policies
    policy.write_bytes(content)
    bump_mtime(policy)
    started = time.perf_counter()
    assert asyncio.run(watcher.check()) is False
    assert time.perf_counter() - started < 1.0
    assert engine.policies is before
    assert rejected(engine) == 1
    assert logged in capsys.readouterr().out
    burst(engine, 9)
    assert actuator.replicas["prod/a"] == 4  # still decided by the old version
    # A good version after the bad one is taken as usual.
    policy.write_text(GOOD % 6)
    bump_mtime(policy)
    assert asyncio.run(watcher.check()) is True


@pytest.mark.parametrize(
    "error",
    [
        RecursionError("deep"),
        MemoryError(),
        ValueError("Exceeds the limit (4300 digits)"),
        RuntimeError("bug"),
    ],
    ids=["RecursionError", "MemoryError", "ValueError", "RuntimeError"],
)
def test_any_failure_to_load_is_a_rejection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    # The loader turns bad input into problems; should anything else still escape it, the
    # watcher must not pass it on to the daemon's task group.
    policy = tmp_path / "p.yaml"
    policy.write_text(GOOD % 4)
    engine, watcher, _ = build([tmp_path])
    before = engine.policies

    def failing(*args: object, **kwargs: object) -> object:
        raise error

    monkeypatch.setattr(reload, "load_policies", failing)
    policy.write_text(GOOD % 6)
    bump_mtime(policy)
    assert asyncio.run(watcher.check()) is False
    assert engine.policies is before
    assert rejected(engine) == 1


def test_a_swap_that_fails_is_undone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(GOOD % 4)
    engine, watcher, actuator = build([tmp_path])
    before = engine.policies
    real_swap = engine.swap_policies
    calls: list[PolicySet] = []

    def swap_then_fail(policies: PolicySet) -> list[str]:
        calls.append(policies)
        if len(calls) == 1:
            real_swap(policies)  # half-way: the deployments were resettled, then it failed
            raise RuntimeError("swap failed")
        return real_swap(policies)

    monkeypatch.setattr(engine, "swap_policies", swap_then_fail)
    policy.write_text(GOOD % 6)
    bump_mtime(policy)
    assert asyncio.run(watcher.check()) is False
    assert engine.policies is before
    assert calls[-1] is before  # the old set was put back
    assert rejected(engine) == 1
    burst(engine, 9)
    assert actuator.replicas["prod/a"] == 4
