"""When a schedule rule is in force: time-of-day windows on given weekdays, in a time zone.

Decision logic, so it lives in the core and is pure: the time is passed in, and the zone is a
``tzinfo`` the configuration built at the boundary (reading the tz database is I/O there, once,
never per decision). Converting a unix time to local wall time with a given zone reads no clock;
``datetime`` is imported here for that alone (the purity test allows it in this module only,
and only ``fromtimestamp`` with a zone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class Window:
    """A rule's time window: ``[start_min, end_min)`` minutes after local midnight on the
    ``weekdays`` (0 = Monday); ``end_min <= start_min`` spans midnight, and the part after
    midnight belongs to the previous day's window."""

    weekdays: frozenset[int]
    start_min: int
    end_min: int
    zone: tzinfo


def active_at(window: Window, now: float) -> bool:
    """Whether ``window`` holds at unix time ``now``."""
    local = datetime.fromtimestamp(now, window.zone)
    minute = local.hour * 60 + local.minute
    day = local.weekday()
    start, end = window.start_min, window.end_min
    if start < end:
        return day in window.weekdays and start <= minute < end
    if minute >= start:
        return day in window.weekdays
    return minute < end and (day - 1) % 7 in window.weekdays
