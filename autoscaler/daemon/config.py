"""The daemon's own configuration (``autoscaler run --config FILE``), validated once here.
With no file at all the daemon runs on embedded defaults: HTTP ingest on loopback, the
embedded policy applied to every deployment, in-memory state and a dry-run actuator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from autoscaler.config.loader import PolicyFileError, Problem, problems_from
from autoscaler.config.models import FrozenModel, cross_field_error
from autoscaler.core.events import SIGNAL_NAME_PATTERN


class HttpConfig(FrozenModel):
    host: str = Field(default="127.0.0.1", description="address for /events, /metrics, probes")
    port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port")
    max_body_bytes: int = Field(default=8 * 2**20, gt=0)


class KafkaConfig(FrozenModel):
    bootstrap_servers: str = Field(description="host:port[,host:port]")
    topics: tuple[str, ...] = Field(default=("autoscaler-events",), min_length=1)
    group_id: str = Field(default="autoscaler", min_length=1)
    max_batch: int = Field(default=5000, gt=0, le=100_000)
    dead_letter_topic: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,249}$",
        description="copy malformed messages here (key, value, and headers naming the reason "
        "and source offset); null = log and count only",
    )


class KubernetesConfig(FrozenModel):
    kubeconfig: str | None = Field(
        default=None,
        description="kubeconfig file; null = the pod's service account in a cluster, else "
        "$KUBECONFIG or ~/.kube/config",
    )
    context: str | None = Field(default=None, description="kubeconfig context; null = current")
    namespaces: tuple[str, ...] = Field(
        default=(),
        description="watch and scale only these (namespaced RBAC); empty = all namespaces",
    )
    kinds: tuple[Literal["Deployment", "StatefulSet"], ...] = Field(
        default=("Deployment", "StatefulSet"), min_length=1
    )
    # client-go's defaults are 5 QPS / burst 10 for clients and 20 / 30 for the
    # controller-manager; watches make steady load cost nothing, so the budget is for bursts
    # of scale changes (1,000 deployments changing at once take 50 s at 20 QPS).
    qps: float = Field(default=20.0, gt=0, le=1000, description="API requests per second")
    burst: int = Field(default=40, ge=1, le=10_000, description="requests allowed at once")

    @field_validator("namespaces")
    @classmethod
    def _dns_labels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for namespace in value:
            if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", namespace):
                raise ValueError(f"{namespace!r} is not a namespace name (a DNS label)")
        return value


class RedisQueueConfig(FrozenModel):
    deployment: str = Field(pattern=r"^[a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*$")
    key: str = Field(min_length=1, description="the list or stream key")
    kind: Literal["list", "stream"] = "list"
    stream_group: str | None = Field(
        default=None, description="for a stream: count this group's pending entries, not XLEN"
    )
    url: str | None = Field(default=None, description="Redis holding the queue; null = redis_url")


_HTTP_URL = r"^https?://\S+$"


class PrometheusQueryConfig(FrozenModel):
    deployment: str = Field(pattern=r"^[a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*$")
    query: str = Field(
        min_length=1, description="PromQL instant query giving one series or a scalar"
    )
    signal: str = Field(
        default="prometheus",
        pattern=SIGNAL_NAME_PATTERN,
        description="the signal name the value is reported under (the `metric` policy's signal)",
    )
    url: str | None = Field(
        default=None, pattern=_HTTP_URL, description="Prometheus to ask; null = prometheus_url"
    )


class DaemonConfig(FrozenModel):
    policies: tuple[Path, ...] = Field(
        default=(), description="policy files or folders; empty = the embedded policy"
    )
    manage_unmatched: bool | None = Field(
        default=None,
        description="decide for deployments no rule matches; null = only with the embedded policy",
    )
    http: HttpConfig = Field(default_factory=HttpConfig)
    tick_s: float = Field(
        default=2.0, gt=0, le=60, description="decide every deployment this often"
    )
    reload_interval_s: float = Field(default=2.0, gt=0, le=300, description="policy-file check")
    dry_run: bool = Field(
        default=True,
        description="log decisions instead of applying them (with kubernetes: watch, never patch)",
    )
    kubernetes: KubernetesConfig | None = Field(
        default=None, description="scale Deployments and StatefulSets in a cluster"
    )
    kafka: KafkaConfig | None = Field(default=None, description="consume events from Kafka")
    redis_queues: tuple[RedisQueueConfig, ...] = Field(
        default=(), description="Redis lists/streams whose length is a deployment's queue length"
    )
    redis_queue_interval_s: float = Field(default=1.0, gt=0, le=300)
    prometheus_url: str | None = Field(
        default=None,
        pattern=_HTTP_URL,
        description="Prometheus HTTP API base URL for prometheus_queries (http://host:9090)",
    )
    prometheus_queries: tuple[PrometheusQueryConfig, ...] = Field(
        default=(), description="PromQL queries whose value is a deployment's named signal"
    )
    # KEDA polls every 30 s by default. Half that matches the usual 15 s scrape interval, so
    # each poll can see a new sample; and the ceiling of 30 s keeps a reading that missed one
    # poll (an error) inside the tracker's 60 s signal TTL instead of dropping the signal.
    prometheus_interval_s: float = Field(
        default=15.0, gt=0, le=30, description="seconds between polls of prometheus_queries"
    )
    redis_url: str | None = Field(
        default=None,
        description="keep decision state in Redis (redis://host:port/db); null = memory",
    )
    redis_namespace: str = Field(
        default="autoscaler:",
        pattern=r"^[A-Za-z0-9_.:-]{1,64}$",
        description="prefix of every key the daemon writes; installs sharing a Redis differ here",
    )
    lease_s: float = Field(
        default=15.0,
        ge=1,
        le=600,
        description="Redis lease per deployment: how long a daemon that died without letting go"
        " keeps its deployments from a successor; renewed every lease_s/3",
    )

    @model_validator(mode="after")
    def _queues_have_a_redis(self) -> DaemonConfig:
        for index, queue in enumerate(self.redis_queues):
            if queue.url is None and self.redis_url is None:
                raise cross_field_error(
                    f"redis_queues[{index}].url", None, "needs a url here or a top-level redis_url"
                )
        return self

    @model_validator(mode="after")
    def _queries_have_a_prometheus(self) -> DaemonConfig:
        seen: dict[tuple[str, str], int] = {}
        for index, query in enumerate(self.prometheus_queries):
            if query.url is None and self.prometheus_url is None:
                raise cross_field_error(
                    f"prometheus_queries[{index}].url",
                    None,
                    "needs a url here or a top-level prometheus_url",
                )
            # Two queries feeding one signal would overwrite each other every poll: the policy
            # would see whichever answered last.
            key = (query.deployment, query.signal)
            if key in seen:
                raise cross_field_error(
                    f"prometheus_queries[{index}].signal",
                    query.signal,
                    f"prometheus_queries[{seen[key]}] already reports it for {query.deployment}",
                )
            seen[key] = index
        return self

    @property
    def decides_unmatched(self) -> bool:
        """By default the embedded policy decides for every deployment, but not in a cluster:
        there only deployments a policy rule names are scaled, unless asked otherwise."""
        if self.manage_unmatched is not None:
            return self.manage_unmatched
        return not self.policies and self.kubernetes is None


def load_daemon_config(path: Path | None) -> DaemonConfig:
    """The file's config (relative policy paths resolved against its folder), or defaults."""
    if path is None:
        return DaemonConfig()
    name = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyFileError([Problem(name, "", None, f"cannot read config: {exc}")]) from exc
    if not isinstance(data, dict):
        raise PolicyFileError([Problem(name, "", data, "must be a mapping")])
    if isinstance(data.get("policies"), str):
        data["policies"] = [data["policies"]]
    if isinstance(data.get("policies"), list):
        data["policies"] = [str((path.parent / p).resolve()) for p in data["policies"]]
    kube = data.get("kubernetes")
    if isinstance(kube, dict) and isinstance(kube.get("kubeconfig"), str):
        kube["kubeconfig"] = str((path.parent / Path(kube["kubeconfig"]).expanduser()).resolve())
    try:
        return DaemonConfig.model_validate(data)
    except ValidationError as exc:
        raise PolicyFileError(problems_from(exc, name, "", DaemonConfig.model_fields)) from exc
