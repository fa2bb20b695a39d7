"""Prometheus metrics of the daemon, in a registry of its own (several daemons can live in
one test process without clashing).

The series of each deployment (decisions, scale changes, replicas) are not kept in
``prometheus_client`` children: 10,000 deployments held 3 KiB each in them, and each decision
paid for five labelled lookups. The engine counts in its own record per deployment
(``DeploymentCounts``), and ``PerDeployment`` turns those records into series at each scrape.
A deployment no longer tracked has no record, and so no series, from that moment on."""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from autoscaler import __version__


@dataclass(slots=True)
class DeploymentCounts:
    """One deployment's own series, counted by the engine in its record."""

    decisions: int = 0
    scale_ups: int = 0
    scale_downs: int = 0
    scale_downs_refused: int = 0
    """Scale-downs withheld because the decision state could not be persisted."""
    desired: int | None = None
    """The replicas last decided (None before the first decision), and those observed then."""
    current: int | None = None
    ready: int | None = None


class PerDeployment(Collector):
    """Each tracked deployment's series, read from ``source`` at scrape time. A series
    appears once it has something to say, as a labelled child would: ``decisions`` and
    ``replicas`` from the first decision, a direction of ``scale_changes`` from its first
    change, ``scale_downs_refused`` from the first refusal."""

    def __init__(self, source: Callable[[], Iterable[tuple[str, DeploymentCounts]]]) -> None:
        self._source = source

    def describe(self) -> list[Metric]:
        # Nothing to check against other collectors' names at registration (their names
        # are this module's alone), and collecting then would scrape an engine being built.
        return []

    def collect(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "autoscaler_decisions", "Decisions made", labels=["deployment"]
        )
        changes = CounterMetricFamily(
            "autoscaler_scale_changes",
            "Replica changes applied",
            labels=["deployment", "direction"],
        )
        replicas = GaugeMetricFamily(
            "autoscaler_replicas",
            "Replicas: desired (decided), current and ready (observed)",
            labels=["deployment", "kind"],
        )
        refused = CounterMetricFamily(
            "autoscaler_scale_downs_refused",
            "Scale-downs withheld because decision state could not be persisted",
            labels=["deployment"],
        )
        for name, counts in self._source():
            if counts.scale_downs_refused:
                refused.add_metric([name], counts.scale_downs_refused)
            if counts.desired is None:
                continue
            decisions.add_metric([name], counts.decisions)
            replicas.add_metric([name, "desired"], counts.desired)
            replicas.add_metric([name, "current"], counts.current or 0)
            replicas.add_metric([name, "ready"], counts.ready or 0)
            if counts.scale_ups:
                changes.add_metric([name, "up"], counts.scale_ups)
            if counts.scale_downs:
                changes.add_metric([name, "down"], counts.scale_downs)
        yield from (decisions, changes, replicas, refused)


class DaemonMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._per_deployment: PerDeployment | None = None
        r = self.registry
        # The `*_build_info` convention (Prometheus, kube-state-metrics): a constant 1 whose
        # labels say what runs, to join on or to count versions during a rollout.
        Gauge(
            "autoscaler_build_info",
            "The running daemon's version and Python (always 1)",
            ["version", "python"],
            registry=r,
        ).labels(version=__version__, python=platform.python_version()).set(1)
        self.events = Counter(
            "autoscaler_events", "Events consumed, by outcome", ["outcome"], registry=r
        )
        self.rejected = Counter(
            "autoscaler_events_rejected",
            "Messages that were not valid events",
            ["reason"],
            registry=r,
        )
        self.unmanaged = Counter(
            "autoscaler_events_unmanaged",
            "Events for deployments no policy rule matches",
            registry=r,
        )
        self.event_to_decision = Histogram(
            "autoscaler_event_to_decision_seconds",
            "From receiving an event to the decision it triggered",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.decision_errors = Counter(
            "autoscaler_decision_errors",
            "Decisions that raised (a policy or actuator failure), retried at the next tick",
            registry=r,
        )
        self.policy_reloads = Counter(
            "autoscaler_policy_reloads", "Policy reloads, by result", ["result"], registry=r
        )
        self.redis_errors = Counter(
            "autoscaler_redis_errors", "Failed Redis operations", ["operation"], registry=r
        )
        self.state_store_up = Gauge(
            "autoscaler_state_store_up",
            "1 while the state store answers, 0 after a failure",
            registry=r,
        )
        self.dead_letters = Counter(
            "autoscaler_dead_letters",
            "Malformed Kafka messages copied to the dead-letter topic, by result",
            ["result"],
            registry=r,
        )
        self.leases_held = Gauge(
            "autoscaler_leases_held", "Deployment leases this daemon holds", registry=r
        )
        self.lease_denied = Counter(
            "autoscaler_lease_denied",
            "Decisions not made because another daemon holds the deployment's lease",
            registry=r,
        )
        self.leases_lost = Counter(
            "autoscaler_leases_lost",
            "Leases found taken over or expired while held",
            registry=r,
        )
        self.kafka_lag = Gauge(
            "autoscaler_kafka_lag",
            "Messages behind the partition's end",
            ["topic", "partition"],
            registry=r,
        )
        # Registered by the Kafka source only: a daemon without Kafka exporting 0 here would
        # be a false alarm.
        self.kafka_up = Gauge(
            "autoscaler_kafka_up",
            "1 while the Kafka cluster answers the source's health probe, 0 otherwise",
            registry=None,
        )
        self.kafka_errors = Counter(
            "autoscaler_kafka_errors",
            "Kafka client errors, by kind: connection, fetch, commit, coordinator, producer, "
            "other (aiokafka's own retried errors included)",
            ["kind"],
            registry=r,
        )
        self.deployments = Gauge(
            "autoscaler_deployments_tracked", "Deployments with live state", registry=r
        )
        self.prometheus_errors = Counter(
            "autoscaler_prometheus_errors",
            "Prometheus queries that gave no usable value: unreachable, query_failed, empty, "
            "multiple_series, bad_value",
            ["reason"],
            registry=r,
        )
        self.overrides_rejected = Counter(
            "autoscaler_annotation_overrides_rejected",
            "Sets of policy overrides in a target's annotations that did not validate",
            registry=r,
        )
        self.kube_requests = Counter(
            "autoscaler_kube_requests",
            "Kubernetes API requests, by verb and HTTP status (0: no answer)",
            ["verb", "code"],
            registry=r,
        )
        self.kube_targets = Gauge(
            "autoscaler_kube_targets",
            "Workloads seen in the watched namespaces",
            ["kind"],
            registry=r,
        )
        self.kube_watch_restarts = Counter(
            "autoscaler_kube_watch_restarts",
            "Watches re-listed: expired (410 Gone) or failed",
            ["kind", "reason"],
            registry=r,
        )
        self.kube_objects_skipped = Counter(
            "autoscaler_kube_objects_skipped",
            "Watched workloads, or their annotations, that could not be read and were ignored"
            " (reason: object or annotations)",
            ["kind", "reason"],
            registry=r,
        )
        self.kube_write_seconds = Histogram(
            "autoscaler_kube_write_seconds",
            "From a decision handed to the Kubernetes actuator to its scale patch accepted",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.kube_budget_wait = Counter(
            "autoscaler_kube_budget_wait_seconds",
            "Time requests waited for the client-side QPS budget",
            registry=r,
        )
        self.deployments_evicted = Counter(
            "autoscaler_deployments_evicted",
            "Idle deployments forgotten after limits.idle_ttl_s, with their metric series",
            registry=r,
        )
        self.http_errors = Counter(
            "autoscaler_http_errors",
            "HTTP requests answered 500 by an unexpected error, by its exception type",
            ["reason"],
            registry=r,
        )
        self.http_unauthorized = Counter(
            "autoscaler_http_unauthorized",
            "POST /events refused 401: no bearer token (missing), or the wrong one (invalid)",
            ["reason"],
            registry=r,
        )

    def per_deployment(self, source: Callable[[], Iterable[tuple[str, DeploymentCounts]]]) -> None:
        """Export each deployment's series from ``source`` (the engine's records), instead
        of any source given before (one engine's records per registry)."""
        if self._per_deployment is not None:
            self.registry.unregister(self._per_deployment)
        self._per_deployment = PerDeployment(source)
        self.registry.register(self._per_deployment)
