"""Prometheus metrics of the daemon, in a registry of its own (several daemons can live in
one test process without clashing)."""

from __future__ import annotations

import platform
from collections.abc import Collection

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from autoscaler import __version__


class DaemonMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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

    def forget_deployments(self, names: Collection[str]) -> None:
        """Remove every series labelled with one of ``names`` (deployments no longer tracked),
        so /metrics stays as bounded as the tracked set. One pass per metric for the whole
        set: removing 10,000 names one by one would scan every series 10,000 times."""
        if not names:
            return
        for metric in vars(self).values():
            if not isinstance(metric, MetricWrapperBase):
                continue
            labelnames = tuple(metric._labelnames)
            if "deployment" not in labelnames:
                continue
            at = labelnames.index("deployment")
            # prometheus_client has no public listing of a metric's children.
            for values in [v for v in list(metric._metrics) if v[at] in names]:
                metric.remove(*values)
