"""Real servers on loopback for development and tests: Apache Kafka (KRaft mode, jars from
Maven Central run on the machine's Java), Redis and Prometheus (Debian's packages), and a
Kubernetes control plane with KWOK's fake nodes (binaries built by devtools.kube_build; see
devtools/kube_cluster.py).

    python -m devtools.services start    # install what is missing, start all, write .services/env
    python -m devtools.services start --only kube   # just the Kubernetes control plane
    python -m devtools.services stop
    python -m devtools.services env      # print the endpoints

Downloads are cached outside the repository (~/.cache/autoscaler, ~/.m2). Every server gets a
free port on 127.0.0.1. A server that does not come up is an error that carries its log: the
callers (tests included) fail with it, they never skip.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devtools.kube_cluster import start_cluster
from devtools.processes import (
    ServiceError,
    free_port,
    spawn,
    stop_process_groups,
    wait_ready,
)

KAFKA_VERSION = "3.9.1"
SCALA_VERSION = "2.13"
CACHE = Path(os.environ.get("AUTOSCALER_CACHE", Path.home() / ".cache" / "autoscaler"))
ROOT = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("AUTOSCALER_SERVICES_DIR", ROOT / ".services"))


# -- installation ----------------------------------------------------------------------------


def ensure_debian_packages(binaries: dict[str, str]) -> None:
    """Install the Debian packages providing missing binaries (``{binary: package}``)."""
    missing = [pkg for binary, pkg in binaries.items() if shutil.which(binary) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise ServiceError(f"missing {', '.join(missing)}: run as root or apt-get install them")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=env,
    )


def kafka_libs() -> Path:
    """The broker's jars, resolved by Maven from Maven Central once and cached."""
    libs = CACHE / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    if shutil.which("mvn") is None:
        ensure_debian_packages({"mvn": "maven"})
    work = libs.parent / "resolve"
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(
        f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.autoscaler</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{SCALA_VERSION}</artifactId>
      <version>{KAFKA_VERSION}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-reload4j</artifactId>
      <version>1.7.36</version>
    </dependency>
  </dependencies>
</project>
"""
    )
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(work / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ServiceError(
            f"maven could not fetch Kafka {KAFKA_VERSION}:\n{result.stdout}\n{result.stderr}"
        )
    marker.touch()
    return libs


# -- servers ---------------------------------------------------------------------------------


@dataclass
class Started:
    name: str
    pid: int
    env: dict[str, str]
    # A service of several processes (each its own process group) says how to stop them: in
    # steps, one after the other, the processes of a step together. By default: ``pid``.
    stop_steps: list[tuple[str, list[int]]] = field(default_factory=list)

    def steps(self) -> list[tuple[str, list[int]]]:
        return self.stop_steps or [(self.name, [self.pid])]


def start_redis(base: Path) -> Started:
    ensure_debian_packages({"redis-server": "redis-server"})
    port = free_port()
    work = base / "redis"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "redis.log"
    process = spawn(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
            "--protected-mode",
            "yes",
        ],
        log,
        work,
    )

    def ping() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")

    wait_ready(ping, "redis-server", log, process, 30)
    return Started("redis", process.pid, {"REDIS_URL": f"redis://127.0.0.1:{port}/0"})


def start_prometheus(base: Path) -> Started:
    ensure_debian_packages({"prometheus": "prometheus"})
    port = free_port()
    work = base / "prometheus"
    (work / "data").mkdir(parents=True, exist_ok=True)
    # Scrape targets added while it runs (a test's daemon's /metrics): drop a file_sd JSON file
    # here, ``[{"targets": ["127.0.0.1:PORT"], "labels": {...}}]``.
    targets = work / "targets"
    targets.mkdir(exist_ok=True)
    config = work / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: self\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        "  - job_name: files\n"
        f"    file_sd_configs: [{{files: ['{targets}/*.json'], refresh_interval: 1s}}]\n"
    )
    log = work / "prometheus.log"
    process = spawn(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
        ],
        log,
        work,
    )

    def ready() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as response:
            return bool(response.status == 200)

    wait_ready(ready, "prometheus", log, process, 60)
    return Started(
        "prometheus",
        process.pid,
        {"PROMETHEUS_URL": f"http://127.0.0.1:{port}", "PROMETHEUS_TARGETS_DIR": str(targets)},
    )


def kafka_java(work: Path) -> list[str]:
    """The JVM command line a broker in ``work`` runs under (its classes and log4j set-up)."""
    return [
        "java",
        "-Xms256m",
        "-Xmx768m",
        "-XX:+UseG1GC",
        f"-Dlog4j.configuration=file:{work / 'log4j.properties'}",
        "-cp",
        f"{kafka_libs()}/*",
    ]


def kafka_cluster_id() -> str:
    """A random cluster id as Kafka writes one: 16 random bytes, URL-safe base64 unpadded. Like
    Kafka's own ``Uuid.randomUuid``, never one that starts with "-": the storage tool's argument
    parser reads such an id as an option and refuses to format (1 id in 64; it failed a CI run
    with "argument --cluster-id/-t: expected one argument")."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def launch_kafka(
    work: Path, properties: Path, format_args: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], Path]:
    """Format the KRaft storage that ``properties`` names and start the broker in ``work``,
    logging to ``work/kafka.log``; ``format_args`` go to the storage tool (e.g. SCRAM users).
    Shared by the plain broker here and the tests' secured one."""
    (work / "log4j.properties").write_text(
        "log4j.rootLogger=INFO, stdout\n"
        "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
    )
    java = kafka_java(work)
    cluster_id = kafka_cluster_id()
    storage_tool = [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id]
    formatted = subprocess.run(
        [*storage_tool, "-c", str(properties), *format_args],
        capture_output=True,
        text=True,
        check=False,
    )
    if formatted.returncode != 0:
        raise ServiceError(f"kafka storage format failed:\n{formatted.stdout}\n{formatted.stderr}")
    log = work / "kafka.log"
    return spawn([*java, "kafka.Kafka", str(properties)], log, work), log


def start_kafka(base: Path) -> Started:
    if shutil.which("java") is None:
        raise ServiceError("java is not installed (Kafka needs Java 17)")
    port, controller = free_port(), free_port()
    work = base / "kafka"
    work.mkdir(parents=True, exist_ok=True)
    properties = work / "server.properties"
    properties.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{controller}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={work / 'data'}",
                "num.partitions=4",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=4",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                "",
            ]
        )
    )
    process, log = launch_kafka(work, properties)

    def started() -> bool:
        if "Kafka Server started" not in log.read_text(errors="replace"):
            return False
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    wait_ready(started, "kafka", log, process, 120)
    return Started("kafka", process.pid, {"KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"})


def start_kube(base: Path) -> Started:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK's fake nodes
    (devtools/kube_cluster.py); KUBECONFIG is an admin's (system:masters)."""

    cluster = start_cluster(base / "kube")
    return Started("kube", cluster.pid("kube-apiserver"), cluster.env(), cluster.stop_steps())


STARTERS = {
    "redis": start_redis,
    "prometheus": start_prometheus,
    "kafka": start_kafka,
    "kube": start_kube,
}
DEFAULT = ["redis", "prometheus", "kafka", "kube"]


def start(names: list[str], base: Path = STATE) -> dict[str, str]:
    stop(base)
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    env: dict[str, str] = {}
    pids: list[str] = []
    try:
        for name in names:
            started = STARTERS[name](base)
            pids += [f"{step} {','.join(map(str, group))}" for step, group in started.steps()]
            (base / "pids").write_text("\n".join(pids) + "\n")
            env.update(started.env)
    except BaseException:
        stop(base)
        raise
    (base / "env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return env


def stop(base: Path = STATE) -> None:
    """Stop what ``base/pids`` lists, line after line; a line is ``name pid[,pid...]``, the
    processes of one line are stopped together."""
    pids = base / "pids"
    if not pids.exists():
        return
    for line in pids.read_text().splitlines():
        _, _, group = line.partition(" ")
        stop_process_groups([int(pid) for pid in group.split(",") if pid.strip().isdigit()])
    pids.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["start", "stop", "env"])
    parser.add_argument("--only", nargs="*", choices=sorted(STARTERS), default=DEFAULT)
    args = parser.parse_args()
    if args.command == "stop":
        stop()
        return 0
    if args.command == "env":
        print((STATE / "env").read_text(), end="")
        return 0
    try:
        env = start(args.only)
    except ServiceError as exc:
        print(f"services: {exc}", file=sys.stderr)
        return 1
    for key, value in env.items():
        print(f"{key}={value}")
    print(
        f"# written to {STATE / 'env'}; stop with: python -m devtools.services stop",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
