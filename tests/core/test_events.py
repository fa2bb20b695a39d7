"""The event wire format: decoding, rejection reasons, batches, round trips and the schema."""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.core.events import (
    Concurrency,
    Event,
    QueueLength,
    Rejected,
    RequestFinished,
    RequestStarted,
    Signal,
    decode_event,
    decode_events,
    encode_event,
    event_json_schema,
)

# -- valid events --------------------------------------------------------------------------

VALID: list[tuple[str, Event]] = [
    (
        '{"type": "request_started", "deployment": "ns/model", "ts": 1700000000.5, '
        '"request_id": "r-1"}',
        RequestStarted(deployment="ns/model", ts=1700000000.5, request_id="r-1"),
    ),
    (
        '{"type": "request_started", "deployment": "a/b", "ts": 0, "request_id": "x", '
        '"replica": "pod-0"}',
        RequestStarted(deployment="a/b", ts=0.0, request_id="x", replica="pod-0"),
    ),
    (
        '{"type": "request_finished", "deployment": "prod.eu/llama-3.1-8b", "ts": 12, '
        '"request_id": "r-1", "replica": null}',
        RequestFinished(deployment="prod.eu/llama-3.1-8b", ts=12.0, request_id="r-1"),
    ),
    (
        '{"type": "queue_length", "deployment": "ns/model", "ts": 5.25, "value": 17}',
        QueueLength(deployment="ns/model", ts=5.25, value=17.0),
    ),
    (
        '{"deployment": "ns/model", "value": 0, "ts": 5, "type": "queue_length"}',
        QueueLength(deployment="ns/model", ts=5.0, value=0.0),
    ),
    (
        '{"type": "concurrency", "deployment": "ns/model", "ts": 5, "value": 2.5, '
        '"replica": "pod-1"}',
        Concurrency(deployment="ns/model", ts=5.0, value=2.5, replica="pod-1"),
    ),
    (
        '{"type": "queue_length", "deployment": "ns/model", "ts": 5, "value": 1, "extra": [1, 2]}',
        QueueLength(deployment="ns/model", ts=5.0, value=1.0),
    ),
    (
        '{"type": "signal", "deployment": "ns/model", "ts": 5, "name": "prometheus", "value": 4}',
        Signal(deployment="ns/model", ts=5.0, name="prometheus", value=4.0),
    ),
]


@pytest.mark.parametrize(("raw", "expected"), VALID, ids=[e.__class__.__name__ for _, e in VALID])
def test_decode_valid_event(raw: str, expected: Event) -> None:
    assert decode_event(raw) == expected
    assert decode_event(raw.encode()) == expected
    decoded = decode_event(raw)
    assert type(decoded) is type(expected)


def test_each_event_type_is_covered() -> None:
    assert {type(e) for _, e in VALID} == {
        RequestStarted,
        RequestFinished,
        QueueLength,
        Concurrency,
        Signal,
    }


# -- malformed messages --------------------------------------------------------------------

_QL = {"type": "queue_length", "deployment": "ns/model", "ts": 5, "value": 1}
_RS = {"type": "request_started", "deployment": "ns/model", "ts": 5, "request_id": "r"}
_CC = {"type": "concurrency", "deployment": "ns/model", "ts": 5, "value": 1, "replica": "p"}


def _with(base: dict[str, Any], **changes: Any) -> str:
    message = {**base, **changes}
    return json.dumps({k: v for k, v in message.items() if v is not _DROP})


_DROP = object()

INVALID_JSON = [
    pytest.param(b"", id="empty"),
    pytest.param(b"not json", id="not json"),
    pytest.param(b'{"type": "queue_length"', id="truncated"),
    pytest.param(b'{"type": queue_length}', id="unquoted string"),
    pytest.param(_with(_QL).encode() + b" x", id="trailing garbage"),
    pytest.param(b"\xff\xfe", id="not utf-8"),
    pytest.param(b'{"type": "queue_length", "ts": NaN}', id="NaN literal"),
]

INVALID_EVENT = [
    pytest.param(_with(_QL, value="3"), "$.value", id="value as string"),
    pytest.param(_with(_QL, ts="5"), "$.ts", id="ts as string"),
    pytest.param(_with(_QL, ts=True), "$.ts", id="ts as bool"),
    pytest.param(_with(_RS, request_id=7), "$.request_id", id="request_id as number"),
    pytest.param(_with(_QL, deployment=["ns", "model"]), "$.deployment", id="deployment as list"),
    pytest.param(_with(_QL, ts=_DROP), "ts", id="missing ts"),
    pytest.param(_with(_QL, value=_DROP), "value", id="missing value"),
    pytest.param(_with(_QL, deployment=_DROP), "deployment", id="missing deployment"),
    pytest.param(_with(_RS, request_id=_DROP), "request_id", id="missing request_id"),
    pytest.param(_with(_CC, replica=_DROP), "replica", id="concurrency without replica"),
    pytest.param(_with(_QL, type=_DROP), "type", id="missing type"),
    pytest.param(_with(_QL, type="queue_size"), "queue_size", id="unknown type"),
    pytest.param(_with(_QL, type=None), "$.type", id="null type"),
    pytest.param(_with(_QL, value=-1), "$.value", id="negative value"),
    pytest.param(_with(_QL, value=2e9), "$.value", id="absurd value"),
    pytest.param(_with(_QL, deployment="NoSlash"), "$.deployment", id="deployment without slash"),
    pytest.param(_with(_QL, deployment="ns/UPPER"), "$.deployment", id="deployment upper case"),
    pytest.param(_with(_QL, deployment="ns/model/x"), "$.deployment", id="deployment two slashes"),
    pytest.param(_with(_QL, deployment="-ns/model"), "$.deployment", id="deployment leading dash"),
    pytest.param(_with(_QL, deployment="ns/model-"), "$.deployment", id="deployment trailing dash"),
    pytest.param(_with(_QL, deployment="ns/"), "$.deployment", id="deployment empty name"),
    pytest.param(_with(_RS, request_id=""), "$.request_id", id="empty request_id"),
    pytest.param(_with(_RS, request_id="x" * 257), "$.request_id", id="request_id too long"),
    pytest.param(_with(_CC, replica=""), "$.replica", id="empty replica"),
    pytest.param(_with(_QL, ts=-1), "$.ts", id="ts negative"),
    pytest.param(_with(_QL, ts=1e12), "$.ts", id="ts in milliseconds"),
    pytest.param("[]", "array", id="array to decode_event"),
    pytest.param("null", "null", id="null"),
    pytest.param("42", "int", id="number"),
    pytest.param('"request_started"', "str", id="string"),
]


@pytest.mark.parametrize("raw", INVALID_JSON)
def test_malformed_json_is_rejected_as_invalid_json(raw: bytes) -> None:
    result = decode_event(raw)
    assert isinstance(result, Rejected)
    assert result.reason == "invalid_json"
    assert result.detail


@pytest.mark.parametrize(("raw", "detail"), INVALID_EVENT)
def test_invalid_events_are_rejected_as_invalid_event(raw: str, detail: str) -> None:
    result = decode_event(raw)
    assert isinstance(result, Rejected)
    assert result.reason == "invalid_event"
    assert detail in result.detail


def test_decode_never_raises_on_arbitrary_bytes() -> None:
    for raw in [b"\x00", b"[" * 10_000, b"{}" * 3, b'{"type": 1}', b"1e999"]:
        result = decode_event(raw)
        assert isinstance(result, Rejected)


# -- batches -------------------------------------------------------------------------------


def test_decode_events_keeps_the_good_elements_of_a_batch() -> None:
    good_1, good_2 = VALID[0], VALID[3]
    raw = f"[{good_1[0]}, {_with(_QL, value=-1)}, 17, {good_2[0]}]"
    result = decode_events(raw)
    assert len(result) == 4
    assert result[0] == good_1[1]
    assert isinstance(result[1], Rejected)
    assert result[1].reason == "invalid_event"
    assert isinstance(result[2], Rejected)
    assert result[2].reason == "invalid_event"
    assert result[3] == good_2[1]


def test_decode_events_accepts_a_single_event() -> None:
    # Regression: a single (non-array) message was rejected as invalid_json.
    raw, expected = VALID[5]
    assert decode_events(raw) == [expected]
    assert decode_events(raw.encode()) == [expected]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(_with(_QL, value=-1), "invalid_event", id="single invalid event"),
        pytest.param("17", "invalid_event", id="single number"),
        pytest.param('{"type": "queue_length"', "invalid_json", id="truncated object"),
        pytest.param('[{"type": "queue_length"}, ', "invalid_json", id="truncated array"),
        pytest.param("[] x", "invalid_json", id="trailing garbage"),
        pytest.param("", "invalid_json", id="empty"),
    ],
)
def test_decode_events_rejects_a_bad_message_once(raw: str, reason: str) -> None:
    result = decode_events(raw)
    assert len(result) == 1
    assert isinstance(result[0], Rejected)
    assert result[0].reason == reason


def test_decode_events_empty_array() -> None:
    assert decode_events("[]") == []


# -- round trip ----------------------------------------------------------------------------

_DEPLOYMENT_PATTERN = r"[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?/[a-z0-9]([-a-z0-9.]{0,20}[a-z0-9])?"
_deployments = st.from_regex(_DEPLOYMENT_PATTERN, fullmatch=True)
_ts = st.floats(0, 1e11, allow_nan=False, allow_infinity=False)
_counts = st.floats(0, 1e9, allow_nan=False, allow_infinity=False)
_ids = st.text(min_size=1, max_size=256)
_replicas = st.text(min_size=1, max_size=253)

events = st.one_of(
    st.builds(
        RequestStarted,
        deployment=_deployments,
        ts=_ts,
        request_id=_ids,
        replica=st.none() | _replicas,
    ),
    st.builds(
        RequestFinished,
        deployment=_deployments,
        ts=_ts,
        request_id=_ids,
        replica=st.none() | _replicas,
    ),
    st.builds(QueueLength, deployment=_deployments, ts=_ts, value=_counts),
    st.builds(Concurrency, deployment=_deployments, ts=_ts, value=_counts, replica=_replicas),
    st.builds(
        Signal,
        deployment=_deployments,
        ts=_ts,
        name=st.from_regex(r"[a-z][a-z0-9_]{0,62}", fullmatch=True),
        value=_counts,
    ),
)


@settings(max_examples=200, deadline=None)
@given(event=events)
def test_encode_decode_round_trip(event: Event) -> None:
    encoded = encode_event(event)
    assert decode_event(encoded) == event
    assert decode_event(encoded.decode()) == event
    assert json.loads(encoded)["type"] == event.__struct_config__.tag


@settings(max_examples=50, deadline=None)
@given(batch=st.lists(events, max_size=8))
def test_batch_round_trip(batch: list[Event]) -> None:
    raw = b"[" + b",".join(encode_event(e) for e in batch) + b"]"
    assert decode_events(raw) == batch


# -- JSON Schema ---------------------------------------------------------------------------
# ``jsonschema`` is not a dependency; this validates the subset of draft 2020-12 the schema
# uses, and fails loudly on any keyword it does not know so the check cannot go silently soft.

_ANNOTATIONS = {"title", "description", "default", "discriminator", "$schema", "$defs"}
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "string": lambda v: isinstance(v, str),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
}


def schema_errors(
    schema: dict[str, Any], value: Any, root: dict[str, Any], path: str = "$"
) -> list[str]:
    errors: list[str] = []
    for key, rule in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key == "$ref":
            assert rule.startswith("#/$defs/"), rule
            errors += schema_errors(root["$defs"][rule.removeprefix("#/$defs/")], value, root, path)
        elif key == "anyOf":
            if all(schema_errors(sub, value, root, path) for sub in rule):
                errors.append(f"{path}: matches none of anyOf")
        elif key == "type":
            if not _TYPES[rule](value):
                errors.append(f"{path}: not {rule}")
        elif key == "enum":
            if value not in rule:
                errors.append(f"{path}: not one of {rule}")
        elif key == "required":
            if isinstance(value, dict):
                errors += [f"{path}: missing {name}" for name in rule if name not in value]
        elif key == "properties":
            if isinstance(value, dict):
                for name, sub in rule.items():
                    if name in value:
                        errors += schema_errors(sub, value[name], root, f"{path}.{name}")
        elif key == "pattern":
            if isinstance(value, str) and not re.search(rule, value):
                errors.append(f"{path}: does not match {rule}")
        elif key in ("minimum", "maximum"):
            if _TYPES["number"](value) and (value < rule if key == "minimum" else value > rule):
                errors.append(f"{path}: {key} {rule}")
        elif key in ("minLength", "maxLength"):
            if isinstance(value, str) and (
                len(value) < rule if key == "minLength" else len(value) > rule
            ):
                errors.append(f"{path}: {key} {rule}")
        else:
            raise AssertionError(f"schema keyword {key!r} not understood by this test's validator")
    return errors


def test_schema_structure() -> None:
    schema = event_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "autoscaler event"
    json.dumps(schema)  # serialisable as published
    tags = {"request_started", "request_finished", "queue_length", "concurrency", "signal"}
    defs: dict[str, Any] = schema["$defs"]  # type: ignore[assignment]
    mapping: dict[str, str] = schema["discriminator"]["mapping"]  # type: ignore[index]
    assert schema["discriminator"]["propertyName"] == "type"  # type: ignore[index]
    assert set(mapping) == tags
    assert sorted(ref["$ref"] for ref in schema["anyOf"]) == sorted(mapping.values())  # type: ignore[attr-defined]
    for tag, ref in mapping.items():
        definition = defs[ref.removeprefix("#/$defs/")]
        assert definition["type"] == "object"
        assert definition["properties"]["type"] == {"enum": [tag]}
        assert {"type", "deployment", "ts"} <= set(definition["required"])
        assert set(definition["required"]) <= set(definition["properties"])
        assert definition["properties"]["ts"]["minimum"] == 0
        assert re.fullmatch(
            definition["properties"]["deployment"]["pattern"].strip("^$"), "ns/model"
        )


@pytest.mark.parametrize("raw", [raw for raw, _ in VALID])
def test_schema_accepts_valid_events(raw: str) -> None:
    schema = event_json_schema()
    assert schema_errors(schema, json.loads(raw), schema) == []


@pytest.mark.parametrize(("raw", "detail"), INVALID_EVENT)
def test_schema_rejects_what_the_decoder_rejects(raw: str, detail: str) -> None:
    schema = event_json_schema()
    assert schema_errors(schema, json.loads(raw), schema) != []


def test_schema_validator_is_not_vacuous() -> None:
    schema = event_json_schema()
    message = json.loads(VALID[5][0])
    assert schema_errors(schema, message, schema) == []
    message["value"] = -3
    assert schema_errors(schema, message, schema) != []
    with pytest.raises(AssertionError, match="not understood"):
        schema_errors({"oneOf": []}, 1, schema)


@settings(max_examples=50, deadline=None)
@given(event=events)
def test_schema_accepts_every_encodable_event(event: Event) -> None:
    schema = event_json_schema()
    assert schema_errors(schema, msgspec.json.decode(encode_event(event)), schema) == []
