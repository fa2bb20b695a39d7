"""Watches policy files and swaps in a new version only once it validates in full.

Kubernetes updates a mounted ConfigMap by pointing a ``..data`` symlink at a new folder, so
file mtimes alone can miss a change: the signature also takes each file's resolved path.
Polling (every ``reload_interval_s``) works the same on every filesystem and mount.

Nothing in a file can stop the daemon: any failure to load (bad YAML, a limit, and any
exception at all) rejects that version, keeps the policies in force and counts
``autoscaler_policy_reloads_total{result="rejected"}``; a swap that fails half-way is undone.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import structlog

from autoscaler.config.loader import (
    PolicyFileError,
    PolicySet,
    Problem,
    load_policies,
    policy_files,
)
from autoscaler.daemon.engine import Engine

log = structlog.get_logger("autoscaler.reload")

Signature = tuple[tuple[str, str, int, int], ...]

MAX_LOGGED_PROBLEMS = 50
"""Per rejected version; the rest are counted in one line (each problem line is capped)."""


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
        try:
            current = await asyncio.to_thread(signature, self.paths)
        except Exception as exc:  # a folder vanishing mid-listing: look again next time
            log.warning("cannot list policy files", error=f"{type(exc).__name__}: {exc}")
            return None
        if current == self._signature:
            return None
        self._signature = current
        old = self.engine.policies
        try:
            policies: PolicySet = await asyncio.to_thread(
                load_policies, self.paths, allowed_imports=old.allowed_imports
            )
        except PolicyFileError as exc:
            return self._reject(exc.problems)
        except Exception as exc:
            # The loader turns bad input into problems; anything else is still no reason to
            # stop deciding with the policies in force.
            reason = f"cannot load policies: {type(exc).__name__}: {exc}"[:500]
            return self._reject([Problem("<policies>", "", None, reason)])
        try:
            dropped = self.engine.swap_policies(policies)
        except Exception as exc:
            self._restore(old)
            reason = f"swap failed: {type(exc).__name__}: {exc}"[:500]
            return self._reject([Problem("<policies>", "", None, reason)])
        for name in dropped:  # no longer managed: let go of their leases too
            try:
                await self.engine.leases.release(name)
            except Exception as exc:  # it expires on its own; the swap stands
                log.warning("cannot release lease", deployment=name, error=str(exc)[:200])
        self.engine.metrics.policy_reloads.labels("ok").inc()
        log.info("policies reloaded", files=list(policies.files), rules=len(policies.rules))
        return True

    def _reject(self, problems: Sequence[Problem]) -> bool:
        self.engine.metrics.policy_reloads.labels("rejected").inc()
        for problem in problems[:MAX_LOGGED_PROBLEMS]:
            log.error("policy reload rejected; previous policies stay", problem=str(problem))
        if len(problems) > MAX_LOGGED_PROBLEMS:
            log.error(
                "policy reload rejected; more problems not logged",
                more=len(problems) - MAX_LOGGED_PROBLEMS,
            )
        return False

    def _restore(self, old: PolicySet) -> None:
        try:
            self.engine.swap_policies(old)
        except Exception as exc:
            log.error("cannot restore the previous policies", error=str(exc)[:500])
        # Whatever the swap got to, the set in force is the old one.
        self.engine.policies = old

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)
            except TimeoutError:
                try:
                    await self.check()
                except Exception as exc:  # check() contains its failures; this is the backstop
                    log.error("policy check failed", error=f"{type(exc).__name__}: {exc}"[:500])
