"""The JSON Schemas in docs/ are generated; they must match the code that validates."""

from __future__ import annotations

import json
from pathlib import Path

from autoscaler.config.schema import policy_file_schema
from autoscaler.core.events import event_json_schema

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_policy_schema_is_current() -> None:
    published = json.loads((DOCS / "policy.schema.json").read_text())
    assert published == policy_file_schema(), (
        "regenerate: autoscaler schema > docs/policy.schema.json"
    )


def test_event_schema_is_current() -> None:
    published = json.loads((DOCS / "event.schema.json").read_text())
    assert published == event_json_schema(), (
        "regenerate: autoscaler schema --events > docs/event.schema.json"
    )


def test_policy_schema_describes_every_setting() -> None:
    schema = policy_file_schema()
    entry = schema["$defs"]["DeploymentEntry"]["properties"]
    for key in (
        "policy",
        "params",
        "min_replicas",
        "max_replicas",
        "parallelism",
        "target_utilization",
        "window_s",
        "panic_window_s",
        "scale_up_delay_s",
        "scale_down_delay_s",
        "scale_to_zero_grace_s",
        "max_scale_up_rate",
        "max_scale_down_rate",
        "schedule",
        "instance",
        "match",
    ):
        assert key in entry, key
