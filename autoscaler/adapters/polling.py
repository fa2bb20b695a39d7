"""The loop every polled source runs: read, then wait ``interval_s`` or until stopped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


async def poll_until_stopped(
    stop: asyncio.Event, interval_s: float, poll: Callable[[], Awaitable[None]]
) -> None:
    while not stop.is_set():
        await poll()
        with contextlib.suppress(TimeoutError):  # the poll interval has passed
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
