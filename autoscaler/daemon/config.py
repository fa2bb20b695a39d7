"""The daemon's own configuration (``autoscaler run --config FILE``), validated once here.
With no file at all the daemon runs on embedded defaults: HTTP ingest on loopback, the
embedded policy applied to every deployment, in-memory state and a dry-run actuator."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from autoscaler.config.loader import PolicyFileError, Problem, problems_from
from autoscaler.config.models import FrozenModel, cross_field_error


class HttpConfig(FrozenModel):
    host: str = Field(default="127.0.0.1", description="address for /events, /metrics, probes")
    port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port")
    max_body_bytes: int = Field(default=8 * 2**20, gt=0)


class KafkaConfig(FrozenModel):
    bootstrap_servers: str = Field(description="host:port[,host:port]")
    topics: tuple[str, ...] = Field(default=("autoscaler-events",), min_length=1)
    group_id: str = Field(default="autoscaler", min_length=1)
    max_batch: int = Field(default=5000, gt=0, le=100_000)


class RedisQueueConfig(FrozenModel):
    deployment: str = Field(pattern=r"^[a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*$")
    key: str = Field(min_length=1, description="the list or stream key")
    kind: Literal["list", "stream"] = "list"
    stream_group: str | None = Field(
        default=None, description="for a stream: count this group's pending entries, not XLEN"
    )
    url: str | None = Field(default=None, description="Redis holding the queue; null = redis_url")


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
    dry_run: bool = Field(default=True, description="log decisions instead of applying them")
    kafka: KafkaConfig | None = Field(default=None, description="consume events from Kafka")
    redis_queues: tuple[RedisQueueConfig, ...] = Field(
        default=(), description="Redis lists/streams whose length is a deployment's queue length"
    )
    redis_queue_interval_s: float = Field(default=1.0, gt=0, le=300)
    redis_url: str | None = Field(
        default=None,
        description="keep decision state in Redis (redis://host:port/db); null = memory",
    )

    @model_validator(mode="after")
    def _queues_have_a_redis(self) -> DaemonConfig:
        for index, queue in enumerate(self.redis_queues):
            if queue.url is None and self.redis_url is None:
                raise cross_field_error(
                    f"redis_queues[{index}].url", None, "needs a url here or a top-level redis_url"
                )
        return self

    @property
    def decides_unmatched(self) -> bool:
        return self.manage_unmatched if self.manage_unmatched is not None else not self.policies


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
    try:
        return DaemonConfig.model_validate(data)
    except ValidationError as exc:
        raise PolicyFileError(problems_from(exc, name, "", DaemonConfig.model_fields)) from exc
