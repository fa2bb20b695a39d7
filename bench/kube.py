"""Kubernetes reaction benchmark: an event produced into Kafka -> the scale patch it causes
accepted by the API server, with 1,000 managed Deployments; and the API requests per second
the daemon spends at steady load.

Everything is real and on loopback: ``devtools.services`` starts Kafka, Redis and the control
plane (etcd, kube-apiserver, controller-manager, scheduler, KWOK nodes) in a folder of its
own; the benchmark creates the Deployments (one KWOK pod each) and runs ``autoscaler run
--config`` as a child process (Kafka source, Redis state and leases, Kubernetes actuator with
its default 20 QPS / burst 40 budget). A second child process produces background traffic
for every deployment; the probes are produced from this process, which also watches the
Deployments itself: a probe's latency runs from just before its event is handed to the
producer to the moment this process's own watch shows the new ``spec.replicas``. That is an
upper bound on "patch accepted": it adds the watch's delivery to the benchmark.

    python -m bench.run --only kube --out BENCHMARKS.md
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from bench.common import quantile, rss_mib
from bench.common import splice as splice_section

SECTION_START = "<!-- bench:kube:start -->"
SECTION_END = "<!-- bench:kube:end -->"
NAMESPACE = "bench"
P99_TARGET_S = 0.500
QPS_BUDGET = 20.0
PROBE_QUEUE = 15  # 15 queued at 5 per replica: 1 -> 3 replicas

POLICY = """\
# The queue policy, as KEDA's scalers: replicas = ceil(backlog / 5), no averaging window, so a
# reported backlog turns into a decision at once and the latency measured is the plumbing's.
defaults:
  policy: queue
  min_replicas: 1
  max_replicas: 10
  parallelism: 5
  target_utilization: 1
deployments:
  - match: bench/*
"""


@dataclass(frozen=True)
class KubeSizes:
    deployments: int = 1000
    probes: int = 200
    probe_interval_s: float = 0.25
    steady_s: float = 60.0
    background_eps: float = 1000.0
    partitions: int = 8


FULL = KubeSizes()
QUICK = KubeSizes(deployments=50, probes=20, probe_interval_s=0.2, steady_s=10.0)


@dataclass
class KubeRun:
    sizes: KubeSizes
    quick: bool
    facts: dict[str, str] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None


def _names(count: int) -> list[str]:
    return [f"model-{i:04d}" for i in range(count)]


def _scrape(port: int) -> dict[str, float]:
    """The daemon's /metrics, summed per metric name + sorted labels string."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        with suppress(ValueError):
            samples[name] = float(value)
    return samples


def _sum(samples: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in samples.items() if k.startswith(prefix))


def _histogram_quantile(samples: dict[str, float], name: str, q: float) -> float:
    """Upper bound of the bucket holding quantile ``q`` of a Prometheus histogram."""
    buckets: list[tuple[float, float]] = []
    for key, value in samples.items():
        if key.startswith(name + "_bucket{"):
            bound = key.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    for edge, count in buckets:
        if total and count >= q * total:
            return edge
    return float("nan")


# -- background traffic (a child process) ----------------------------------------------------


async def _background(bootstrap: str, topic: str, deployments: int, eps: float, seed: int) -> None:
    """Short requests (a start, and its finish 50 ms later) for every deployment in turn,
    ``eps`` events a second in all, until killed. A replica takes 5 at once, so they cause no
    scaling, only work for the daemon; and they add to a probe's backlog instead of
    replacing it (a queue-length report would)."""
    from collections import deque

    from aiokafka import AIOKafkaProducer

    names = [f"{NAMESPACE}/{n}" for n in _names(deployments)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
    await producer.start()
    running: deque[tuple[float, str, str]] = deque()  # (finish at, deployment, request id)
    try:
        start = time.monotonic()
        sent = 0
        while True:
            now = time.monotonic()
            if running and running[0][0] <= now:
                _, name, request_id = running.popleft()
                kind = "request_finished"
            else:
                name = names[(sent // 2) % len(names)]
                request_id = f"bg-{seed}-{sent}"
                running.append((now + 0.05, name, request_id))
                kind = "request_started"
            body = {"type": kind, "deployment": name, "ts": time.time(), "request_id": request_id}
            await producer.send(topic, json.dumps(body).encode(), key=name.encode())
            sent += 1
            ahead = start + sent / eps - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
    finally:
        await producer.stop()


# -- the measured run ------------------------------------------------------------------------


async def _create_deployments(kubeconfig: str, names: list[str]) -> float:
    from kubernetes_asyncio import client as k8s

    from autoscaler.adapters.kubernetes import api_client

    api = await api_client(kubeconfig)
    started = time.monotonic()
    try:
        # The client takes plain dicts as well as its models (the stubs only name the models).
        await k8s.CoreV1Api(api).create_namespace(cast(Any, {"metadata": {"name": NAMESPACE}}))
        apps = k8s.AppsV1Api(api)
        semaphore = asyncio.Semaphore(16)

        async def one(name: str) -> None:
            body = {
                "metadata": {"name": name},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {
                            "containers": [{"name": "server", "image": "model-server:1"}],
                            "terminationGracePeriodSeconds": 0,
                        },
                    },
                },
            }
            async with semaphore:
                await apps.create_namespaced_deployment(NAMESPACE, cast(Any, body))

        await asyncio.gather(*(one(n) for n in names))
        # Every pod Ready: the steady state the daemon starts in.
        while True:
            listed = await apps.list_namespaced_deployment(NAMESPACE, limit=2000)
            ready = sum(1 for d in listed.items if (d.status.ready_replicas or 0) >= 1)
            if ready == len(names):
                break
            await asyncio.sleep(1)
    finally:
        await api.close()
    return time.monotonic() - started


async def _wait_tracked(port: int, deployments: int, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        with suppress(OSError):
            samples = _scrape(port)
            targets = _sum(samples, "autoscaler_kube_targets{")
            tracked = samples.get("autoscaler_deployments_tracked", 0.0)
            if targets >= deployments and tracked >= deployments:
                return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the daemon did not list and track {deployments} deployments in time")


async def _probe(
    bootstrap: str, topic: str, kubeconfig: str, names: list[str], sizes: KubeSizes
) -> tuple[list[float], int]:
    """Send one backlog report per probe to a deployment not probed before; return the
    latencies seen through this process's own watch, and how many probes went unseen."""
    from aiokafka import AIOKafkaProducer
    from kubernetes_asyncio import client as k8s

    from autoscaler.adapters.kubernetes import api_client

    api = await api_client(kubeconfig)
    apps = k8s.AppsV1Api(api)
    sent_at: dict[str, float] = {}
    seen: dict[str, float] = {}
    listed = await apps.list_namespaced_deployment(NAMESPACE, limit=5000)
    version = listed.metadata.resource_version

    async def watch() -> None:
        # Without preloading, the client hands back the raw aiohttp response to stream.
        response: Any = await apps.list_namespaced_deployment(
            NAMESPACE,
            watch=True,
            resource_version=version,
            timeout_seconds=3600,
            _preload_content=False,
        )
        async for line in response.content:
            event = json.loads(line)
            obj = event["object"]
            name = obj["metadata"]["name"]
            replicas = (obj.get("spec") or {}).get("replicas", 1)
            if name in sent_at and name not in seen and replicas >= 3:
                seen[name] = time.monotonic()

    watcher = asyncio.create_task(watch())
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
    await producer.start()
    rng = random.Random(11)
    chosen = rng.sample(names, min(sizes.probes, len(names)))
    try:
        await asyncio.sleep(1.0)  # the watch is established
        for name in chosen:
            key = f"{NAMESPACE}/{name}"
            body = {"type": "queue_length", "deployment": key, "ts": time.time()}
            body["value"] = PROBE_QUEUE
            sent_at[name] = time.monotonic()
            await producer.send_and_wait(topic, json.dumps(body).encode(), key=key.encode())
            await asyncio.sleep(sizes.probe_interval_s)
        deadline = time.monotonic() + 15
        while len(seen) < len(chosen) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        await producer.stop()
        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher
        await api.close()
    latencies = [seen[n] - sent_at[n] for n in chosen if n in seen]
    return latencies, len(chosen) - len(latencies)


@contextmanager
def _servers() -> Iterator[tuple[dict[str, str], Path, float]]:
    from devtools.services import start, stop

    base = Path(tempfile.mkdtemp(prefix="bench-kube-"))
    try:
        started = time.perf_counter()
        env = start(["redis", "kafka", "kube"], base)
        yield env, base, time.perf_counter() - started
    finally:
        stop(base)
        shutil.rmtree(base, ignore_errors=True)


async def _measure(env: dict[str, str], base: Path, sizes: KubeSizes) -> dict[str, Any]:
    from bench.daemon import _create_topic
    from devtools.processes import free_port

    names = _names(sizes.deployments)
    kubeconfig = env["KUBECONFIG"]
    setup_s = await _create_deployments(kubeconfig, names)
    topic = f"bench-kube-{uuid.uuid4().hex[:8]}"
    await _create_topic(env["KAFKA_BOOTSTRAP"], topic, sizes.partitions)
    port = free_port()
    (base / "policies.yaml").write_text(POLICY)
    (base / "daemon.yaml").write_text(
        json.dumps(
            {
                "policies": [str(base / "policies.yaml")],
                "http": {"host": "127.0.0.1", "port": port},
                "dry_run": False,
                "kubernetes": {"kubeconfig": kubeconfig, "namespaces": [NAMESPACE]},
                "kafka": {
                    "bootstrap_servers": env["KAFKA_BOOTSTRAP"],
                    "topics": [topic],
                    "group_id": f"bench-{uuid.uuid4().hex[:8]}",
                },
                "redis_url": env["REDIS_URL"],
            }
        )
    )
    log = (base / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "run", "--config", str(base / "daemon.yaml")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    background = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.kube",
            "background",
            json.dumps(
                {
                    "bootstrap": env["KAFKA_BOOTSTRAP"],
                    "topic": topic,
                    "deployments": sizes.deployments,
                    "eps": sizes.background_eps,
                    "seed": 5,
                }
            ),
        ]
    )
    try:
        listed_s = await _wait_tracked(port, sizes.deployments, 120)
        # Steady load: background traffic only; the requests the daemon sends meanwhile.
        before = _scrape(port)
        await asyncio.sleep(sizes.steady_s)
        after = _scrape(port)
        steady_requests = _sum(after, "autoscaler_kube_requests_total") - _sum(
            before, "autoscaler_kube_requests_total"
        )
        probe_started = time.monotonic()
        latencies, unseen = await _probe(env["KAFKA_BOOTSTRAP"], topic, kubeconfig, names, sizes)
        probe_s = time.monotonic() - probe_started
        end = _scrape(port)
        probe_requests = _sum(end, "autoscaler_kube_requests_total") - _sum(
            after, "autoscaler_kube_requests_total"
        )
        by_code = {
            key.split("{", 1)[1].rstrip("}"): value - before.get(key, 0.0)
            for key, value in end.items()
            if key.startswith("autoscaler_kube_requests_total{")
        }
        rss = rss_mib(daemon.pid)
    finally:
        background.terminate()
        daemon.terminate()
        with suppress(subprocess.TimeoutExpired):
            background.wait(10)
        daemon.wait(30)
        log.close()
    return {
        "setup_s": setup_s,
        "listed_s": listed_s,
        "steady_s": sizes.steady_s,
        "steady_requests": steady_requests,
        "steady_qps": steady_requests / sizes.steady_s,
        "probe_s": probe_s,
        "probe_requests": probe_requests,
        "probe_qps": probe_requests / probe_s,
        "requests_by_code": by_code,
        "latencies_s": latencies,
        "unseen": unseen,
        "p50_s": quantile(latencies, 0.5),
        "p90_s": quantile(latencies, 0.9),
        "p99_s": quantile(latencies, 0.99),
        "max_s": max(latencies) if latencies else float("nan"),
        "write_p50_le_s": _histogram_quantile(end, "autoscaler_kube_write_seconds", 0.5),
        "write_p99_le_s": _histogram_quantile(end, "autoscaler_kube_write_seconds", 0.99),
        "decision_p99_le_s": _histogram_quantile(end, "autoscaler_event_to_decision_seconds", 0.99),
        "daemon_rss_mib": rss,
        "daemon_exit": daemon.returncode,
    }


def measure_kube(sizes: KubeSizes, quick: bool) -> KubeRun:
    run = KubeRun(sizes, quick)
    run.facts["Date (UTC)"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    run.facts["Load average at start (1/5/15 min)"] = " / ".join(
        f"{x:.2f}" for x in os.getloadavg()
    )
    try:
        with _servers() as (env, base, started_s):
            run.facts["Servers started (Redis, Kafka, control plane)"] = f"{started_s:.0f} s"
            run.result = asyncio.run(_measure(env, base, sizes))
    except Exception as exc:  # a server that does not start: reported, not hidden
        run.error = f"{type(exc).__name__}: {exc}"
        print(f"[bench] kube benchmark: {run.error}", file=sys.stderr, flush=True)
    run.facts["Load average at end (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return run


# -- the report section ----------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.0f} ms"


def render_kube(run: KubeRun) -> list[str]:
    s = run.sizes
    lines = [
        SECTION_START,
        "## 5. Kubernetes: event in Kafka -> scale patch accepted",
        "",
        "Measured by `python -m bench.run --only kube` (`bench/kube.py`)"
        + (" in **quick mode** (reduced sizes)" if run.quick else "")
        + ".",
        "",
        "**Method.** Kafka, Redis and a real control plane (etcd, kube-apiserver, "
        "controller-manager, scheduler; KWOK for nodes and pods) on loopback, started by "
        f"`devtools.services`. {s.deployments} Deployments in namespace `{NAMESPACE}`, one "
        "Ready KWOK pod each, all managed by one `autoscaler run --config` process (Kafka "
        "source, Redis state and leases, Kubernetes actuator at its default 20 QPS / burst "
        "40) with the `queue` policy at 5 per replica. A second process produces background "
        "traffic for every deployment in turn: 50 ms requests (a start and a finish event), "
        f"{s.background_eps:.0f} events a second in all (no scaling). Steady load: the "
        "daemon's own "
        "`autoscaler_kube_requests_total` over "
        f"{s.steady_s:.0f} s of background traffic only. Reaction: {s.probes} probes, one "
        f"every {s.probe_interval_s} s, each a backlog of {PROBE_QUEUE} for a deployment not "
        "probed before (1 -> 3 replicas); a probe's latency runs from just before the event is "
        "handed to the producer (`send_and_wait`) to the moment the benchmark's *own* watch "
        "of the Deployments shows `spec.replicas` 3. That is an upper bound on 'patch "
        "accepted': the watch's delivery is included.",
        "",
    ]
    for key, value in run.facts.items():
        lines.append(f"- {key}: {value}")
    lines.append("")
    if run.error is not None or run.result is None:
        lines += [f"**Not measured:** {run.error}", "", SECTION_END]
        return lines
    r = run.result
    met = r["p99_s"] < P99_TARGET_S
    lines += [
        "| figure | measured | target | met? |",
        "|---|---|---|---|",
        f"| reaction p50, {s.deployments} managed deployments | {_ms(r['p50_s'])} | — | — |",
        f"| reaction p90 | {_ms(r['p90_s'])} | — | — |",
        f"| reaction p99 | **{_ms(r['p99_s'])}** | < 500 ms | **{'yes' if met else 'no'}** |",
        f"| reaction max | {_ms(r['max_s'])} | — | — |",
        f"| probes not seen within 15 s | {r['unseen']} of {s.probes} | 0 | "
        f"{'yes' if r['unseen'] == 0 else 'no'} |",
        f"| API requests/s at steady load | **{r['steady_qps']:.2f}** "
        f"({r['steady_requests']:.0f} in {r['steady_s']:.0f} s) | within 20 | "
        f"{'yes' if r['steady_qps'] <= QPS_BUDGET else 'no'} |",
        f"| API requests/s while probing | {r['probe_qps']:.2f} "
        f"({r['probe_requests']:.0f} in {r['probe_s']:.0f} s) | within 20 | "
        f"{'yes' if r['probe_qps'] <= QPS_BUDGET else 'no'} |",
        f"| daemon: decision -> patch accepted, p50 / p99 (histogram bucket bound) | "
        f"<= {_ms(r['write_p50_le_s'])} / <= {_ms(r['write_p99_le_s'])} | — | — |",
        f"| daemon: event received -> decision, p99 (bucket bound) | "
        f"<= {_ms(r['decision_p99_le_s'])} | — | — |",
        f"| daemon RSS at the end | {r['daemon_rss_mib']:.0f} MiB | — | — |",
        "",
        f"Setting up took {r['setup_s']:.0f} s ({s.deployments} Deployments created, every "
        f"pod Ready); the daemon listed and tracked them all {r['listed_s']:.1f} s after "
        "the benchmark started polling its /metrics. Requests by verb and status over the "
        "whole run: "
        + ", ".join(f"`{k}` {v:.0f}" for k, v in sorted(r["requests_by_code"].items()) if v)
        + ". For comparison (their documented defaults, not measured here): KEDA polls its "
        "scalers every 30 s and the HPA syncs every 15 s.",
        "",
        SECTION_END,
    ]
    return lines


def splice(existing: str, section: list[str]) -> str:
    return splice_section(existing, section, SECTION_START, SECTION_END)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) == 2 and args[0] == "background":
        with suppress(KeyboardInterrupt):
            asyncio.run(_background(**json.loads(args[1])))
        return 0
    print("usage: python -m bench.kube background JSON (internal)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
