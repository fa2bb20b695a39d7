"""Producing test events into the real Kafka broker, and reading what the group committed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from autoscaler.adapters.dry_run import DryRunActuator
from autoscaler.adapters.memory_state import InMemoryStateStore, LocalLeases
from autoscaler.config.loader import load_policies
from autoscaler.daemon.engine import Engine
from autoscaler.daemon.metrics import DaemonMetrics
from devtools import processes, services


async def produce(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes | None]],
    **settings: Any,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **settings)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def produce_sync(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    asyncio.run(produce(bootstrap, topic, messages))


def event(kind: str, deployment: str, rid: str) -> tuple[bytes, bytes]:
    body = {"type": kind, "deployment": deployment, "ts": time.time(), "request_id": rid}
    return deployment.encode(), json.dumps(body).encode()


def started(deployment: str, rid: str) -> tuple[bytes, bytes]:
    return event("request_started", deployment, rid)


def finished(deployment: str, rid: str) -> tuple[bytes, bytes]:
    return event("request_finished", deployment, rid)


async def create_topic(
    bootstrap: str, name: str, partitions: int = 1, configs: dict[str, str] | None = None
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs=configs or {})], timeout_ms=30_000
        )
    finally:
        await admin.close()


async def committed_offsets(bootstrap: str, topic: str, group: str) -> dict[int, int]:
    """The group's committed offset per partition of ``topic`` (0 where none)."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    try:
        partitions = probe.partitions_for_topic(topic) or set()
        if not partitions:
            await probe._client.force_metadata_update()
            partitions = probe.partitions_for_topic(topic) or set()
        return {
            partition: (await probe.committed(TopicPartition(topic, partition))) or 0
            for partition in partitions
        }
    finally:
        await probe.stop()


async def committed_total(bootstrap: str, topic: str, group: str) -> int:
    return sum((await committed_offsets(bootstrap, topic, group)).values())


def engine(policy: Path, engine_class: type[Engine] = Engine) -> Engine:
    """An engine as the daemon builds it, in memory, deciding into a dry-run actuator."""
    return engine_class(
        load_policies([policy]),
        DryRunActuator(),
        InMemoryStateStore(),
        DaemonMetrics(),
        time.time,
        decide_unmatched=False,
        leases=LocalLeases(),
    )


def restart_kafka(base: Path, timeout_s: float = 120) -> None:
    """Start again the broker that ``devtools.services.start(["kafka"], base)`` started and
    ``stop(base)`` stopped: same properties, data and ports, so clients reconnect to it."""
    work = base / "kafka"
    log = work / "kafka.log"
    before = log.read_text(errors="replace").count("Kafka Server started")
    java = services.kafka_java(work)
    process = processes.spawn([*java, "kafka.Kafka", str(work / "server.properties")], log, work)
    (base / "pids").write_text(f"kafka {process.pid}\n")  # for services.stop(base)

    def started() -> bool:
        return log.read_text(errors="replace").count("Kafka Server started") > before

    processes.wait_ready(started, "kafka (restarted)", log, process, timeout_s)


def make_certificates(folder: Path) -> dict[str, Path]:
    """A CA and a broker certificate for 127.0.0.1 signed by it (openssl), PEM files."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (
        folder / n for n in ("ca.key", "ca.pem", "b.key", "b.csr", "b.pem")
    )

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    extensions = folder / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(extensions),
    )
    # Kafka's PEM keystore: the PKCS#8 key and the certificate chain in one file.
    pkcs8 = folder / "b.pk8"
    openssl("pkcs8", "-topk8", "-nocrypt", "-in", str(key), "-out", str(pkcs8))
    keystore = folder / "keystore.pem"
    keystore.write_text(pkcs8.read_text() + cert.read_text() + ca.read_text())
    return {"ca": ca, "keystore": keystore}


SASL_USERS = {"alice": "alice-secret"}  # PLAIN, in the broker's JAAS config
SCRAM_USERS = {"bob": "bob-secret"}  # SCRAM-SHA-256, in the broker's metadata log


def start_secured_kafka(base: Path) -> tuple[services.Started, dict[str, str]]:
    """A single KRaft broker with PLAINTEXT (for the test's own admin and producer),
    SASL_PLAINTEXT and SASL_SSL listeners; SASL PLAIN and SCRAM-SHA-256 users as above.
    Returns the process and {protocol: bootstrap address, "CA": the CA file}."""
    work = base / "kafka"
    work.mkdir(parents=True, exist_ok=True)
    certs = make_certificates(work / "certs")
    plain, sasl, sasl_ssl, controller = (processes.free_port() for _ in range(4))
    plain_users = " ".join(f'user_{u}="{p}"' for u, p in SASL_USERS.items())
    jaas_plain = f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
    jaas_scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    lines = [
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{controller}",
        f"listeners=PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl},"
        f"SASL_SSL://127.0.0.1:{sasl_ssl},CONTROLLER://127.0.0.1:{controller}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{plain},"
        f"SASL_PLAINTEXT://127.0.0.1:{sasl},SASL_SSL://127.0.0.1:{sasl_ssl}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
        "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256",
        *(
            f"listener.name.{listener}.{mechanism}.sasl.jaas.config={jaas}"
            for listener in ("sasl_plaintext", "sasl_ssl")
            for mechanism, jaas in (("plain", jaas_plain), ("scram-sha-256", jaas_scram))
        ),
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={certs['keystore']}",
        f"log.dirs={work / 'data'}",
        "num.partitions=1",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=true",
        "",
    ]
    properties = work / "server.properties"
    properties.write_text("\n".join(lines))
    scram = [
        arg
        for user, password in SCRAM_USERS.items()
        for arg in ("--add-scram", f"SCRAM-SHA-256=[name={user},password={password}]")
    ]
    process, log = services.launch_kafka(work, properties, scram)
    started = services.Started("kafka", process.pid, {})
    (base / "pids").write_text(f"kafka {process.pid}\n")  # for services.stop(base)

    def up() -> bool:
        return "Kafka Server started" in log.read_text(errors="replace")

    processes.wait_ready(up, "kafka (SASL/TLS)", log, process, 120)
    return started, {
        "PLAINTEXT": f"127.0.0.1:{plain}",
        "SASL_PLAINTEXT": f"127.0.0.1:{sasl}",
        "SASL_SSL": f"127.0.0.1:{sasl_ssl}",
        "CA": str(certs["ca"]),
    }
