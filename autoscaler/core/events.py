"""The event format: one JSON object per message, decoded and validated with msgspec.

``request_started`` / ``request_finished`` bracket a request on the deployment (its in-flight
count); ``queue_length`` reports requests waiting for a slot; ``concurrency`` is a replica's own
report of how many requests it is serving; ``signal`` is any other named number about a
deployment (a Prometheus query's result, say) for policies that scale on it. ``ts`` is the
producer's unix time in seconds.
The JSON Schema published in ``docs/event.schema.json`` is generated from these types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

DeploymentName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
        description="namespace/name of the Kubernetes deployment",
    ),
]
Timestamp = Annotated[float, msgspec.Meta(ge=0, le=1e11, description="unix time, seconds")]
RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
ReplicaName = Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
Count = Annotated[float, msgspec.Meta(ge=0, le=1e9)]
SIGNAL_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
SignalName = Annotated[
    str,
    msgspec.Meta(
        pattern=SIGNAL_NAME_PATTERN,
        description="short identifier a policy refers to (e.g. `params.signal` of `metric`)",
    ),
]


class RequestStarted(msgspec.Struct, tag="request_started", tag_field="type", frozen=True):
    deployment: DeploymentName
    ts: Timestamp
    request_id: RequestId
    replica: ReplicaName | None = None


class RequestFinished(msgspec.Struct, tag="request_finished", tag_field="type", frozen=True):
    deployment: DeploymentName
    ts: Timestamp
    request_id: RequestId
    replica: ReplicaName | None = None


class QueueLength(msgspec.Struct, tag="queue_length", tag_field="type", frozen=True):
    deployment: DeploymentName
    ts: Timestamp
    value: Count


class Concurrency(msgspec.Struct, tag="concurrency", tag_field="type", frozen=True):
    deployment: DeploymentName
    ts: Timestamp
    value: Count
    replica: ReplicaName


class Signal(msgspec.Struct, tag="signal", tag_field="type", frozen=True):
    """A named reading about a deployment, not load: policies asking for it get the latest."""

    deployment: DeploymentName
    ts: Timestamp
    name: SignalName
    value: Count


Event = RequestStarted | RequestFinished | QueueLength | Concurrency | Signal

RejectReason = Literal[
    "invalid_json",  # not JSON, or not UTF-8
    "invalid_event",  # JSON, but not an event of the schema
    "too_deep",  # nested deeper than the depth limit: refused before decoding
    "too_many",  # a body holding more events than the limit: refused whole
]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that is not a valid event: counted by ``reason`` and skipped, never raised."""

    reason: RejectReason
    detail: str


DEFAULT_MAX_JSON_DEPTH = 16
"""Nesting levels a message may have. An event is one object (two levels inside a batch);
the rest is room for unknown extra fields. msgspec recurses once per level and raised
``RecursionError`` at about 1,000: such a message must be refused before it is decoded."""
DEFAULT_MAX_EVENTS_PER_BODY = 10_000

_decoder = msgspec.json.Decoder(Event)
# A plain list decoder: ``list[Raw] | Raw`` rejected every non-array message as invalid JSON
# ("Expected `array`, got `object`"), so a single event sent to decode_events was lost.
_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_JSON_SPACE = b" \t\n\r"
_SCAN_CHUNK = 1 << 20
# msgspec reports a high surrogate escape without its low half as "Input data was truncated";
# this finds one (an escape: preceded by an even number of backslashes) to say so instead.
_LONE_HIGH_SURROGATE = re.compile(
    rb"(?<!\\)(?:\\\\)*\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
)


def _structure(data: bytes, max_depth: int) -> tuple[int, int]:
    """(nesting depth, elements of a top-level array) of a JSON text, not counting brackets
    and commas inside strings. The depth is exact up to ``max_depth + 1`` (the scan stops
    there); the count is exact for a valid array, and an estimate otherwise (the decoder then
    rejects the text anyway). Vectorised, in 1 MiB chunks: an 8 MiB body takes about 0.2 s
    and 20 MB."""
    # Imported here, not with the module: only a body with many brackets or commas gets
    # here, and numpy is 15 MiB of every daemon's memory that most never need.
    import numpy as np

    # Without escaped backslashes and escaped quotes every quote left opens or closes a
    # string, so string contents are where an odd number of quotes precede.
    text = np.frombuffer(data.replace(b"\\\\", b"").replace(b'\\"', b""), dtype=np.uint8)
    is_array = data.lstrip(_JSON_SPACE)[:1] == b"["
    quoted, depth, deepest, commas = np.uint8(0), 0, 0, 0
    for start in range(0, len(text), _SCAN_CHUNK):
        chunk = text[start : start + _SCAN_CHUNK]
        inside = np.bitwise_xor.accumulate(chunk == 34, dtype=np.uint8) ^ quoted
        quoted = inside[-1]
        outside = inside == 0
        step = ((chunk == 91) | (chunk == 123)).astype(np.int8)
        step -= (chunk == 93) | (chunk == 125)
        step *= outside
        level = np.cumsum(step, dtype=np.int64) + depth
        deepest = max(deepest, int(level.max()))
        if deepest > max_depth:
            break
        depth = int(level[-1])
        if is_array:
            commas += int(np.count_nonzero((chunk == 44) & outside & (level == 1)))
    return deepest, commas + 1 if is_array else 1


def _deep(max_depth: int) -> Rejected:
    return Rejected("too_deep", f"JSON nested deeper than {max_depth} levels")


def _as_bytes(raw: bytes | str) -> bytes:
    return raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw


def decode_event(raw: bytes | str, *, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> Event | Rejected:
    """One message; a ``Rejected`` for anything that is not an event. Never raises."""
    # Called once per Kafka message, so written out in one function. The common case is
    # decided in two C calls: not enough brackets to nest deeper than the limit.
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") > max_depth:
        depth, _ = _structure(data, max_depth)
        if depth > max_depth:
            return _deep(max_depth)
    return decode_item(data)


def decode_item(item: bytes | msgspec.Raw) -> Event | Rejected:
    """One message whose depth is already checked (an element of ``split_events``)."""
    try:
        event: Event = _decoder.decode(item)
        return event
    except msgspec.ValidationError as exc:
        return Rejected("invalid_event", str(exc))
    except msgspec.DecodeError as exc:
        return Rejected("invalid_json", _json_detail(str(exc), item))
    except UnicodeDecodeError as exc:  # invalid UTF-8 inside a string
        return Rejected("invalid_json", f"invalid UTF-8 in a string: {exc.reason}")
    except RecursionError:  # the last line of defence; the depth check comes first
        return Rejected("too_deep", "JSON nested deeper than the decoder can follow")


def _json_detail(message: str, item: bytes | msgspec.Raw) -> str:
    if "truncated" in message and _LONE_HIGH_SURROGATE.search(bytes(item)):
        return "invalid unicode escape: a high surrogate (\\ud800-\\udbff) without its low half"
    if "surrogate" in message:
        return f"invalid unicode escape: {message}"
    return message


def split_events(
    raw: bytes | str,
    *,
    max_depth: int = DEFAULT_MAX_JSON_DEPTH,
    max_events: int = DEFAULT_MAX_EVENTS_PER_BODY,
) -> list[bytes | msgspec.Raw] | Rejected:
    """The messages of a body, undecoded: a JSON array's elements, or the body itself. A body
    nested too deep, holding more than ``max_events`` elements, or not JSON is refused whole,
    before any element is built (2.8 million elements once cost 190 MB just to count)."""
    data = _as_bytes(raw)
    brackets = data.count(b"[") + data.count(b"{")
    if brackets > max_depth or data.count(b",") >= max_events:
        depth, count = _structure(data, max_depth)
        if depth > max_depth:
            return _deep(max_depth)
        if count > max_events:
            return _too_many(count, max_events)
    if data.lstrip(_JSON_SPACE)[:1] != b"[":
        return [data]  # a single message, judged on its own
    try:
        parts = _batch_decoder.decode(data)
    except msgspec.DecodeError as exc:  # ValidationError included: an array was expected
        return Rejected("invalid_json", _json_detail(str(exc), data))
    except UnicodeDecodeError as exc:
        return Rejected("invalid_json", f"invalid UTF-8 in a string: {exc.reason}")
    except RecursionError:
        return _deep(max_depth)
    if len(parts) > max_events:  # the scan's count is exact for valid arrays; to be sure
        return _too_many(len(parts), max_events)
    return list(parts)


def _too_many(count: int, max_events: int) -> Rejected:
    return Rejected("too_many", f"{count} events in one body; at most {max_events}")


def decode_events(
    raw: bytes | str,
    *,
    max_depth: int = DEFAULT_MAX_JSON_DEPTH,
    max_events: int = DEFAULT_MAX_EVENTS_PER_BODY,
) -> list[Event | Rejected]:
    """One event or a JSON array of events; each element is judged on its own, so one bad
    element does not lose the good ones beside it. Never raises."""
    parts = split_events(raw, max_depth=max_depth, max_events=max_events)
    if isinstance(parts, Rejected):
        return [parts]
    return [decode_item(part) for part in parts]


def encode_event(event: Event) -> bytes:
    return msgspec.json.encode(event)


def event_json_schema() -> dict[str, object]:
    schema: dict[str, object] = msgspec.json.schema(Event)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "autoscaler event"
    return schema
