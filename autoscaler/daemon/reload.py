"""Watches policy files and swaps in a new version only once it validates in full.

Kubernetes updates a mounted ConfigMap by pointing a ``..data`` symlink at a new folder, so
file mtimes alone can miss a change: the signature also takes each file's resolved path.
Polling (every ``reload_interval_s``) works the same on every filesystem and mount.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import structlog

from autoscaler.config.loader import PolicyFileError, PolicySet, load_policies, policy_files
from autoscaler.daemon.engine import Engine

log = structlog.get_logger("autoscaler.reload")

Signature = tuple[tuple[str, str, int, int], ...]


def signature(paths: Sequence[Path]) -> Signature:
    entries = []
    for path in policy_files(paths):
        try:
            real = os.path.realpath(path)
            stat = os.stat(real)
        except OSError:
            entries.append((str(path), "", -1, -1))
            continue
        entries.append((str(path), real, stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


class PolicyWatcher:
    def __init__(self, paths: Sequence[Path], engine: Engine, interval_s: float) -> None:
        self.paths = list(paths)
        self.engine = engine
        self.interval_s = interval_s
        self._signature = signature(self.paths)

    async def check(self) -> bool | None:
        """Reload if the files changed: True on a swap, False on a rejected version, None
        when nothing changed."""
        current = await asyncio.to_thread(signature, self.paths)
        if current == self._signature:
            return None
        self._signature = current
        try:
            policies: PolicySet = await asyncio.to_thread(load_policies, self.paths)
        except PolicyFileError as exc:
            self.engine.metrics.policy_reloads.labels("rejected").inc()
            for problem in exc.problems:
                log.error("policy reload rejected; previous policies stay", problem=str(problem))
            return False
        dropped = self.engine.swap_policies(policies)
        for name in dropped:  # no longer managed: let go of their leases too
            await self.engine.leases.release(name)
        self.engine.metrics.policy_reloads.labels("ok").inc()
        log.info("policies reloaded", files=list(policies.files), rules=len(policies.rules))
        return True

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
            except TimeoutError:
                await self.check()
