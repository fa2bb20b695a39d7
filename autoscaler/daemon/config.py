"""The daemon's own configuration (``autoscaler run --config FILE``), validated once here.
With no file at all the daemon runs on embedded defaults: HTTP ingest on loopback, the
embedded policy applied to every deployment, in-memory state and a dry-run actuator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, ValidationError, field_validator, model_validator

from autoscaler.config.loader import PolicyFileError, Problem, problems_from, read_bounded
from autoscaler.config.models import FrozenModel, cross_field_error
from autoscaler.config.yaml_safe import parse_yaml
from autoscaler.core.events import SIGNAL_NAME_PATTERN


class HttpConfig(FrozenModel):
    host: str = Field(default="127.0.0.1", description="address for /events, /metrics, probes")
    port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port")
    max_body_bytes: int = Field(default=8 * 2**20, gt=0, le=2**30)
    auth_token_file: Path | None = Field(
        default=None,
        description="POST /events requires `Authorization: Bearer <the file's content>`; the "
        "file (a mounted Secret) is re-read when it changes; null = no authentication",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="serve /metrics on this port (with /healthz and /readyz) and not on `port`;"
        " 0 picks a free port; null = /metrics on `port`",
    )

    @field_validator("auth_token_file")
    @classmethod
    def _token_readable(cls, value: Path | None) -> Path | None:
        # At start a token file that is missing or empty is a mistake, not "no auth": refuse
        # to run rather than serve /events open or to nobody.
        if value is not None:
            try:
                token = value.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"cannot read the token file: {exc}") from exc
            if not token:
                raise ValueError("the token file is empty")
        return value

    @model_validator(mode="after")
    def _ports_differ(self) -> HttpConfig:
        if self.metrics_port is not None and self.metrics_port == self.port != 0:
            raise cross_field_error("metrics_port", self.metrics_port, "must differ from port")
        return self


class LimitsConfig(FrozenModel):
    """Bounds on what producers can make the daemon hold or do (see README, "Limits")."""

    max_deployments: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="deployments tracked at once; events naming a new one beyond are rejected "
        "(too_many_deployments)",
    )
    idle_ttl_s: float = Field(
        default=3600.0,
        ge=1,
        le=30 * 86400,
        description="a deployment with no event and no work for this long, at its floor, is "
        "forgotten with its metric series and lease",
    )
    max_event_skew_s: float = Field(
        default=300.0,
        ge=1,
        le=30 * 86400,
        description="an event whose ts is further than this from the receive time, either way, "
        "is rejected (skewed)",
    )
    max_events_per_body: int = Field(
        default=10_000, ge=1, le=1_000_000, description="more in one HTTP body: 413, none applied"
    )
    max_json_depth: int = Field(
        default=16, ge=2, le=256, description="nesting levels of a message or body"
    )


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
    health_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="probe the cluster this often; a broker out of reach for one probe "
        "makes /healthz degraded and autoscaler_kafka_up 0",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="as Kafka's security.protocol"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN", description="with SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_username: str | None = Field(default=None, min_length=1, max_length=1024)
    sasl_password_file: Path | None = Field(
        default=None,
        description="file holding the SASL password (a mounted Secret), read at start; the "
        "password itself never goes in this file",
    )
    ssl_cafile: Path | None = Field(
        default=None,
        description="CA bundle (PEM) the brokers' certificates are checked against; "
        "null = the system's CAs",
    )
    ssl_certfile: Path | None = Field(default=None, description="client certificate (PEM)")
    ssl_keyfile: Path | None = Field(
        default=None, description="client private key (PEM); null = in ssl_certfile"
    )

    @model_validator(mode="after")
    def _security_settings_fit(self) -> KafkaConfig:
        sasl = self.security_protocol.startswith("SASL_")
        tls = self.security_protocol.endswith("SSL")
        if sasl:
            for key in ("sasl_username", "sasl_password_file"):
                if getattr(self, key) is None:
                    raise cross_field_error(key, None, f"{self.security_protocol} needs it")
        else:
            # Credentials that would silently go unused mean a protocol was forgotten.
            for key in ("sasl_username", "sasl_password_file"):
                if getattr(self, key) is not None:
                    raise cross_field_error(
                        key, getattr(self, key), "only with SASL_PLAINTEXT or SASL_SSL"
                    )
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, key) is not None and not tls:
                raise cross_field_error(key, getattr(self, key), "only with SSL or SASL_SSL")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise cross_field_error("ssl_certfile", None, "ssl_keyfile needs it")
        for key in ("sasl_password_file", "ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, key)
            if path is not None and not path.is_file():
                raise cross_field_error(key, str(path), "no such file")
        return self


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


def redacted_url(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``: for messages and logs."""
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError:
        return "<not a URL>"
    if not has_password:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))


def url_has_password(url: str | None) -> bool:
    return url is not None and urlsplit(url).password is not None


def _check_redis_url(value: str | None) -> str | None:
    # Errors name the URL redacted: it may carry a password (redis://:PASSWORD@host).
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise cross_field_error("", redacted_url(value), f"not a URL ({exc})") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        rule = "must be redis://host:port/db, rediss://host:port/db (TLS) or unix:///path"
        raise cross_field_error("", redacted_url(value), rule)
    if parts.scheme != "unix" and not parts.hostname:
        raise cross_field_error("", redacted_url(value), "names no host")
    return value


def _check_secret_file(value: Path | None) -> Path | None:
    # Read once here so that a missing, unreadable or empty file stops the daemon at start
    # with its name, rather than turning into "authentication failed" at the first command.
    # The content itself is never kept in the config (it would show in its repr).
    if value is not None:
        try:
            secret = value.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read the password file: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ValueError("the password file is not UTF-8 text") from None
        if not secret:
            raise ValueError("the password file is empty")
    return value


class RedisQueueConfig(FrozenModel):
    deployment: str = Field(pattern=r"^[a-z0-9][-a-z0-9.]*/[a-z0-9][-a-z0-9.]*$")
    key: str = Field(min_length=1, description="the list or stream key")
    kind: Literal["list", "stream"] = "list"
    stream_group: str | None = Field(
        default=None, description="for a stream: count this group's pending entries, not XLEN"
    )
    url: str | None = Field(
        default=None,
        repr=False,  # it may carry a password: keep it out of any logged repr of the config
        description="Redis holding the queue (rediss:// for TLS; it may carry its own "
        "credentials, redis://user:password@host); null = redis_url and its credentials",
    )
    username: str | None = Field(
        default=None, min_length=1, description="ACL user for `url`; null = the URL's or none"
    )
    password_file: Path | None = Field(
        default=None, description="file holding the password for `url` (a mounted Secret)"
    )

    _url = field_validator("url")(_check_redis_url)
    _password = field_validator("password_file")(_check_secret_file)

    @model_validator(mode="after")
    def _credentials_for_own_url(self) -> RedisQueueConfig:
        if (self.username or self.password_file) and self.url is None:
            raise cross_field_error(
                "password_file" if self.password_file else "username",
                str(self.password_file or self.username),
                "only with the queue's own url (with none it uses redis_url's credentials)",
            )
        if self.password_file and url_has_password(self.url):
            raise cross_field_error(
                "password_file", str(self.password_file), "the url carries a password already"
            )
        return self


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
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
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
        repr=False,  # it may carry a password: keep it out of any logged repr of the config
        description="keep decision state in Redis (redis://host:port/db; rediss:// for TLS; "
        "it may carry a password, redis://:PASSWORD@host); null = memory",
    )
    redis_username: str | None = Field(
        default=None, min_length=1, description="Redis ACL user (Redis 6+); null = default user"
    )
    redis_password_file: Path | None = Field(
        default=None,
        description="file holding the Redis password (mounted from a Secret), read at start, "
        "surrounding whitespace stripped; null = no password, or the one in redis_url",
    )
    redis_ssl_ca_file: Path | None = Field(
        default=None,
        description="PEM CA bundle to verify the Redis server's certificate with (rediss:// "
        "URLs); null = the system's CAs",
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
    allowed_policy_imports: tuple[
        Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", max_length=256)], ...
    ] = Field(
        default=(),
        max_length=100,
        description="plug-in policies policy files may name as 'package.module:SPEC' (entry-point"
        " plug-ins need no listing); annotations may never name an import path",
    )

    _redis_url = field_validator("redis_url")(_check_redis_url)
    _redis_password = field_validator("redis_password_file")(_check_secret_file)

    @field_validator("redis_ssl_ca_file")
    @classmethod
    def _ca_readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("no such file")
        return value

    @model_validator(mode="after")
    def _redis_credentials_fit(self) -> DaemonConfig:
        if self.redis_url is None and (self.redis_username or self.redis_password_file):
            field = "redis_password_file" if self.redis_password_file else "redis_username"
            value = self.redis_password_file or self.redis_username
            raise cross_field_error(field, str(value), "needs a redis_url")
        if self.redis_password_file is not None and url_has_password(self.redis_url):
            raise cross_field_error(
                "redis_password_file",
                str(self.redis_password_file),
                "redis_url carries a password already: give it in one place",
            )
        urls = [self.redis_url, *(queue.url for queue in self.redis_queues)]
        if self.redis_ssl_ca_file is not None and not any(
            url is not None and url.startswith("rediss://") for url in urls
        ):
            raise cross_field_error(
                "redis_ssl_ca_file",
                str(self.redis_ssl_ca_file),
                "TLS is chosen by a rediss:// URL, and no Redis URL is one",
            )
        return self

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
    """The file's config (relative policy paths resolved against its folder), or defaults.
    Read with the policy files' bounded YAML reader: problems carry their line, duplicate
    keys are refused, and no file can crash or stall the daemon at start."""
    if path is None:
        return DaemonConfig()
    name = str(path)
    text = read_bounded(path)
    if isinstance(text, Problem):
        raise PolicyFileError([text])
    if isinstance(text, OSError):
        reason = text.strerror or text
        raise PolicyFileError([Problem(name, "", None, f"cannot read config: {reason}")])
    document = parse_yaml(text, name)
    data = {} if document.data is None else document.data
    if not isinstance(data, dict):
        raise PolicyFileError([Problem(name, "", data, "must be a mapping", document.line_of(""))])
    try:
        _resolve_relative_paths(data, path)
    except (ValueError, OSError, RuntimeError) as exc:  # a NUL byte, a symlink loop
        raise PolicyFileError([Problem(name, "", None, f"bad path in config: {exc}")]) from exc
    problems = list(document.problems)
    try:
        config = DaemonConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend(problems_from(exc, name, "", DaemonConfig.model_fields))
    if problems:
        raise PolicyFileError(document.locate(problems))
    return config


def _resolve_relative_paths(data: dict[str, Any], path: Path) -> None:
    """Paths in the config are relative to its folder."""
    if isinstance(data.get("policies"), str):
        data["policies"] = [data["policies"]]
    if isinstance(data.get("policies"), list):
        data["policies"] = [
            str((path.parent / p).resolve()) if isinstance(p, str) else p for p in data["policies"]
        ]
    kafka = data.get("kafka")
    if isinstance(kafka, dict):
        for key in ("sasl_password_file", "ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if isinstance(kafka.get(key), str):
                kafka[key] = str((path.parent / Path(kafka[key]).expanduser()).resolve())
    http = data.get("http")
    if isinstance(http, dict) and isinstance(http.get("auth_token_file"), str):
        http["auth_token_file"] = str((path.parent / http["auth_token_file"]).resolve())
    for key in ("redis_password_file", "redis_ssl_ca_file"):
        if isinstance(data.get(key), str):
            data[key] = str((path.parent / Path(data[key]).expanduser()).resolve())
    queues = data.get("redis_queues")
    for queue in queues if isinstance(queues, list) else ():
        if isinstance(queue, dict) and isinstance(queue.get("password_file"), str):
            queue["password_file"] = str((path.parent / queue["password_file"]).resolve())
    kube = data.get("kubernetes")
    if isinstance(kube, dict) and isinstance(kube.get("kubeconfig"), str):
        kube["kubeconfig"] = str((path.parent / Path(kube["kubeconfig"]).expanduser()).resolve())
