"""Schedule windows: when a time-of-day rule is in force."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from autoscaler.core.schedule import Window, active_at

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = frozenset(range(5))


def at(day: int, hour: int, minute: int = 0) -> float:
    """Unix time of 2026-11-<day> hour:minute in Berlin (23 Nov 2026 is a Monday)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=BERLIN).timestamp()


OFFICE = Window(WEEKDAYS, 9 * 60, 17 * 60, BERLIN)
NIGHT = Window(WEEKDAYS, 22 * 60, 6 * 60, BERLIN)  # spans midnight


@pytest.mark.parametrize(
    ("window", "now", "want"),
    [
        (OFFICE, at(23, 9), True),  # Monday, at the start: inclusive
        (OFFICE, at(23, 16, 59), True),
        (OFFICE, at(23, 17), False),  # the end is exclusive
        (OFFICE, at(28, 12), False),  # Saturday
        (NIGHT, at(27, 23), True),  # Friday night
        (NIGHT, at(28, 3), True),  # Saturday 03:00 belongs to Friday's window
        (NIGHT, at(29, 3), False),  # Sunday 03:00 would be Saturday's: not a weekday
        (NIGHT, at(23, 3), False),  # Monday 03:00 would be Sunday's
        (NIGHT, at(24, 3), True),  # Tuesday 03:00 is Monday's
        (NIGHT, at(24, 6), False),
    ],
)
def test_active_at(window: Window, now: float, want: bool) -> None:
    assert active_at(window, now) is want


def test_the_zone_decides_the_wall_time() -> None:
    utc = Window(WEEKDAYS, 9 * 60, 17 * 60, ZoneInfo("UTC"))
    # 09:30 in Berlin is 08:30 UTC in November
    assert active_at(OFFICE, at(23, 9, 30)) and not active_at(utc, at(23, 9, 30))
