"""structlog set-up: JSON lines for machines, a console renderer for people; always stderr so
that stdout stays free for machine-readable output (``simulate --json``).

Libraries that log through the standard ``logging`` module (aiokafka, aiohttp, asyncio) are
rendered by the same structlog renderer, so with JSON output every line on stderr is JSON.
Their repeated lines are rate-limited: during a Kafka outage aiokafka reports every failed
reconnect (hundreds of lines a minute), which says nothing the first line and the
``autoscaler_kafka_errors_total`` counter do not."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Hashable

import structlog

NOISY_LIBRARIES = ("aiokafka", "kafka")
"""Loggers kept at WARNING or above: at INFO aiokafka logs every join, fetch session and
reconnect."""


class Throttle:
    """At most ``burst`` lines per key in each ``interval_s``; the lines held back are counted
    and that count travels with the next line let through (``suppressed``), so nothing is
    lost from the picture, only repetition."""

    def __init__(
        self,
        burst: int = 5,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1000,
    ) -> None:
        self.burst = burst
        self.interval_s = interval_s
        self.clock = clock
        self.max_keys = max_keys
        # key -> (window start, lines let through in it, lines held back since the last one)
        self._windows: dict[Hashable, tuple[float, int, int]] = {}

    def allow(self, key: Hashable) -> int | None:
        """None: hold this line back. Otherwise let it through, reporting this many held
        back before it."""
        now = self.clock()
        start, passed, held = self._windows.get(key, (now, 0, 0))
        if now - start >= self.interval_s:
            start, passed = now, 0
        if passed >= self.burst:
            self._windows[key] = (start, passed, held + 1)
            return None
        if key not in self._windows and len(self._windows) >= self.max_keys:
            # Keys come from code (logger and message template), but bound them anyway.
            self._windows.clear()
        self._windows[key] = (start, passed + 1, 0)
        return held


class _ThrottleFilter(logging.Filter):
    """Rate-limits standard-library records per logger and message template (the template,
    not the formatted text: "Unable connect to node %s" is one line however the node
    varies)."""

    def __init__(self, throttle: Throttle) -> None:
        super().__init__()
        self.throttle = throttle

    def filter(self, record: logging.LogRecord) -> bool:
        held = self.throttle.allow((record.name, str(record.msg)))
        if held is None:
            return False
        if held:
            record.suppressed = held
        return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (a CLI runner in tests swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _shared_processors() -> list[structlog.typing.Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def configure_logging(level: str = "info", json: bool | None = None) -> None:
    use_json = (not sys.stderr.isatty()) if json is None else json
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*_shared_processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(numeric, renderer, use_json)


def _route_stdlib_logging(level: int, renderer: structlog.typing.Processor, json: bool) -> None:
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *_shared_processors(),
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(allow=("suppressed",)),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # In JSON a traceback becomes one string field of the line, not lines of its own
            # (the console renderer prints it readably by itself).
            *([structlog.processors.format_exc_info] if json else []),
            renderer,
        ],
    )
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(formatter)
    # Per message template: 3 lines a minute. An outage then costs aiokafka's dozen kinds of
    # complaint a few dozen lines a minute, not one per retry.
    handler.addFilter(_ThrottleFilter(Throttle(burst=3, interval_s=60.0)))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)  # configured again (tests run the CLI several times)
    root.addHandler(handler)
    root.setLevel(level)
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
