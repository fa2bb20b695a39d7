"""Kafka TLS and SASL settings (issue 9, "Security"): validated when the config is loaded,
the password read from its file at start, and handed to aiokafka."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka_helpers import engine, produce, start_secured_kafka, started

from autoscaler.adapters.kafka_source import KafkaSource, security_settings
from autoscaler.config.loader import PolicyFileError
from autoscaler.daemon.config import load_daemon_config
from autoscaler.daemon.run import Daemon
from devtools import services as devservices
from devtools.processes import ServiceError

POLICY = (
    "defaults: {scale_down_delay_s: 0, policy: concurrency, "
    "parallelism: 1, target_utilization: 1, max_replicas: 20}\n"
    "deployments: [{match: prod/*}]\n"
)
FILES = ("password", "ca.pem", "cert.pem", "key.pem")


def load(tmp_path: Path, kafka: dict[str, Any]) -> Any:
    for name in FILES:
        (tmp_path / name).write_text("secret\n" if name == "password" else "x")
    config = tmp_path / "daemon.yaml"
    config.write_text(yaml.safe_dump({"kafka": {"bootstrap_servers": "k:9092", **kafka}}))
    return load_daemon_config(config)


SASL = {"sasl_username": "alice", "sasl_password_file": "password"}


@pytest.mark.parametrize(
    ("kafka", "problem"),
    [
        ({}, None),
        ({"security_protocol": "PLAINTEXT"}, None),
        ({"security_protocol": "SSL"}, None),  # the system's CAs
        ({"security_protocol": "SSL", "ssl_cafile": "ca.pem"}, None),
        (
            {
                "security_protocol": "SSL",
                "ssl_cafile": "ca.pem",
                "ssl_certfile": "cert.pem",
                "ssl_keyfile": "key.pem",
            },
            None,
        ),
        ({"security_protocol": "SSL", "ssl_certfile": "cert.pem"}, None),  # key inside
        ({"security_protocol": "SASL_PLAINTEXT", **SASL}, None),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256", **SASL}, None),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", **SASL}, None),
        ({"security_protocol": "TLS"}, "kafka.security_protocol"),
        ({"security_protocol": "plaintext"}, "kafka.security_protocol"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI", **SASL},
            "kafka.sasl_mechanism",
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_password_file": "password"},
            ("kafka.sasl_username", "SASL_PLAINTEXT needs it"),
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_username": "alice"},
            ("kafka.sasl_password_file", "SASL_SSL needs it"),
        ),
        (
            {"security_protocol": "SASL_SSL", "sasl_username": "alice", "sasl_password": "pw"},
            "kafka.sasl_password",  # the password itself never goes in the config
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", **SASL, "sasl_password_file": "missing"},
            "kafka.sasl_password_file=",
        ),
        ({"security_protocol": "SASL_PLAINTEXT", **SASL, "sasl_username": ""}, "sasl_username"),
        (SASL, ("kafka.sasl_username", "alice", "only with SASL_PLAINTEXT or SASL_SSL")),
        ({"security_protocol": "SSL", **SASL}, "only with SASL_PLAINTEXT or SASL_SSL"),
        ({"ssl_cafile": "ca.pem"}, "only with SSL or SASL_SSL"),
        (
            {"security_protocol": "SASL_PLAINTEXT", **SASL, "ssl_cafile": "ca.pem"},
            "kafka.ssl_cafile=",
        ),
        ({"security_protocol": "SSL", "ssl_cafile": "nope.pem"}, ("nope.pem", "no such file")),
        ({"security_protocol": "SSL", "ssl_cafile": "."}, "no such file"),  # a folder
        ({"security_protocol": "SSL", "ssl_keyfile": "key.pem"}, "ssl_keyfile needs it"),
        (
            {"security_protocol": "SSL", "ssl_certfile": "cert.pem", "ssl_keyfile": "gone.pem"},
            "kafka.ssl_keyfile=",
        ),
    ],
)
def test_security_settings_are_validated(
    tmp_path: Path, kafka: dict[str, Any], problem: str | tuple[str, ...] | None
) -> None:
    if problem is None:
        config = load(tmp_path, kafka).kafka
        for key in ("sasl_password_file", "ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if key in kafka:  # resolved against the config file's folder
                assert getattr(config, key) == tmp_path / kafka[key]
        return
    with pytest.raises(PolicyFileError) as caught:
        load(tmp_path, kafka)
    message = str(caught.value)
    for part in (problem,) if isinstance(problem, str) else problem:
        assert part in message


@pytest.mark.parametrize(
    ("written", "password"),
    [
        ("secret", "secret"),
        ("secret\n", "secret"),  # a Secret written from a file
        ("secret\r\n", "secret"),
        (" spaced out \n", " spaced out "),  # only the line end is not the password's
        ("pässwörd\n", "pässwörd"),
    ],
)
def test_the_sasl_password_is_read_from_its_file(
    tmp_path: Path, written: str, password: str
) -> None:
    config = load(tmp_path, {"security_protocol": "SASL_PLAINTEXT", **SASL}).kafka
    (tmp_path / "password").write_text(written, encoding="utf-8")
    assert security_settings(config) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "alice",
        "sasl_plain_password": password,
    }


def test_an_empty_password_file_fails_the_start(tmp_path: Path) -> None:
    config = load(tmp_path, {"security_protocol": "SASL_PLAINTEXT", **SASL}).kafka
    (tmp_path / "password").write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        security_settings(config)


def test_tls_settings_give_a_verifying_context(tmp_path: Path) -> None:
    config = load(tmp_path, {"security_protocol": "SASL_SSL", **SASL}).kafka
    settings = security_settings(config)
    context = settings["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert settings["sasl_plain_password"] == "secret"


async def test_the_consumer_and_the_dead_letter_producer_get_the_settings(
    tmp_path: Path,
) -> None:
    (tmp_path / "p.yaml").write_text("deployments: [{match: prod/*}]\n")
    config = load(
        tmp_path,
        {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512",
            "dead_letter_topic": "dead",
            **SASL,
        },
    ).kafka
    source = KafkaSource.from_config(engine(tmp_path / "p.yaml"), config)
    assert source._dead_letter is not None
    for client in (source.consumer._client, source._dead_letter.client):
        assert client._security_protocol == "SASL_PLAINTEXT"
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "alice"
        assert client._sasl_plain_password == "secret"


@pytest.fixture(scope="module")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A broker of this module's own with SASL (PLAIN, SCRAM-SHA-256) over plaintext and
    over TLS; its certificate is signed by a CA made for the test."""
    base = tmp_path_factory.mktemp("secured-kafka")
    try:
        _, env = start_secured_kafka(base)
    except ServiceError as exc:
        devservices.stop(base)
        pytest.fail(f"the SASL/TLS broker did not start: {exc}", pytrace=False)
    try:
        yield env
    finally:
        devservices.stop(base)


@pytest.mark.parametrize(
    ("protocol", "mechanism", "user", "password", "trust_ca", "works"),
    [
        ("SASL_PLAINTEXT", "PLAIN", "alice", "alice-secret", False, True),
        ("SASL_PLAINTEXT", "SCRAM-SHA-256", "bob", "bob-secret", False, True),
        ("SASL_SSL", "PLAIN", "alice", "alice-secret", True, True),
        ("SASL_SSL", "SCRAM-SHA-256", "bob", "bob-secret", True, True),
        ("SASL_PLAINTEXT", "PLAIN", "alice", "wrong", False, False),
        ("SASL_PLAINTEXT", "SCRAM-SHA-256", "bob", "alice-secret", False, False),
        ("SASL_SSL", "PLAIN", "alice", "alice-secret", False, False),  # CA not trusted
    ],
)
def test_a_sasl_and_tls_broker_is_consumed_or_the_failure_is_shown(
    secured_kafka: dict[str, str],
    tmp_path: Path,
    protocol: str,
    mechanism: str,
    user: str,
    password: str,
    trust_ca: bool,
    works: bool,
) -> None:
    topic = f"secure-{uuid.uuid4().hex[:8]}"
    (tmp_path / "p.yaml").write_text(POLICY)
    (tmp_path / "password").write_text(password + "\n")
    kafka = {
        "bootstrap_servers": secured_kafka[protocol],
        "topics": [topic],
        "group_id": f"g-{topic}",
        "dead_letter_topic": f"{topic}-dead",  # the producer authenticates the same way
        "health_interval_s": 0.5,
        "security_protocol": protocol,
        "sasl_mechanism": mechanism,
        "sasl_username": user,
        "sasl_password_file": "password",
        **({"ssl_cafile": secured_kafka["CA"]} if trust_ca else {}),
    }
    path = tmp_path / "daemon.yaml"
    path.write_text(yaml.safe_dump({"policies": ["p.yaml"], "http": {"port": 0}, "kafka": kafka}))
    config = load_daemon_config(path)
    messages = [started("prod/a", "a0"), started("prod/a", "a1"), (b"prod/a", b"{not json")]

    async def scenario() -> None:
        # Produced over the broker's PLAINTEXT listener, as another service would.
        await produce(secured_kafka["PLAINTEXT"], topic, messages)
        daemon = Daemon(config)
        task = asyncio.create_task(daemon.run())
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert not task.done(), task.exception()
                kafka_problems = daemon.kafka.problems() if daemon.kafka else []
                if works and daemon.actuator.replicas.get("prod/a") == 2:  # type: ignore[attr-defined]
                    break
                if not works and kafka_problems:
                    break
                await asyncio.sleep(0.1)
            metrics = daemon.engine.metrics
            if works:
                assert daemon.actuator.replicas == {"prod/a": 2}  # type: ignore[attr-defined]
                while (
                    time.monotonic() < deadline
                    and not metrics.dead_letters.labels("sent")._value.get()
                ):
                    await asyncio.sleep(0.1)
                assert metrics.dead_letters.labels("sent")._value.get() == 1
                assert daemon.kafka is not None and daemon.kafka.problems() == []
            else:
                assert daemon.kafka is not None
                (problem,) = daemon.kafka.problems()
                assert problem.startswith(f"Kafka: cannot connect to {kafka['bootstrap_servers']}")
                await asyncio.sleep(1)
                assert not task.done(), task.exception()  # retrying, not crashed
                assert daemon.actuator.replicas == {}  # type: ignore[attr-defined]
        finally:
            daemon.request_stop()
            await asyncio.wait_for(task, timeout=30)

    asyncio.run(scenario())
