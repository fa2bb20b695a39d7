"""Decision state to bytes and back, for stores outside the process (Redis).

The policy's own state is decoded into the type its ``initial_state()`` has, and only when
the stored state was written by the same policy: after a policy change the guardrails'
history carries over and the policy starts fresh.
"""

from __future__ import annotations

from typing import Any

import msgspec

from autoscaler.core.decider import DecisionState
from autoscaler.core.guardrails import GuardState

FORMAT = 1


class _Stored(msgspec.Struct, frozen=True):
    format: int
    policy_name: str
    policy: msgspec.Raw
    guard: GuardState


def encode_state(policy_name: str, state: DecisionState) -> bytes:
    return msgspec.json.encode(
        {
            "format": FORMAT,
            "policy_name": policy_name,
            "policy": state.policy,
            "guard": state.guard,
        }
    )


def decode_state(raw: bytes, policy_name: str, initial_policy_state: Any) -> DecisionState | None:
    """The stored state, or None when it is unreadable or from another format."""
    try:
        stored = msgspec.json.decode(raw, type=_Stored)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if stored.format != FORMAT:
        return None
    if stored.policy_name != policy_name:
        return DecisionState(initial_policy_state, stored.guard)
    try:
        policy_state = msgspec.json.decode(stored.policy, type=type(initial_policy_state))
    except (msgspec.DecodeError, msgspec.ValidationError):
        policy_state = initial_policy_state
    return DecisionState(policy_state, stored.guard)
