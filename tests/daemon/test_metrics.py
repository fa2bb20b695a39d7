"""Each deployment's series come from the engine's records at scrape time (PerDeployment)."""

from __future__ import annotations

from prometheus_client import generate_latest

from autoscaler.daemon.metrics import DaemonMetrics, DeploymentCounts


def sample(metrics: DaemonMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_series_appear_with_something_to_say_and_go_with_the_record() -> None:
    metrics = DaemonMetrics()
    records = {
        "ns/fresh": DeploymentCounts(),  # tracked, never decided: no series yet
        "ns/busy": DeploymentCounts(
            decisions=7, scale_ups=2, desired=5, current=3, ready=2, scale_downs_refused=1
        ),
    }
    metrics.per_deployment(lambda: list(records.items()))
    assert sample(metrics, "autoscaler_decisions_total", deployment="ns/busy") == 7
    assert sample(metrics, "autoscaler_replicas", deployment="ns/busy", kind="desired") == 5
    assert sample(metrics, "autoscaler_replicas", deployment="ns/busy", kind="current") == 3
    assert sample(metrics, "autoscaler_replicas", deployment="ns/busy", kind="ready") == 2
    changes = "autoscaler_scale_changes_total"
    assert sample(metrics, changes, deployment="ns/busy", direction="up") == 2
    assert sample(metrics, changes, deployment="ns/busy", direction="down") is None
    refused = "autoscaler_scale_downs_refused_total"
    assert sample(metrics, refused, deployment="ns/busy") == 1
    assert b'deployment="ns/fresh"' not in generate_latest(metrics.registry)

    records["ns/busy"].decisions += 1
    assert sample(metrics, "autoscaler_decisions_total", deployment="ns/busy") == 8
    del records["ns/busy"]
    assert b"ns/busy" not in generate_latest(metrics.registry)


def test_a_second_source_replaces_the_first() -> None:
    metrics = DaemonMetrics()
    metrics.per_deployment(lambda: [("ns/old", DeploymentCounts(decisions=1, desired=1))])
    metrics.per_deployment(lambda: [("ns/new", DeploymentCounts(decisions=2, desired=1))])
    text = generate_latest(metrics.registry)
    assert b"ns/old" not in text
    assert text.count(b"# TYPE autoscaler_decisions_total counter") == 1
    assert sample(metrics, "autoscaler_decisions_total", deployment="ns/new") == 2
