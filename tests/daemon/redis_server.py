"""A redis-server of a test's own, started the way devtools.services starts the shared one but
with extra arguments (``--requirepass``, ``--user``): a real server on a free loopback port,
stopped after the test. One that does not come up fails the test with its log."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from devtools.processes import ServiceError, free_port, spawn, stop_process_groups, tail
from devtools.services import ensure_debian_packages


@contextmanager
def redis_server(
    work: Path, *args: str, tls: tuple[Path, Path, Path] | None = None
) -> Iterator[int]:
    """Run ``redis-server`` with ``args`` added; yields its port. With ``tls`` (CA, server
    certificate, server key) it answers on that port over TLS only."""
    try:
        ensure_debian_packages({"redis-server": "redis-server"})
    except ServiceError as exc:
        pytest.fail(f"redis-server is not installed: {exc}", pytrace=False)
    port = free_port()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "redis.log"
    listen = ["--port", str(port)]
    if tls is not None:
        ca, cert, key = (str(path) for path in tls)
        listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", cert]
        listen += ["--tls-key-file", key, "--tls-ca-cert-file", ca, "--tls-auth-clients", "no"]
    argv = ["redis-server", "--bind", "127.0.0.1", *listen, "--save", ""]
    process = spawn([*argv, "--appendonly", "no", "--dir", str(work), *args], log, work)
    try:
        deadline = time.monotonic() + 30
        while not _answers(port, tls[0] if tls else None):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start; its log:\n{tail(log)}", pytrace=False)
            time.sleep(0.1)
        yield port
    finally:
        stop_process_groups([process.pid])


def _answers(port: int, ca: Path | None) -> bool:
    """Whether something speaking RESP listens (an auth error is an answer too)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
            conn = raw
            if ca is not None:
                conn = ssl.create_default_context(cafile=str(ca)).wrap_socket(
                    raw, server_hostname="127.0.0.1"
                )
            conn.sendall(b"PING\r\n")
            reply = conn.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH"))
