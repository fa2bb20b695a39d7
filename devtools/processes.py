"""Process helpers shared by the service starters (``devtools.services``) and the Kubernetes
control plane (``devtools.kube_cluster``): free ports, process groups of their own, readiness
waits that fail with the log's tail, and stopping by process group.

They live apart so that both can import them and ``services`` can import ``kube_cluster``
without a cycle.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class ServiceError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_ready(
    check: Callable[[], bool],
    what: str,
    log: Path,
    process: subprocess.Popen[bytes],
    timeout_s: float,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"{what} exited with {process.returncode}; its log:\n{tail(log)}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise ServiceError(f"{what} not ready after {timeout_s:.0f}s; its log:\n{tail(log)}")


def spawn(
    argv: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own (so stop() can end it and its children by
    process group), output appended to ``log``."""
    handle = log.open("ab")
    return subprocess.Popen(
        argv, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True
    )


def _gone(pid: int, timeout_s: float) -> bool:
    """Wait for ``pid`` to exit. A child of this process is reaped (a zombie still "exists"
    for kill(pid, 0)); another process's child is polled."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] != 0:
                return True
        except ChildProcessError:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return True
        time.sleep(0.05)
    return False


def stop_process_groups(pids: list[int], timeout_s: float = 10) -> None:
    """SIGTERM the process groups the ``pids`` lead, all at once; SIGKILL those still there
    after ``timeout_s``."""
    alive = []
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
            alive.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    deadline = time.monotonic() + timeout_s
    for pid in alive:
        if _gone(pid, timeout_s=max(0.0, deadline - time.monotonic())):
            continue
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        _gone(pid, timeout_s=5)
