"""The daemon configuration shipped in deploy/ loads, and its policy files validate."""

from __future__ import annotations

from pathlib import Path

from autoscaler.config.loader import load_policies
from autoscaler.daemon.config import load_daemon_config

BASE = Path(__file__).resolve().parents[2] / "deploy" / "base"


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
