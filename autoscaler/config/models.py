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
from dataclasses import fields
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
from autoscaler.core.schedule import Window, active_at
from autoscaler.core.settings import (
    MAX_DURATION_S,
    MAX_PARALLELISM,
    MAX_RATE,
    MAX_REPLICAS,
    MIN_PERIOD_S,
    MIN_WINDOW_S,
    ScheduleBound,
    Settings,
    SloTarget,
)


class FrozenModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


_CORE = Settings()
"""The core's defaults: the file's defaults are the same values, taken from there."""


def strict_number(value: Any) -> Any:
    """Before pydantic's own number parsing: YAML's ``true`` is not 1, a quoted ``"4"`` is not
    4, and ``.inf``/``.nan`` are not numbers a decision can compute with."""
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "must be a number, not true/false")
    if isinstance(value, str):
        raise PydanticCustomError("number_type", "must be a number, not a string")
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "must be a finite number")
    return value


def strict_float(value: Any) -> Any:
    value = strict_number(value)
    if isinstance(value, int):
        # pydantic's own conversion of a 400-digit int says only "not a valid number". The int
        # itself is handed on, so that a bound's error shows the value as written.
        try:
            float(value)
        except OverflowError:
            raise PydanticCustomError(
                "finite_number", "must be a finite number (too large for a float)"
            ) from None
    return value


Number = Annotated[float, BeforeValidator(strict_float)]
"""A finite float; ints are accepted (YAML writes ``2`` for 2.0), bools and strings are not.
Plug-in params models can use it (and ``Whole``) too."""
Whole = Annotated[int, BeforeValidator(strict_number)]
"""An int; ``2.0`` is accepted as 2, bools and strings are not."""


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
    # Bounds before the strictness check inside the Optional, so the published JSON Schema
    # shows them as minimum/maximum.
    min_replicas: (
        Annotated[int, Field(ge=0, le=MAX_REPLICAS), BeforeValidator(strict_number)] | None
    ) = None
    max_replicas: (
        Annotated[int, Field(ge=1, le=MAX_REPLICAS), BeforeValidator(strict_number)] | None
    ) = None

    _window: Window = PrivateAttr()

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
        zone = ZoneInfo(self.timezone)
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
        self._window = Window(frozenset(weekdays), _minutes(self.start), _minutes(self.end), zone)

    def active_at(self, now: float) -> bool:
        """Whether the rule holds at unix time ``now`` (``autoscaler.core.schedule``)."""
        return active_at(self._window, now)

    @property
    def window(self) -> Window:
        """The rule's time window, for the core."""
        return self._window

    def core(self) -> ScheduleBound:
        """The rule as the core's guardrails read it."""
        return ScheduleBound(
            window=self._window, min_replicas=self.min_replicas, max_replicas=self.max_replicas
        )


def _number_as_text(value: Any) -> Any:
    # YAML reads `cpu: 4` as an int; quantities are kept as the text the user wrote.
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _valid_cpu(value: str) -> str:
    parse_cpu_millis(value)
    return value


def _valid_memory(value: str) -> str:
    parse_memory_bytes(value)
    return value


# Length-bounded before parsing: quantities are exact fractions, and a 100,000-digit one would
# only cost time to reject.
CpuQuantity = Annotated[
    str, Field(max_length=64), BeforeValidator(_number_as_text), AfterValidator(_valid_cpu)
]
MemoryQuantity = Annotated[
    str, Field(max_length=64), BeforeValidator(_number_as_text), AfterValidator(_valid_memory)
]


class InstanceSpec(FrozenModel):
    """Resource constraints a replica needs; the resolver picks the smallest, cheapest
    catalog instance that satisfies them."""

    cpu: CpuQuantity = Field(default="1", description="cores: '4', '0.5' or '500m'")
    memory: MemoryQuantity = Field(
        default="2Gi", description="bytes with suffix: '16Gi', '512Mi', '1G'"
    )
    accelerator: str | None = Field(
        default=None, max_length=64, description="GPU type and count: 'A10G', 'H100:2'"
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


class SloSettings(FrozenModel):
    """The latency target ops care about: ``attainment`` of requests start within ``wait_s`` of
    arriving. The ``slo`` policy sizes for it; the simulator scores every policy against it."""

    wait_s: Number = Field(
        default=_CORE.slo.wait_s,
        gt=0,
        le=3600,
        description="a request meets the SLO if it waits at most this long for a slot",
    )
    attainment: Number = Field(
        default=_CORE.slo.attainment,
        ge=0.5,
        le=0.99999,
        description="share of requests that must meet wait_s (0.999 = 99.9%)",
    )

    def core(self) -> SloTarget:
        return SloTarget(wait_s=self.wait_s, attainment=self.attainment)


class DeploymentSettings(FrozenModel):
    """The effective settings of one deployment, after defaults and overrides are merged."""

    policy: str = Field(
        default="slo",
        max_length=256,
        description="built-in (slo, concurrency, queue, hpa, kpa, metric) or plug-in policy name",
    )
    params: Mapping[str, Any] = Field(
        default_factory=dict, description="policy-specific parameters"
    )
    min_replicas: Whole = Field(
        default=_CORE.min_replicas, ge=0, le=MAX_REPLICAS, description="0 allows scale to zero"
    )
    max_replicas: Whole = Field(default=_CORE.max_replicas, ge=1, le=MAX_REPLICAS)
    parallelism: Whole = Field(
        default=_CORE.parallelism,
        ge=1,
        le=MAX_PARALLELISM,
        description="requests one replica serves at once",
    )
    target_utilization: Number = Field(
        # Knative's container-concurrency-target-percentage allows 1% to 100%; below that the
        # replica count is load x 100+ and tiny values overflow it.
        default=_CORE.target_utilization,
        ge=0.01,
        le=1,
        description="fraction of parallelism to aim for",
    )
    window_s: Number = Field(
        default=_CORE.window_s, ge=MIN_WINDOW_S, le=3600, description="stable averaging window"
    )
    panic_window_s: Number = Field(
        default=_CORE.panic_window_s,
        ge=MIN_WINDOW_S,
        le=3600,
        description="short window that reacts to bursts",
    )
    scale_up_delay_s: Number = Field(
        default=_CORE.scale_up_delay_s,
        ge=0,
        le=3600,
        description="a scale-up must be wanted this long (min over window)",
    )
    scale_down_delay_s: Number = Field(
        default=_CORE.scale_down_delay_s,
        ge=0,
        le=3600,
        description="a scale-down must be wanted this long (max over window)",
    )
    scale_up_interval_s: Number = Field(
        default=_CORE.scale_up_interval_s,
        ge=0,
        le=3600,
        description="at least this long between two scale-ups; the next takes the whole step",
    )
    scale_down_interval_s: Number = Field(
        default=_CORE.scale_down_interval_s,
        ge=0,
        le=3600,
        description="at least this long between two scale-downs; the next takes the whole step",
    )
    scale_to_zero_grace_s: Number = Field(
        default=_CORE.scale_to_zero_grace_s, ge=0, le=86400, description="idle time before 1 -> 0"
    )
    max_scale_up_rate: Number | None = Field(
        default=_CORE.max_scale_up_rate,
        gt=1,
        le=MAX_RATE,
        description="per decision, at most rate x ready replicas; null = unlimited",
    )
    max_scale_down_rate: Number | None = Field(
        default=_CORE.max_scale_down_rate,
        gt=1,
        le=MAX_RATE,
        description="per decision, at least current / rate replicas; null = unlimited",
    )
    max_request_duration_s: Number = Field(
        default=_CORE.max_request_duration_s,
        ge=0.001,
        le=MAX_DURATION_S,
        description="in-flight requests with no finish event expire after this",
    )
    decision_period_s: Number = Field(
        default=_CORE.decision_period_s,
        ge=0,
        le=3600,
        description="consult the policy at most once per this many seconds and repeat its "
        "last recommendation in between (the guardrails still run): Knative's 2 s tick, the "
        "HPA's sync period, KEDA's polling interval; 0 = at every decision",
    )
    schedule: tuple[ScheduleRule, ...] = ()
    slo: SloSettings = Field(default_factory=SloSettings)
    instance: InstanceSpec = Field(default_factory=InstanceSpec)

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
        if 0 < self.decision_period_s < MIN_PERIOD_S:
            raise cross_field_error(
                "decision_period_s",
                self.decision_period_s,
                f"must be 0 (no period) or at least {MIN_PERIOD_S:g}",
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

    def core(self) -> Settings:
        """What a decision reads of these settings: the core's plain frozen copy, without the
        file-only keys (the policy's name and raw params, the instance). Built on each call,
        not cached: ``model_copy(update=...)`` would carry a cached copy over stale."""
        return Settings(
            **{name: getattr(self, name) for name in _CORE_SCALARS},
            schedule=tuple(rule.core() for rule in self.schedule),
            slo=self.slo.core(),
        )

    @property
    def target_per_replica(self) -> float:
        """Load one replica should carry: parallelism x target_utilization."""
        return self.parallelism * self.target_utilization


_CORE_SCALARS: tuple[str, ...] = tuple(
    item.name for item in fields(Settings) if item.name not in ("schedule", "slo")
)


# Keys a rule may override: every settings field. `match` selects deployments.
SETTINGS_KEYS: frozenset[str] = frozenset(DeploymentSettings.model_fields)
_NAME = re.compile(r"^[a-z0-9*?\[\]-][a-z0-9.*?\[\]-]*/[a-z0-9*?\[\]-][a-z0-9.*?\[\]-]*$")


def valid_match_pattern(pattern: str) -> bool:
    return bool(_NAME.match(pattern))


def matches(pattern: str, deployment: str) -> bool:
    return fnmatch.fnmatchcase(deployment, pattern)
