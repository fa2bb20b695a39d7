"""JSON Schema of the policy-file format, generated from the pydantic models so editors
(VS Code's YAML extension, IntelliJ) validate files as ops type them."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import Field, create_model

from autoscaler.config.models import DeploymentSettings, FrozenModel


def _optional_settings() -> type[FrozenModel]:
    fields: dict[str, Any] = {}
    for name, info in DeploymentSettings.model_fields.items():
        annotation = info.annotation
        fields[name] = (Optional[annotation], Field(default=None, description=info.description))  # noqa: UP045
    return create_model("SettingsOverride", __base__=FrozenModel, **fields)


def policy_file_schema() -> dict[str, Any]:
    # create_model builds types at run time; to the type checker they are plain values.
    overrides: Any = _optional_settings()
    entry: Any = create_model(
        "DeploymentEntry",
        __base__=overrides,
        match=(
            str | list[str],
            Field(
                description="'namespace/name' glob(s), e.g. 'prod/*' or ['prod/llm', 'staging/*']"
            ),
        ),
    )
    document = create_model(
        "PolicyFile",
        __base__=FrozenModel,
        defaults=(
            Optional[overrides],  # noqa: UP045
            Field(default=None, description="settings every deployment gets"),
        ),
        deployments=(
            Optional[list[entry]],  # noqa: UP045
            Field(
                default=None, description="overrides for matching deployments, later entries win"
            ),
        ),
    )
    schema = document.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "autoscaler policy file"
    return schema
