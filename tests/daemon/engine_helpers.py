"""A hand-driven clock for engine tests."""

from __future__ import annotations

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now
