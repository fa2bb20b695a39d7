"""The daemon configuration shipped in deploy/ loads, its policy files validate, and its HTTP
settings do what deploy/ promises: /events behind the mounted token, /metrics on a port of
its own (run for real, on loopback)."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from autoscaler.adapters.http_ingest import BearerToken
from autoscaler.config.loader import load_policies
from autoscaler.daemon.config import load_daemon_config
from tests.daemon.process_helpers import free_port, wait_ready

BASE = Path(__file__).resolve().parents[2] / "deploy" / "base"
PLACEHOLDER = BASE / "secrets" / "events-token"
CLI = Path(sys.executable).with_name("autoscaler")


def test_the_shipped_daemon_config_scales_the_models_namespace_for_real() -> None:
    config = load_daemon_config(BASE / "daemon.yaml")
    assert config.dry_run is False
    assert config.kubernetes is not None
    assert config.kubernetes.namespaces == ("models",)
    assert config.kubernetes.kubeconfig is None  # in-cluster service account
    assert config.kafka is not None and config.redis_url is not None
    # Only what the policy files name is managed in a cluster.
    assert not config.decides_unmatched
    policies = load_policies(config.policies)
    assert policies.manages("models/llm")
    assert not policies.manages("kube-system/coredns")


def test_the_shipped_http_settings_require_the_token_and_split_metrics_off() -> None:
    http = load_daemon_config(BASE / "daemon.yaml").http
    # All pod interfaces (the Service and the probes need them); the NetworkPolicy guards.
    assert http.host == "0.0.0.0"
    assert (http.port, http.metrics_port) == (8080, 9090)
    # Relative to daemon.yaml, where the pod mounts the Secret (deployment.yaml).
    assert http.auth_token_file == PLACEHOLDER


def test_the_commented_credentials_examples_load_once_uncommented(tmp_path: Path) -> None:
    # daemon.yaml shows Kafka SASL/TLS and Redis auth as `#= ` lines: they must stay valid.
    text = (BASE / "daemon.yaml").read_text(encoding="utf-8")
    examples = [line for line in text.splitlines() if line.lstrip().startswith("#= ")]
    assert len(examples) == 7
    copy = tmp_path / "base"
    shutil.copytree(BASE, copy)
    for name in ("kafka-password", "kafka-ca.crt", "redis-password"):
        (copy / "secrets" / name).write_text("not empty\n", encoding="utf-8")
    (copy / "daemon.yaml").write_text(text.replace("#= ", ""), encoding="utf-8")
    config = load_daemon_config(copy / "daemon.yaml")
    assert config.kafka is not None
    assert config.kafka.security_protocol == "SASL_SSL"
    assert config.kafka.sasl_password_file == copy / "secrets" / "kafka-password"
    assert config.kafka.ssl_cafile == copy / "secrets" / "kafka-ca.crt"
    assert config.redis_password_file == copy / "secrets" / "redis-password"
    assert config.redis_username == "autoscaler"


def test_the_shipped_placeholder_token_can_never_be_presented() -> None:
    # An install that skipped writing a token must not accept a token anyone can read here.
    content = PLACEHOLDER.read_text(encoding="utf-8").strip()
    assert "\n" in content  # a header value cannot hold a line break (RFC 9110)
    token = BearerToken(PLACEHOLDER)
    guesses = [*content.splitlines(), content.replace("\n", " "), "REPLACE-ME"]
    for guess in guesses:
        assert token.refusal(f"Bearer {guess}") == "invalid", guess


@pytest.fixture
def shipped_http(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """A daemon on the shipped ``http:`` section with loopback ports and a real token (the
    Secret, as an operator fills it); yields (events URL, metrics URL, token)."""
    http = yaml.safe_load((BASE / "daemon.yaml").read_text(encoding="utf-8"))["http"]
    token = secrets.token_hex(32)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "events-token").write_text(token + "\n", encoding="utf-8")
    port, metrics_port = free_port(), free_port()
    http.update(host="127.0.0.1", port=port, metrics_port=metrics_port)
    config = tmp_path / "daemon.yaml"
    config.write_text(yaml.safe_dump({"http": http}), encoding="utf-8")
    process = subprocess.Popen(
        [str(CLI), "--log-json", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}", token
    finally:
        process.terminate()
        process.wait(timeout=15)


def status(url: str, token: str | None = None, body: object = None) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=data, headers=headers), timeout=5
        ) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def test_the_shipped_http_settings_run(shipped_http: tuple[str, str, str]) -> None:
    events, metrics, token = shipped_http
    event = [{"type": "queue_length", "deployment": "models/llm", "ts": time.time(), "value": 3}]
    assert status(f"{events}/events", None, event) == 401
    assert status(f"{events}/events", "not-the-token", event) == 401
    assert status(f"{events}/events", token, event) == 202
    # /metrics only where Prometheus is let in; the probes stay on the events port.
    assert status(f"{metrics}/metrics") == 200
    assert status(f"{events}/metrics") == 404
    assert status(f"{events}/healthz") == 200
    assert status(f"{events}/readyz") == 200
