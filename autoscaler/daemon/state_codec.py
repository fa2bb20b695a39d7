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
from autoscaler.daemon.ports import Saved

FORMAT = 1


class _Stored(msgspec.Struct, frozen=True):
    format: int
    policy_name: str
    policy: msgspec.Raw
    guard: GuardState
    # Added after format 1 first shipped; absent in older records, hence the defaults.
    replicas: int | None = None
    fence: int = 0


def encode_state(policy_name: str, saved: Saved) -> bytes:
    return msgspec.json.encode(
        {
            "format": FORMAT,
            "policy_name": policy_name,
            "policy": saved.state.policy,
            "guard": saved.state.guard,
            "replicas": saved.replicas,
            "fence": saved.fence,
        }
    )


def decode_state(raw: bytes, policy_name: str, initial_policy_state: Any) -> Saved | None:
    """The stored state, or None when it is unreadable or from another format."""
    try:
        stored = msgspec.json.decode(raw, type=_Stored)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if stored.format != FORMAT:
        return None
    policy_state = initial_policy_state
    if stored.policy_name == policy_name:
        try:
            policy_state = msgspec.json.decode(stored.policy, type=type(initial_policy_state))
        except (msgspec.DecodeError, msgspec.ValidationError):
            policy_state = initial_policy_state
    return Saved(DecisionState(policy_state, stored.guard), stored.replicas, stored.fence)
