"""The event format: one JSON object per message, decoded and validated with msgspec.

``request_started`` / ``request_finished`` bracket a request on the deployment (its in-flight
count); ``queue_length`` reports requests waiting for a slot; ``concurrency`` is a replica's own
report of how many requests it is serving; ``signal`` is any other named number about a
deployment (a Prometheus query's result, say) for policies that scale on it. ``ts`` is the
producer's unix time in seconds.
The JSON Schema published in ``docs/event.schema.json`` is generated from these types.
"""

from __future__ import annotations

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

RejectReason = Literal["invalid_json", "invalid_event"]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A message that is not a valid event: counted by ``reason`` and skipped, never raised."""

    reason: RejectReason
    detail: str


_decoder = msgspec.json.Decoder(Event)
# A plain list decoder: ``list[Raw] | Raw`` rejected every non-array message as invalid JSON
# ("Expected `array`, got `object`"), so a single event sent to decode_events was lost.
_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])


def decode_event(raw: bytes | str) -> Event | Rejected:
    try:
        event: Event = _decoder.decode(raw)
        return event
    except msgspec.ValidationError as exc:
        return Rejected("invalid_event", str(exc))
    except msgspec.DecodeError as exc:
        return Rejected("invalid_json", str(exc))


def decode_events(raw: bytes | str) -> list[Event | Rejected]:
    """One event or a JSON array of events; each element is judged on its own, so one bad
    element does not lose the good ones beside it."""
    try:
        parsed = _batch_decoder.decode(raw)
    except msgspec.ValidationError:
        # Not an array: a single message, judged (and rejected, if need be) on its own.
        return [decode_event(raw)]
    except msgspec.DecodeError as exc:
        return [Rejected("invalid_json", str(exc))]
    return [decode_event(item) for item in parsed]


def encode_event(event: Event) -> bytes:
    return msgspec.json.encode(event)


def event_json_schema() -> dict[str, object]:
    schema: dict[str, object] = msgspec.json.schema(Event)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "autoscaler event"
    return schema
