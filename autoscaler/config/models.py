"""Frozen pydantic models of the policy-file format.

These are pure data with validation: the decision core reads them, the loader builds them.
Units are in field names (``window_s``); every cross-field rule raises an error that names
the field, the value and the rule so the loader can print ``file: path=value: rule``.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from autoscaler.config.units import parse_accelerator, parse_cpu_millis, parse_memory_bytes


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def cross_field_error(field: str, value: object, rule: str) -> PydanticCustomError:
    """An error the loader re-anchors at ``field`` (pydantic puts model-level errors at the
    model's own location, which would hide which key is wrong)."""
    return PydanticCustomError(
        "cross_field",
        "{field}={value}: {rule}",
        {"field": field, "value": value, "rule": rule},
    )


DayName = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun", "weekdays", "weekends", "daily"]
_DAY_INDEX = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$|^24:00$")


def _minutes(text: str) -> int:
    if text == "24:00":
        return 24 * 60
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


class ScheduleRule(FrozenModel):
    """Time-of-day bounds, like KEDA's cron scaler: while active, ``min_replicas`` raises the
    floor and ``max_replicas`` lowers the ceiling. ``end`` before ``start`` spans midnight."""

    days: tuple[DayName, ...] = ("daily",)
    start: str = Field(description="HH:MM, local to `timezone`")
    end: str = Field(description="HH:MM (24:00 allowed); before `start` means overnight")
    timezone: str = "UTC"
    min_replicas: int | None = Field(default=None, ge=0)
    max_replicas: int | None = Field(default=None, ge=1)

    _zone: ZoneInfo = PrivateAttr()
    _weekdays: frozenset[int] = PrivateAttr()

    @field_validator("days", mode="before")
    @classmethod
    def _one_day_is_a_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("must be a time of day HH:MM (00:00 to 24:00)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("must be an IANA time zone such as 'UTC' or 'Europe/Berlin'") from exc
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ScheduleRule:
        if self.min_replicas is None and self.max_replicas is None:
            raise cross_field_error(
                "min_replicas", None, "a schedule rule needs min_replicas or max_replicas"
            )
        if (
            self.min_replicas is not None
            and self.max_replicas is not None
            and self.min_replicas > self.max_replicas
        ):
            raise cross_field_error(
                "min_replicas", self.min_replicas, f"must be <= max_replicas ({self.max_replicas})"
            )
        if self.start == self.end:
            raise cross_field_error("end", self.end, "must differ from start")
        return self

    def model_post_init(self, context: Any, /) -> None:
        # Built once at the boundary so evaluating a rule never touches the tz database.
        self._zone = ZoneInfo(self.timezone)
        weekdays: set[int] = set()
        for day in self.days:
            if day == "daily":
                weekdays.update(range(7))
            elif day == "weekdays":
                weekdays.update(range(5))
            elif day == "weekends":
                weekdays.update((5, 6))
            else:
                weekdays.add(_DAY_INDEX[day])
        self._weekdays = frozenset(weekdays)

    def active_at(self, now: float) -> bool:
        """Whether the rule holds at unix time ``now`` (pure: the time is passed in)."""
        local = datetime.fromtimestamp(now, self._zone)
        minute = local.hour * 60 + local.minute
        start, end = _minutes(self.start), _minutes(self.end)
        if start < end:
            return local.weekday() in self._weekdays and start <= minute < end
        # Overnight: the part after midnight belongs to the previous day's rule.
        if minute >= start:
            return local.weekday() in self._weekdays
        return minute < end and (local.weekday() - 1) % 7 in self._weekdays


def _number_as_text(value: Any) -> Any:
    # YAML reads `cpu: 4` as an int; quantities are kept as the text the user wrote.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _valid_cpu(value: str) -> str:
    parse_cpu_millis(value)
    return value


def _valid_memory(value: str) -> str:
    parse_memory_bytes(value)
    return value


CpuQuantity = Annotated[str, BeforeValidator(_number_as_text), AfterValidator(_valid_cpu)]
MemoryQuantity = Annotated[str, BeforeValidator(_number_as_text), AfterValidator(_valid_memory)]


class InstanceSpec(FrozenModel):
    """Resource constraints a replica needs; the resolver picks the smallest, cheapest
    catalog instance that satisfies them."""

    cpu: CpuQuantity = Field(default="1", description="cores: '4', '0.5' or '500m'")
    memory: MemoryQuantity = Field(
        default="2Gi", description="bytes with suffix: '16Gi', '512Mi', '1G'"
    )
    accelerator: str | None = Field(
        default=None, description="GPU type and count: 'A10G', 'H100:2'"
    )
    use_gpu: bool = False

    @field_validator("accelerator")
    @classmethod
    def _accelerator(cls, value: str | None) -> str | None:
        if value is not None:
            parse_accelerator(value)
        return value

    @model_validator(mode="after")
    def _gpu_consistent(self) -> InstanceSpec:
        if self.accelerator is not None and not self.use_gpu:
            raise cross_field_error(
                "use_gpu", False, f"must be true when accelerator is set ({self.accelerator})"
            )
        return self

    @property
    def cpu_millis(self) -> int:
        return parse_cpu_millis(self.cpu)

    @property
    def memory_bytes(self) -> int:
        return parse_memory_bytes(self.memory)

    @property
    def accelerator_type(self) -> tuple[str, int] | None:
        return None if self.accelerator is None else parse_accelerator(self.accelerator)


class DeploymentSettings(FrozenModel):
    """The effective settings of one deployment, after defaults and overrides are merged."""

    policy: str = Field(
        default="concurrency",
        description="built-in (concurrency, queue, hpa, kpa, metric) or plug-in policy name",
    )
    params: Mapping[str, Any] = Field(
        default_factory=dict, description="policy-specific parameters"
    )
    min_replicas: int = Field(default=1, ge=0, description="0 allows scale to zero")
    max_replicas: int = Field(default=10, ge=1)
    parallelism: int = Field(default=1, ge=1, description="requests one replica serves at once")
    target_utilization: float = Field(
        default=0.7, gt=0, le=1, description="fraction of parallelism to aim for"
    )
    window_s: float = Field(default=60.0, gt=0, le=3600, description="stable averaging window")
    panic_window_s: float = Field(
        default=6.0, gt=0, description="short window that reacts to bursts"
    )
    scale_up_delay_s: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="a scale-up must be wanted this long (min over window)",
    )
    scale_down_delay_s: float = Field(
        default=0.0,
        ge=0,
        le=3600,
        description="a scale-down must be wanted this long (max over window)",
    )
    scale_to_zero_grace_s: float = Field(
        default=30.0, ge=0, le=86400, description="idle time before 1 -> 0"
    )
    max_scale_up_rate: float | None = Field(
        default=None,
        gt=1,
        description="per decision, at most rate x ready replicas; null = unlimited",
    )
    max_scale_down_rate: float | None = Field(
        default=None,
        gt=1,
        description="per decision, at least current / rate replicas; null = unlimited",
    )
    max_request_duration_s: float = Field(
        default=600.0, gt=0, description="in-flight requests with no finish event expire after this"
    )
    schedule: tuple[ScheduleRule, ...] = ()
    instance: InstanceSpec = Field(default_factory=InstanceSpec)

    @field_validator(
        "window_s",
        "panic_window_s",
        "scale_up_delay_s",
        "scale_down_delay_s",
        "scale_to_zero_grace_s",
        "max_request_duration_s",
        "target_utilization",
    )
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DeploymentSettings:
        if self.min_replicas > self.max_replicas:
            raise cross_field_error(
                "min_replicas", self.min_replicas, f"must be <= max_replicas ({self.max_replicas})"
            )
        if self.panic_window_s > self.window_s:
            raise cross_field_error(
                "panic_window_s", self.panic_window_s, f"must be <= window_s ({self.window_s})"
            )
        for index, rule in enumerate(self.schedule):
            if rule.min_replicas is not None and rule.min_replicas > self.max_replicas:
                raise cross_field_error(
                    f"schedule[{index}].min_replicas",
                    rule.min_replicas,
                    f"must be <= max_replicas ({self.max_replicas})",
                )
            if rule.max_replicas is not None and rule.max_replicas < self.min_replicas:
                raise cross_field_error(
                    f"schedule[{index}].max_replicas",
                    rule.max_replicas,
                    f"must be >= min_replicas ({self.min_replicas})",
                )
        return self

    @property
    def target_per_replica(self) -> float:
        """Load one replica should carry: parallelism x target_utilization."""
        return self.parallelism * self.target_utilization


# Keys a rule may override: every settings field. `match` selects deployments.
SETTINGS_KEYS: frozenset[str] = frozenset(DeploymentSettings.model_fields)
_NAME = re.compile(r"^[a-z0-9*?\[\]-][a-z0-9.*?\[\]-]*/[a-z0-9*?\[\]-][a-z0-9.*?\[\]-]*$")


def valid_match_pattern(pattern: str) -> bool:
    return bool(_NAME.match(pattern))


def matches(pattern: str, deployment: str) -> bool:
    return fnmatch.fnmatchcase(deployment, pattern)
