"""Fuzz: HTTP bodies against a real ``autoscaler run`` process on loopback (issue 9, items
1, 2 and 4, and "a rerun of the probes gives 0 crashes, 0 stalls over 1 s and 0 uncounted
5xx; RSS stays under the pod limit").

The daemon runs as its own process so that its RSS (``VmHWM``, the peak) and its log volume
are its own. Every body, fuzzed or from the corpus of the issue's inputs, must be answered
within a second without a 5xx, with counts that add up; ``/healthz`` must keep answering,
and while the big bodies are processed it is probed concurrently and must never take a
second.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CLI = Path(sys.executable).with_name("autoscaler")
POD_LIMIT_BYTES = 512 * 2**20
MAX_DEPTH = 16
MAX_EVENTS = 10_000
NAMES = [f"fuzz/d{i}" for i in range(5)]


@dataclass
class Daemon:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def status(self, key: str) -> int:
        """A ``/proc/PID/status`` size in bytes (VmHWM: the peak RSS)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {key} in /proc/{self.process.pid}/status")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _start(tmp: Path, config: str = "") -> Iterator[Daemon]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    config_file = tmp / "daemon.yaml"
    config_file.write_text(config or "tick_s: 2\n")
    log = tmp / "daemon.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(CLI), "--log-json", "run", "--port", str(port), "--config", str(config_file)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "daemon never became ready"
                time.sleep(0.05)
        yield Daemon(url, process, log)
        assert process.poll() is None, "the daemon died"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    with tempfile.TemporaryDirectory() as tmp, _start(Path(tmp)) as running:
        yield running


async def _send(url: str, body: bytes) -> tuple[int, dict[str, Any], float]:
    async with aiohttp.ClientSession() as http:
        begun = time.perf_counter()
        async with http.post(f"{url}/events", data=body) as response:
            answer = await response.json(content_type=None)
            elapsed = time.perf_counter() - begun
        async with http.get(f"{url}/healthz", timeout=aiohttp.ClientTimeout(total=1)) as health:
            assert health.status == 200
        return response.status, answer, elapsed


def post(daemon: Daemon, body: bytes) -> tuple[int, dict[str, Any]]:
    """Send ``body``; check what holds for every body whatever it is."""
    status, answer, elapsed = asyncio.run(_send(daemon.url, body))
    assert status in (202, 400, 413), (status, answer)
    assert elapsed < 1.0, elapsed
    counts = [answer[key] for key in ("accepted", "ignored", "rejected", "unmanaged")]
    assert all(isinstance(n, int) and n >= 0 for n in counts), answer
    assert sum(answer["reasons"].values()) == answer["rejected"], answer
    assert sum(answer["outcomes"].values()) == answer["accepted"] + answer["ignored"], answer
    assert (status == 202) == (answer["accepted"] + answer["ignored"] > 0 or not answer["rejected"])
    return status, answer


def total(answer: dict[str, Any]) -> int:
    return sum(answer[key] for key in ("accepted", "ignored", "rejected", "unmanaged"))


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


# -- fuzzed bodies ---------------------------------------------------------------------------

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=40,
)


@FUZZ
@given(raw=st.binary(max_size=4000))
def test_arbitrary_bytes(daemon: Daemon, raw: bytes) -> None:
    _, answer = post(daemon, raw)
    if total(answer) == 0:
        assert json.loads(raw) == []  # only an empty array holds nothing to count


@FUZZ
@given(value=_json)
def test_json_structures_are_counted_element_by_element(daemon: Daemon, value: Any) -> None:
    _, answer = post(daemon, json.dumps(value).encode())
    if _depth(value) > MAX_DEPTH:
        assert answer["reasons"] == {"too_deep": 1}
    elif isinstance(value, list):
        assert total(answer) == len(value), answer
    else:
        assert total(answer) == 1, answer


def _event(kind: str, name: str, ts: float) -> dict[str, Any]:
    event: dict[str, Any] = {"type": kind, "deployment": name, "ts": ts}
    if kind in ("request_started", "request_finished"):
        event["request_id"] = uuid.uuid4().hex
    else:
        event["value"] = 1
    if kind == "concurrency":
        event["replica"] = "pod-0"
    if kind == "signal":
        event["name"] = "rate"
    return event


_kinds = st.sampled_from(["request_started", "queue_length", "concurrency", "signal"])
_junk_values = _scalars | st.lists(_scalars, max_size=3) | st.just("\ud800") | st.just(-1)


@st.composite
def _batches(draw: st.DrawFn) -> tuple[list[Any], int, int, int]:
    """Events: (batch, valid starts, skewed ones, broken ones)."""
    now = time.time()
    batch: list[Any] = []
    starts = skewed = broken = 0
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(_kinds)
        event = _event(kind, draw(st.sampled_from(NAMES)), now)
        choice = draw(st.sampled_from(["ok", "skewed", "broken"]))
        if choice == "skewed":
            event["ts"] = draw(st.sampled_from([1.0, now + 365 * 86400, 1e10, now - 3600]))
            skewed += 1
        elif choice == "broken":
            key = draw(st.sampled_from(sorted(event)))
            event[key] = draw(_junk_values)
            if key == "type" and event[key] in ("request_started", "request_finished", "signal"):
                event[key] = None
            broken += 1
        elif kind == "request_started":
            starts += 1
        batch.append(event)
    return batch, starts, skewed, broken


@FUZZ
@given(drawn=_batches())
def test_event_batches_count_exactly(
    daemon: Daemon, drawn: tuple[list[Any], int, int, int]
) -> None:
    batch, starts, skewed, broken = drawn
    body = json.dumps(batch).encode()
    _, answer = post(daemon, body)
    if b'"\\ud800"' in body:
        # Not JSON at all (a lone surrogate): the body cannot be split, it is refused whole.
        assert answer["reasons"] == {"invalid_json": 1}, answer
        return
    assert total(answer) == len(batch)
    assert answer["reasons"].get("skewed", 0) >= skewed
    assert answer["rejected"] <= skewed + broken
    # Every valid start is new (unique ids), so applied; samples may be stale behind others.
    assert answer["outcomes"].get("applied", 0) >= starts
    assert answer["accepted"] + answer["ignored"] >= len(batch) - skewed - broken


@FUZZ
@given(
    depth=st.integers(0, 5000),
    opener=st.sampled_from([b"[", b'{"a":', b'[{"a":']),
    closed=st.booleans(),
    prefix=st.sampled_from([b"", b'{"type": "queue_length", "x": ', b"[1, "]),
)
def test_deep_nesting(
    daemon: Daemon, depth: int, opener: bytes, closed: bool, prefix: bytes
) -> None:
    closer = {b"[": b"]", b'{"a":': b"}", b'[{"a":': b"}]"}[opener]
    body = prefix + opener * depth + b"1" + (closer * depth if closed else b"")
    if prefix:
        body += b"}" if prefix.startswith(b"{") else b"]"
    _, answer = post(daemon, body)
    levels = depth * (2 if opener == b'[{"a":' else 1) + (1 if prefix else 0)
    if levels > MAX_DEPTH:
        assert answer["reasons"] == {"too_deep": 1}, answer


_unicode = st.lists(
    st.characters(codec="utf-8")
    | st.sampled_from(["\\ud800", "\\udc00", "\\u0000", "\\ud800\\udc00", "\\", "\\u12"]),
    max_size=30,
).map("".join)


@FUZZ
@given(text=_unicode, raw=st.binary(max_size=8))
def test_unicode_in_every_field(daemon: Daemon, text: str, raw: bytes) -> None:
    event = _event("queue_length", NAMES[0], time.time())
    body = json.dumps(event).encode()
    for field in (b'"deployment": "fuzz/d0"', b'"type": "queue_length"'):
        key = field.split(b":")[0]
        for value in (text.encode("utf-8", "surrogatepass"), raw):
            mutated = body.replace(field, key + b': "' + value.replace(b'"', b"") + b'"')
            _, answer = post(daemon, mutated)
            assert total(answer) == 1


# -- the corpus: the inputs ----------------------------------------------------------


def _events_body(count: int, pad_bytes: int = 0) -> bytes:
    now = time.time()
    pad = "x" * pad_bytes
    events = [
        {**_event("request_started", NAMES[i % len(NAMES)], now), "pad": pad} for i in range(count)
    ]
    return json.dumps(events).encode()


CORPUS: list[tuple[str, bytes | None, int, dict[str, int] | None]] = [
    # name, body (None: built in the test, it is big), status, reasons
    ("1,000 levels, 2 KB", b"[" * 1000 + b"]" * 1000, 400, {"too_deep": 1}),
    ("1,000 object levels", b'{"a":' * 1000 + b"1" + b"}" * 1000, 400, {"too_deep": 1}),
    ("lone surrogate", b'"\\ud800"', 400, {"invalid_json": 1}),
    ("invalid utf-8", b'{"type": "queue_length", "deployment": "\xff"}', 400, {"invalid_json": 1}),
    ("ts one year ahead", None, 400, {"skewed": 1}),
    ("ts 1 (1970)", None, 400, {"skewed": 1}),
    ("start in 2286", None, 400, {"skewed": 1}),
    ("8 MiB of [{}, ...]", None, 413, {"too_many": 1}),
    ("8 MiB of deep brackets", b"[" * (8 * 2**20 - 16), 400, {"too_deep": 1}),
    ("10,000 events in 8 MiB", None, 202, None),
    ("10,001 events", None, 413, {"too_many": 1}),
]


def _corpus_body(name: str) -> bytes:
    now = time.time()
    if name.startswith("ts") or name.startswith("start"):
        ts = {"ts one year ahead": now + 365 * 86400, "ts 1 (1970)": 1.0}.get(name, 1e10)
        return json.dumps(_event("request_started", NAMES[0], ts)).encode()
    if name == "8 MiB of [{}, ...]":
        return b"[" + b"{}," * 2_796_000 + b"{}]"
    if name == "10,000 events in 8 MiB":
        body = _events_body(MAX_EVENTS, pad_bytes=640)
        assert 7 * 2**20 < len(body) <= 8 * 2**20
        return body
    if name == "10,001 events":
        return _events_body(MAX_EVENTS + 1)
    raise AssertionError(name)


async def _with_probe(url: str, body: bytes) -> tuple[int, dict[str, Any], float, float]:
    """Post ``body`` while /healthz is probed every 20 ms; the slowest probe's latency is how
    long the loop was blocked at most."""
    async with aiohttp.ClientSession() as http:
        latencies: list[float] = []
        stop = asyncio.Event()

        async def probe() -> None:
            while not stop.is_set():
                begun = time.perf_counter()
                async with http.get(f"{url}/healthz") as response:
                    assert response.status == 200
                latencies.append(time.perf_counter() - begun)
                await asyncio.sleep(0.02)

        prober = asyncio.create_task(probe())
        await asyncio.sleep(0.05)
        begun = time.perf_counter()
        async with http.post(f"{url}/events", data=body) as response:
            answer = await response.json()
        elapsed = time.perf_counter() - begun
        stop.set()
        await prober
        return response.status, answer, elapsed, max(latencies)


@pytest.mark.parametrize(
    ("name", "body", "status", "reasons"), CORPUS, ids=[name for name, *_ in CORPUS]
)
def test_corpus(
    daemon: Daemon, name: str, body: bytes | None, status: int, reasons: dict[str, int] | None
) -> None:
    raw = body if body is not None else _corpus_body(name)
    got, answer, elapsed, blocked = asyncio.run(_with_probe(daemon.url, raw))
    assert got == status, answer
    if reasons is not None:
        assert answer["reasons"] == reasons and answer["accepted"] == 0, answer
    else:
        assert answer["accepted"] == MAX_EVENTS, answer
    assert elapsed < 1.5, elapsed  # the upload of 8 MiB included
    assert blocked < 1.0, blocked
    assert daemon.status("VmHWM") < POD_LIMIT_BYTES


def test_rss_and_logs_stay_small_after_the_corpus(daemon: Daemon) -> None:
    """Runs after the corpus (file order): the 8 MiB bodies did not take the daemon's peak
    RSS to the pod's limit, nor write a log line per element."""
    for _ in range(3):
        post(daemon, b"[" + b"{}," * 2_796_000 + b"{}]")
        post(daemon, b"[" + b"1," * 9_999 + b"1]")  # 10,000 rejected elements, within limits
    peak = daemon.status("VmHWM")
    assert peak < POD_LIMIT_BYTES, peak
    log_bytes = os.path.getsize(daemon.log)
    assert log_bytes < 2 * 2**20, log_bytes
    with urllib.request.urlopen(f"{daemon.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    rejected = [
        line for line in text.splitlines() if line.startswith("autoscaler_events_rejected_total{")
    ]
    counted = {line.split('"')[1]: float(line.split()[-1]) for line in rejected}
    assert counted["too_many"] >= 3 and counted["invalid_event"] >= 30_000, counted
    assert "autoscaler_http_errors_total{" not in text  # no 5xx at all


def test_made_up_names_keep_metrics_bounded(tmp_path: Path) -> None:
    """The issue: 20,000 made-up names grew /metrics to 6.5 MB (1.6 s a scrape)."""
    config = "tick_s: 0.5\nlimits: {max_deployments: 1000}\n"
    with _start(tmp_path, config) as running:
        now = time.time()
        for start in range(0, 20_000, 5000):
            names = [f"junk/n{i:05d}" for i in range(start, start + 5000)]
            body = json.dumps([_event("queue_length", n, now) for n in names]).encode()
            _, answer = post(running, body)
            assert answer["accepted"] + answer["rejected"] == 5000
        time.sleep(1.5)  # a few ticks decide the 1,000
        begun = time.perf_counter()
        with urllib.request.urlopen(f"{running.url}/metrics", timeout=5) as response:
            size = len(response.read())
        scrape_s = time.perf_counter() - begun
        assert "autoscaler_deployments_tracked 1000.0" in _metrics(running)
        assert size < 600_000, size  # about 400 bytes a deployment
        assert scrape_s < 0.5, scrape_s
        assert running.status("VmHWM") < POD_LIMIT_BYTES
        assert math.isfinite(scrape_s)


def _metrics(daemon: Daemon) -> str:
    with urllib.request.urlopen(f"{daemon.url}/metrics", timeout=5) as response:
        return str(response.read().decode())
