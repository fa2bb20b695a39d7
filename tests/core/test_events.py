"""The event wire format: decoding, rejection reasons, batches, round trips and the schema."""

from __future__ import annotations

import json
import re
import tracemalloc
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
    split_events,
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


# -- limits: depth, size, encoding (issue 9, items 1, 2 and 11) ----------------------------


def _nest(depth: int, open_: str = "[", close: str = "]", inner: str = "1") -> str:
    return open_ * depth + inner + close * depth


def _event_with_extra(extra: str) -> bytes:
    return (_with(_QL)[:-1] + f', "extra": {extra}}}').encode()


DEEP = [
    # The input: about 1,000 levels in 2 KB raised RecursionError from msgspec.
    pytest.param(_nest(1000, inner="").encode(), id="1000 arrays"),
    pytest.param(_nest(1000, '{"a":', "}").encode(), id="1000 objects"),
    pytest.param(_nest(100_000, inner="").encode(), id="100000 arrays"),
    pytest.param(_event_with_extra(_nest(1000)), id="deep extra field of an event"),
    pytest.param(b"[" * 5000, id="unclosed"),
    pytest.param(_event_with_extra(_nest(16)), id="one level over the limit"),
]


@pytest.mark.parametrize("raw", DEEP)
def test_deep_json_is_rejected_as_too_deep_never_raised(raw: bytes) -> None:
    for results in ([decode_event(raw)], decode_events(raw), decode_events(b"[" + raw + b"]")):
        assert len(results) == 1
        result = results[0]
        assert isinstance(result, Rejected), result
        assert result.reason == "too_deep", result
        assert "16 levels" in result.detail


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_event_with_extra(_nest(14)), id="16 levels in all"),
        pytest.param(_event_with_extra('"' + "[" * 5000 + '"'), id="brackets inside a string"),
        pytest.param(
            _event_with_extra(r'["\\", "\\\\", ' + "[" * 13 + "]" * 13 + "]"),
            id="escaped backslashes",
        ),
        pytest.param(_event_with_extra(r'"\"[[[[[[[[[[[[[[[[[[[[\""'), id="escaped quotes"),
        pytest.param(_event_with_extra('{"k[{": "v]}"}'), id="brackets in keys and values"),
    ],
)
def test_nesting_within_the_limit_decodes(raw: bytes) -> None:
    assert decode_event(raw) == QueueLength(deployment="ns/model", ts=5.0, value=1.0)
    assert decode_events(b"[" + raw + b"]") == [decode_event(raw)]


def test_the_depth_limit_is_a_parameter() -> None:
    raw = _event_with_extra(_nest(30))
    assert isinstance(decode_event(raw), Rejected)
    assert decode_event(raw, max_depth=40) == QueueLength(deployment="ns/model", ts=5.0, value=1.0)


def test_a_body_over_the_event_limit_is_refused_whole() -> None:
    # The input, 8 MiB of `[{}, {}, ...]`: 2.8 million elements, 89 s and 744 MB once.
    body = b"[" + b"{}," * 2_796_000 + b"{}]"
    assert len(body) > 8_000_000
    result = split_events(body)
    assert result == Rejected("too_many", "2796001 events in one body; at most 10000")
    assert decode_events(body) == [result]
    ok = b"[" + b", ".join([encode_event(VALID[0][1])] * 10) + b"]"
    assert len(decode_events(ok, max_events=10)) == 10
    assert decode_events(ok, max_events=9) == [
        Rejected("too_many", "10 events in one body; at most 9")
    ]


def test_a_body_over_the_event_limit_is_refused_before_its_elements_are_built() -> None:
    # Building the 2.8 million elements only to count them took 190 MB.
    body = b"[" + b"{}," * 2_796_000 + b"{}]"
    tracemalloc.start()
    try:
        result = split_events(body)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(result, Rejected) and result.reason == "too_many"
    assert peak < 48 * 2**20, peak


def test_commas_inside_elements_do_not_count_as_events() -> None:
    batch = [json.loads(_with(_QL, extra=[1, 2, 3, {"a": 1, "b": "x,y"}])) for _ in range(5)]
    result = split_events(json.dumps(batch), max_events=5)
    assert isinstance(result, list) and len(result) == 5


BAD_TEXT = [
    # msgspec said "Input data was truncated" for a lone high surrogate.
    pytest.param(rb'"\ud800"', "invalid unicode escape", id="lone surrogate"),
    pytest.param(rb'"\ud800x"', "invalid unicode escape", id="lone surrogate, then text"),
    pytest.param(rb'"\udbff\\"', "invalid unicode escape", id="lone surrogate, then escape"),
    pytest.param(rb'"\ud800\u0041"', "surrogate pair", id="high surrogate, no low"),
    pytest.param(rb'"\udc00"', "surrogate pair", id="lone low surrogate"),
    # Raised UnicodeDecodeError out of msgspec (the Kafka source would have died on it).
    pytest.param(b'"\xff"', "invalid UTF-8", id="invalid utf-8 in a string"),
    pytest.param(b'"\xed\xa0\x80"', "invalid UTF-8", id="utf-8 encoded surrogate"),
]


@pytest.mark.parametrize(("value", "detail"), BAD_TEXT)
def test_bad_text_in_strings_is_invalid_json_with_a_clear_detail(value: bytes, detail: str) -> None:
    forms = [_with(_QL)[:-1].encode() + b', "deployment": ' + value + b"}"]
    if b"\\u" in value:
        # Escapes are checked in skipped fields too (UTF-8 is not: such a value is ignored).
        forms.append(b'{"type": "queue_length", "x": ' + value + b"}")
    for raw in forms:
        for result in (decode_event(raw), *decode_events(b"[" + raw + b"]")):
            assert isinstance(result, Rejected)
            assert result.reason == "invalid_json"
            assert detail in result.detail
            assert "truncated" not in result.detail


def test_an_escaped_backslash_before_u_is_not_a_surrogate() -> None:
    raw = _with(_QL)[:-1].encode() + rb', "x": "\\ud800"}'
    assert decode_event(raw) == QueueLength(deployment="ns/model", ts=5.0, value=1.0)
    truncated = rb'{"x": "\\ud800'
    result = decode_event(truncated)
    assert isinstance(result, Rejected) and "truncated" in result.detail


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{},"\\ab'),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet='[]{},"\\ab', max_size=4), children, max_size=4)
    ),
    max_leaves=30,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(items=st.lists(_json_values, max_size=12), limit=st.integers(1, 12), depth=st.integers(2, 8))
def test_the_scan_agrees_with_the_decoder(items: list[Any], limit: int, depth: int) -> None:
    """Depth and element count found without decoding are the decoder's own."""
    raw = json.dumps(items)
    result = split_events(raw, max_depth=depth, max_events=limit)
    if _depth(items) > depth:
        assert result == Rejected("too_deep", f"JSON nested deeper than {depth} levels")
    elif len(items) > limit:
        assert isinstance(result, Rejected) and result.reason == "too_many"
        assert result.detail.startswith(f"{len(items)} events")
    else:
        assert isinstance(result, list) and len(result) == len(items)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300) | st.text(alphabet='[]{},":\\ud800abc1 \xff', max_size=300))
def test_decoding_never_raises(raw: bytes | str) -> None:
    assert isinstance(decode_event(raw), Rejected | Event)
    for result in decode_events(raw, max_events=5, max_depth=4):
        assert isinstance(result, Rejected | Event)


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
