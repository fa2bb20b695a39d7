"""The daemon's own configuration (``autoscaler run --config FILE``), validated once here.
With no file at all the daemon runs on embedded defaults: HTTP ingest on loopback, the
embedded policy applied to every deployment, in-memory state and a dry-run actuator."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from autoscaler.config.loader import PolicyFileError, Problem, _problems_from
from autoscaler.config.models import FrozenModel


class HttpConfig(FrozenModel):
    host: str = Field(default="127.0.0.1", description="address for /events, /metrics, probes")
    port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port")
    max_body_bytes: int = Field(default=8 * 2**20, gt=0)


class KafkaConfig(FrozenModel):
    bootstrap_servers: str = Field(description="host:port[,host:port]")
    topics: tuple[str, ...] = Field(default=("autoscaler-events",), min_length=1)
    group_id: str = Field(default="autoscaler", min_length=1)
    max_batch: int = Field(default=5000, gt=0, le=100_000)


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
    redis_url: str | None = Field(
        default=None,
        description="keep decision state in Redis (redis://host:port/db); null = memory",
    )

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
        raise PolicyFileError(_problems_from(exc, name, "", DaemonConfig.model_fields)) from exc
