"""Per-deployment load tracking: events in, a load picture and windowed means out.

The tracker runs on the caller's clock (``now``, the time the adapter processes an event),
not on producers' timestamps: producers' clocks skew and events arrive late or out of order.
Event ``ts`` is used only to judge lateness and order. Every irregular event is counted under
a named outcome and handled deliberately; nothing here raises on bad input.

Named signals (``signal`` events) are kept beside the load, latest reading per name, and reach
policies through ``Snapshot.signals``; they never count as load.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from autoscaler.core.events import Event, QueueLength, RequestFinished, RequestStarted, Signal
from autoscaler.core.measures import PEAK_WINDOW_S, ArrivalRates, ColdStartObserver, ServiceMoments
from autoscaler.core.settings import Settings
from autoscaler.core.snapshot import Snapshot
from autoscaler.core.window import SlidingMean

Outcome = Literal[
    "applied",
    "late",  # older than LATE_AFTER_S but still meaningful: applied
    "duplicate",  # a start for a request already in flight, or a repeated finish: ignored
    "finish_before_start",  # remembered, so the start that follows is not counted
    "stale",  # a queue/concurrency/signal sample older than one already applied: ignored
    "expired_on_arrival",  # a start older than max_request_duration_s: ignored
]

LATE_AFTER_S = 10.0
"""An event whose ts is this far behind ``now`` counts as late."""
SIGNAL_TTL_S = 60.0
"""A queue-length, replica-concurrency or named-signal report older than this no longer counts:
a reporter that died must not pin a deployment up forever."""
TOMBSTONE_S = 600.0
"""How long a finished request id is remembered to recognise duplicates and reordering."""
_NO_SIGNALS: Mapping[str, float] = MappingProxyType({})


@dataclass(slots=True)
class _Batch:
    """What the events of one ``apply_batch`` changed, for the load picture at its end."""

    load_before: float
    changed: bool = False
    """Some event changed in-flight requests, the queue or a replica's report."""
    worked: bool = False
    """Work was present after some event (in flight, queued or reported busy)."""


class LoadTracker:
    """In-flight requests, queue length and replica reports of one deployment."""

    # Slots, not a __dict__: one tracker per deployment, and its dict alone was 1.5 KiB.
    __slots__ = (
        "_arrivals",
        "_batch",
        "_cold_starts",
        "_expiry",
        "_in_flight",
        "_in_flight_level",
        "_last_work",
        "_load",
        "_panic",
        "_panic_in_flight",
        "_queue",
        "_queue_last_nonzero",
        "_queue_seen_at",
        "_queue_ts",
        "_replica_sum",
        "_replicas",
        "_replicas_busy",
        "_seq",
        "_service",
        "_signals",
        "_stable",
        "_stable_in_flight",
        "_start_sum",
        "_t",
        "_tomb_head",
        "_tomb_order",
        "_tombstones",
        "counts",
        "settings",
        "start",
    )

    def __init__(self, settings: Settings, start: float) -> None:
        self.settings = settings
        self.start = start
        self.counts: Counter[str] = Counter()
        self._t = start
        self._in_flight: dict[Hashable, float] = {}
        self._expiry: list[tuple[float, int, Hashable]] = []
        self._seq = 0
        self._tombstones: dict[Hashable, float] = {}
        # Finished ids in the order they were remembered, the expired ones before
        # ``_tomb_head``: a list and an index, not a deque, whose first block alone is 0.5 KiB
        # (most deployments remember a handful of ids).
        self._tomb_order: list[tuple[float, Hashable]] = []
        self._tomb_head = 0
        self._queue = 0.0
        self._queue_ts = -1.0
        self._queue_seen_at = start
        self._replicas: dict[str, tuple[float, float, float]] = {}  # name -> (value, ts, seen_at)
        self._replica_sum = 0.0
        self._replicas_busy = 0  # replicas reporting a nonzero value
        self._signals: dict[str, tuple[float, float, float]] = {}  # name -> (value, ts, seen_at)
        self._load = 0.0
        self._last_work = start
        self._stable = SlidingMean(settings.window_s, start)
        self._panic = SlidingMean(
            settings.panic_window_s, start, bucket_s=min(1.0, settings.panic_window_s / 6)
        )
        # The same windows over in-flight requests alone: a queued backlog is a stock that
        # existing replicas drain, not a rate that needs replicas of its own (see the
        # `concurrency` policy), so policies can tell the two apart.
        self._in_flight_level = 0.0
        self._stable_in_flight = SlidingMean(settings.window_s, start)
        self._panic_in_flight = SlidingMean(
            settings.panic_window_s, start, bucket_s=min(1.0, settings.panic_window_s / 6)
        )
        self._service = ServiceMoments()
        self._start_sum = 0.0  # sum of in-flight requests' start times, for their total age
        self._arrivals = ArrivalRates(start)
        self._cold_starts = ColdStartObserver()
        self._queue_last_nonzero = -math.inf
        """When a queue was last present: with none for a whole window, the in-flight means
        equal the load means and need not be read twice."""
        self._batch: _Batch | None = None
        """Set while ``apply_batch`` runs: the changes its events make, settled at its end."""

    # -- events --------------------------------------------------------------------------

    def apply(self, event: Event, now: float) -> Outcome:
        # The front door of every event, the simulator's too: kept to the work it must do
        # (the clock inlined, lateness judged only for what was applied).
        if now > self._t:
            self._t = now
        else:
            now = self._t
        outcome: Outcome
        if isinstance(event, RequestStarted):
            if event.ts < now - self.settings.max_request_duration_s:
                outcome = "expired_on_arrival"
            else:
                outcome = self.request_started(now, event.request_id)
        elif isinstance(event, RequestFinished):
            outcome = self.request_finished(now, event.request_id)
        elif isinstance(event, QueueLength):
            outcome = self.queue_length(now, event.value, event.ts)
        elif isinstance(event, Signal):
            outcome = self.signal(now, event.name, event.value, event.ts)
        else:
            outcome = self.replica_concurrency(now, event.replica, event.value, event.ts)
        if outcome == "applied" and event.ts < now - LATE_AFTER_S:
            outcome = "late"
        self.counts[outcome] += 1
        return outcome

    def apply_batch(self, events: Iterable[Event], now: float, outcomes: dict[str, int]) -> None:
        """Apply events that arrived together at ``now`` (one poll's events for this
        deployment), adding each one's outcome to ``outcomes``.

        The same as applying them one by one, except that the load picture is brought up to
        date once, at the end: every event of the batch happens at the same instant, so the
        levels it passes through in between last no time and weigh nothing in any window.
        What they would have left behind all the same is kept: a request that started and
        finished within the batch still counts as work (``idle_s``). (A queue that came and
        went within it is not remembered as one: having lasted no time, it put nothing into
        the load windows that the in-flight windows lack.)"""
        now = self._clock(now)
        batch = self._batch = _Batch(self._load)
        try:
            for event in events:
                outcome = self.apply(event, now)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
        finally:
            # Also after an event that raised: what the others changed is settled.
            self._batch = None
            if batch.changed:
                self._changed(now)
                if batch.worked or batch.load_before > 0:
                    self._last_work = now

    def request_started(self, now: float, request_id: Hashable) -> Outcome:
        now = self._clock(now)
        if request_id in self._in_flight:
            return "duplicate"
        if self._tombstones.pop(request_id, None) is not None:
            # Its finish came first: the request is already over.
            return "finish_before_start"
        self._in_flight[request_id] = now
        self._start_sum += now
        self._arrivals.add(now, 1.0, request=True)
        self._seq += 1
        heapq.heappush(
            self._expiry, (now + self.settings.max_request_duration_s, self._seq, request_id)
        )
        self._changed(now)
        return "applied"

    def request_finished(self, now: float, request_id: Hashable) -> Outcome:
        now = self._clock(now)
        started = self._in_flight.pop(request_id, None)
        if started is not None:
            self._service.add(now - started)
            self._start_sum -= started
            self._remember(now, request_id)
            self._changed(now)
            return "applied"
        if request_id in self._tombstones:
            return "duplicate"
        self._remember(now, request_id)
        return "finish_before_start"

    def queue_length(self, now: float, value: float, ts: float | None = None) -> Outcome:
        now = self._clock(now)
        # Ordered by the producer's time, but never past our own: a sample dated ahead (a fast
        # clock) must not make every honest sample after it look stale.
        ts = now if ts is None else min(ts, now)
        if ts < self._queue_ts:
            return "stale"
        # A longer queue is that many more arrivals; a shorter one gave its requests a slot,
        # and their starts count them (see ArrivalRates).
        self._arrivals.add(now, value - self._queue, request=False)
        self._queue, self._queue_ts, self._queue_seen_at = value, ts, now
        self._changed(now)
        return "applied"

    def replica_concurrency(
        self, now: float, replica: str, value: float, ts: float | None = None
    ) -> Outcome:
        now = self._clock(now)
        ts = now if ts is None else min(ts, now)  # see queue_length
        previous = self._replicas.get(replica)
        if previous is not None and ts < previous[1]:
            return "stale"
        self._replica_delta(previous[0] if previous else 0.0, value)
        self._replicas[replica] = (value, ts, now)
        self._changed(now)
        return "applied"

    def signal(self, now: float, name: str, value: float, ts: float | None = None) -> Outcome:
        """The latest reading of a named signal. It is not load: windows, idle time and
        prompt decisions do not move, only ``Snapshot.signals`` does."""
        now = self._clock(now)
        ts = now if ts is None else min(ts, now)  # see queue_length
        previous = self._signals.get(name)
        if previous is not None and ts < previous[1]:
            return "stale"
        self._signals[name] = (value, ts, now)
        return "applied"

    # -- reading -------------------------------------------------------------------------

    @property
    def now(self) -> float:
        """The latest time the tracker has seen (its clock never steps back)."""
        return self._t

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def is_in_flight(self, request_id: Hashable) -> bool:
        """Whether a request started and has neither finished nor expired."""
        return request_id in self._in_flight

    def idle_for(self, now: float) -> float:
        """Seconds without work (no request in flight, no queue, no busy replica) as of
        ``now``, 0 while there is some. Requests and reports past their lifetime are let go
        first, as a snapshot would: a tracker no decision reads must not be kept busy forever
        by a request whose finish was lost."""
        now = self._clock(now)
        self._expire(now)
        return 0.0 if self._load > 0 else now - self._last_work

    @property
    def current_load(self) -> float:
        """In-flight plus queued, as of the last change."""
        return self._load

    def snapshot(
        self,
        now: float,
        deployment: str,
        current_replicas: int,
        ready_replicas: int,
        state_persisted: bool = True,
    ) -> Snapshot:
        now = self._clock(now)
        self._expire(now)
        self._cold_starts.observe(now, current_replicas, ready_replicas)
        arrivals = self._arrivals
        counted = arrivals.seen
        in_flight = max(len(self._in_flight), round(self._replica_sum))
        load = self._load
        stable = self._stable.mean(now)
        panic = self._panic.mean(now)
        # Windows span up to one bucket (1 s) more than window_s: wait that long too.
        queue_free = (
            not self._queue and now - self._queue_last_nonzero > self.settings.window_s + 1.0
        )
        return Snapshot(
            now=now,
            deployment=deployment,
            settings=self.settings,
            current_replicas=current_replicas,
            ready_replicas=ready_replicas,
            in_flight=in_flight,
            queue_length=self._queue,
            stable_load=stable,
            panic_load=panic,
            history_s=now - self.start,
            idle_s=0.0 if load > 0 else now - self._last_work,
            stable_in_flight=stable if queue_free else self._stable_in_flight.mean(now),
            panic_in_flight=panic if queue_free else self._panic_in_flight.mean(now),
            service_s=self._service.censored_mean(
                max(0.0, len(self._in_flight) * now - self._start_sum)
            ),
            service_scv=self._service.scv,
            service_samples=self._service.samples,
            arrival_rate=arrivals.rate(now, self.settings.window_s) if counted else None,
            arrival_recent=arrivals.rate(now, PEAK_WINDOW_S) if counted else None,
            arrival_history=arrivals.history(now) if counted else (),
            cold_start_s=self._cold_starts.mean_s,
            # A copy: the snapshot outlives later readings. Most deployments have no signals
            # and share one read-only empty mapping instead of a new dict per decision.
            signals={k: v[0] for k, v in self._signals.items()} if self._signals else _NO_SIGNALS,
            state_persisted=state_persisted,
        )

    # -- internals -----------------------------------------------------------------------

    def _clock(self, now: float) -> float:
        # The caller's clock may step back (NTP); windows need monotonic time.
        self._t = max(self._t, now)
        return self._t

    def _changed(self, now: float) -> None:
        batch = self._batch
        if batch is not None:
            # Inside apply_batch: only note what this level leaves behind (see there).
            batch.changed = True
            if self._queue or self._in_flight or self._replica_sum:
                batch.worked = True
            return
        if self._queue or self._load > self._in_flight_level:
            # A queue is present now, or was until now (the old load exceeded the old in-flight).
            self._queue_last_nonzero = now
        in_flight = max(len(self._in_flight), self._replica_sum)
        if in_flight != self._in_flight_level:
            self._in_flight_level = in_flight
            self._stable_in_flight.set(now, in_flight)
            self._panic_in_flight.set(now, in_flight)
        load = in_flight + self._queue
        if load == self._load:
            return
        if self._load > 0 or load > 0:
            self._last_work = now
        self._load = load
        self._stable.set(now, load)
        self._panic.set(now, load)

    def _replica_delta(self, old: float, new: float) -> None:
        self._replica_sum += new - old
        self._replicas_busy += int(new != 0.0) - int(old != 0.0)
        if self._replicas_busy == 0:
            # The incremental sum keeps float residue (0.1 + 0.2 - 0.1 - 0.2 = 2.8e-17): a load
            # that never reads exactly 0 kept idle_s at 0 and blocked scale-to-zero forever.
            self._replica_sum = 0.0

    def _remember(self, now: float, request_id: Hashable) -> None:
        self._tombstones[request_id] = now
        order = self._tomb_order
        order.append((now, request_id))
        head = self._tomb_head
        if len(order) - head > 4096 and order[head][0] < now - TOMBSTONE_S:
            # Oldest first, as they were added: going past the front costs only the entries
            # that expire (rebuilding the list here was most of a busy simulation's time). An
            # entry booked out of order waits behind a younger one and goes with it.
            cutoff = now - TOMBSTONE_S
            tombstones = self._tombstones
            end = len(order)
            while head < end and order[head][0] < cutoff:
                t, r = order[head]
                head += 1
                if tombstones.get(r) == t:
                    del tombstones[r]
            if head > end // 2:
                del order[:head]  # the expired half goes in one move
                head = 0
            self._tomb_head = head

    def _expire(self, now: float) -> None:
        changed = False
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            _, _, request_id = heapq.heappop(expiry)
            started = self._in_flight.get(request_id)
            if started is not None and started + self.settings.max_request_duration_s <= now:
                del self._in_flight[request_id]
                self._start_sum -= started
                self.counts["expired"] += 1
                changed = True
        if len(expiry) > 4 * len(self._in_flight) + 1024:
            # Finished requests leave their heap entries behind; rebuild now and then.
            self._expiry = [e for e in expiry if e[2] in self._in_flight]
            heapq.heapify(self._expiry)
        for name, (value, _ts, seen_at) in list(self._replicas.items()) if self._replicas else ():
            if seen_at < now - SIGNAL_TTL_S:
                # Subtract directly: going through replica_concurrency(now, name, 0.0, now) was
                # refused as "stale" when the replica's last ts lay ahead of ``now`` (a producer
                # clock running fast), which left its value pinned in the sum forever.
                self._replica_delta(value, 0.0)
                del self._replicas[name]
                self.counts["stale_signal"] += 1
                changed = True
        for name, (_value, _ts, seen_at) in list(self._signals.items()) if self._signals else ():
            if seen_at < now - SIGNAL_TTL_S:
                # A missing signal is the policy's to handle (``metric`` holds); a frozen old
                # reading would keep scaling on a number nobody measures any more.
                del self._signals[name]
                self.counts["stale_signal"] += 1
        if self._queue and self._queue_seen_at < now - SIGNAL_TTL_S:
            self._queue = 0.0
            self.counts["stale_signal"] += 1
            changed = True
        if changed:
            self._changed(now)
