"""Prometheus metrics of the daemon, in a registry of its own (several daemons can live in
one test process without clashing)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class DaemonMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
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
        self.decisions = Counter(
            "autoscaler_decisions", "Decisions made", ["deployment"], registry=r
        )
        self.scale_changes = Counter(
            "autoscaler_scale_changes",
            "Replica changes applied",
            ["deployment", "direction"],
            registry=r,
        )
        self.replicas = Gauge(
            "autoscaler_replicas",
            "Replicas: desired (decided), current and ready (observed)",
            ["deployment", "kind"],
            registry=r,
        )
        self.event_to_decision = Histogram(
            "autoscaler_event_to_decision_seconds",
            "From receiving an event to the decision it triggered",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
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
        self.scale_downs_refused = Counter(
            "autoscaler_scale_downs_refused",
            "Scale-downs withheld because decision state could not be persisted",
            ["deployment"],
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
