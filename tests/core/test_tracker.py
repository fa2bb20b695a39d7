"""LoadTracker: event handling outcomes, expiry, stale signals, the clock, and snapshots."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.core.events import Concurrency, Event, QueueLength, RequestFinished, RequestStarted
from autoscaler.core.settings import Settings
from autoscaler.core.snapshot import Snapshot
from autoscaler.core.tracker import LATE_AFTER_S, SIGNAL_TTL_S, LoadTracker, Outcome

DEP = "ns/model"
T0 = 1000.0


def started(rid: str, ts: float) -> RequestStarted:
    return RequestStarted(deployment=DEP, ts=ts, request_id=rid)


def finished(rid: str, ts: float) -> RequestFinished:
    return RequestFinished(deployment=DEP, ts=ts, request_id=rid)


def queue(value: float, ts: float) -> QueueLength:
    return QueueLength(deployment=DEP, ts=ts, value=value)


def conc(replica: str, value: float, ts: float) -> Concurrency:
    return Concurrency(deployment=DEP, ts=ts, value=value, replica=replica)


def tracker(**overrides: float) -> LoadTracker:
    return LoadTracker(Settings(**overrides), T0)


def snap(t: LoadTracker, now: float) -> Snapshot:
    return t.snapshot(now, DEP, current_replicas=1, ready_replicas=1)


# -- outcome table -------------------------------------------------------------------------

Step = tuple[Event, float, Outcome]


@pytest.mark.parametrize(
    ("steps", "in_flight", "queue_length"),
    [
        pytest.param([(started("a", T0), T0, "applied")], 1, 0.0, id="start"),
        pytest.param(
            [(started("a", T0), T0, "applied"), (finished("a", T0 + 1), T0 + 1, "applied")],
            0,
            0.0,
            id="start then finish",
        ),
        pytest.param(
            [(started("a", T0), T0, "applied"), (started("a", T0 + 1), T0 + 1, "duplicate")],
            1,
            0.0,
            id="duplicate start while in flight",
        ),
        pytest.param(
            [
                (started("a", T0), T0, "applied"),
                (finished("a", T0 + 1), T0 + 1, "applied"),
                (finished("a", T0 + 2), T0 + 2, "duplicate"),
            ],
            0,
            0.0,
            id="repeated finish",
        ),
        pytest.param(
            [
                (finished("a", T0 + 1), T0, "finish_before_start"),
                (started("a", T0), T0 + 1, "finish_before_start"),
            ],
            0,
            0.0,
            id="finish before start; the start is not counted",
        ),
        pytest.param(
            [
                (finished("a", T0 + 1), T0, "finish_before_start"),
                (started("a", T0), T0 + 1, "finish_before_start"),
                (started("b", T0 + 1), T0 + 1, "applied"),
            ],
            1,
            0.0,
            id="other requests still counted after a reordering",
        ),
        pytest.param(
            [(started("a", T0 + 100 - LATE_AFTER_S - 0.5), T0 + 100, "late")],
            1,
            0.0,
            id="late start applied",
        ),
        pytest.param(
            [(started("a", T0 + 100 - LATE_AFTER_S), T0 + 100, "applied")],
            1,
            0.0,
            id="exactly LATE_AFTER_S behind is not late",
        ),
        pytest.param(
            [
                (started("a", T0), T0, "applied"),
                (finished("a", T0 + 100 - 30), T0 + 100, "late"),
            ],
            0,
            0.0,
            id="late finish applied",
        ),
        pytest.param(
            [(queue(4, T0 + 100 - 20), T0 + 100, "late")],
            0,
            4.0,
            id="late queue sample applied",
        ),
        pytest.param(
            [(started("a", T0 + 1000 - 601), T0 + 1000, "expired_on_arrival")],
            0,
            0.0,
            id="start older than max_request_duration_s",
        ),
        pytest.param(
            [(started("a", T0 + 1000 - 600), T0 + 1000, "late")],
            1,
            0.0,
            id="start exactly max_request_duration_s old is still counted",
        ),
        pytest.param(
            [(queue(5, T0 + 5), T0 + 10, "applied"), (queue(9, T0 + 4), T0 + 11, "stale")],
            0,
            5.0,
            id="stale queue sample ignored",
        ),
        pytest.param(
            [(queue(5, T0 + 5), T0 + 10, "applied"), (queue(2, T0 + 5), T0 + 11, "applied")],
            0,
            2.0,
            id="queue sample with equal ts applied",
        ),
        pytest.param(
            [(queue(5, T0 + 5), T0 + 10, "applied"), (queue(0, T0 + 6), T0 + 11, "applied")],
            0,
            0.0,
            id="queue drains",
        ),
        pytest.param(
            [
                (conc("r1", 3, T0 + 5), T0 + 10, "applied"),
                (conc("r1", 8, T0 + 4), T0 + 11, "stale"),
            ],
            3,
            0.0,
            id="stale concurrency sample ignored",
        ),
        pytest.param(
            [
                (conc("r1", 3, T0 + 5), T0 + 10, "applied"),
                (conc("r2", 4, T0 + 4), T0 + 11, "applied"),
            ],
            7,
            0.0,
            id="other replica's older sample is not stale",
        ),
    ],
)
def test_outcomes(steps: list[Step], in_flight: int, queue_length: float) -> None:
    t = tracker()
    for event, now, expected in steps:
        assert t.apply(event, now) == expected, event
    last_now = steps[-1][1]
    s = snap(t, last_now)
    assert s.in_flight == in_flight
    assert s.queue_length == queue_length
    counts: dict[str, int] = {}
    for _, _, expected in steps:
        counts[expected] = counts.get(expected, 0) + 1
    assert dict(t.counts) == counts


def test_stale_samples_do_not_move_the_windows() -> None:
    t = tracker()
    t.apply(queue(5, T0), T0)
    assert t.apply(queue(50, T0 - 1), T0 + 10) == "stale"
    assert t.current_load == 5.0
    s = snap(t, T0 + 20)
    assert s.stable_load == pytest.approx(5.0)
    assert s.panic_load == pytest.approx(5.0)


# -- expiry and staleness -------------------------------------------------------------------


def test_in_flight_requests_without_a_finish_expire() -> None:
    t = tracker(max_request_duration_s=30.0)
    assert t.apply(started("a", T0), T0) == "applied"
    assert t.apply(started("b", T0 + 10), T0 + 10) == "applied"
    assert snap(t, T0 + 29.9).in_flight == 2
    assert t.counts["expired"] == 0
    s = snap(t, T0 + 30)
    assert s.in_flight == 1  # a started at T0 + 0: expired at exactly 30 s
    assert t.counts["expired"] == 1
    assert snap(t, T0 + 40).in_flight == 0
    assert t.counts["expired"] == 2
    assert t.in_flight == 0
    assert t.current_load == 0.0
    # The finish that finally arrives is unknown: remembered as finish-before-start.
    assert t.apply(finished("a", T0 + 41), T0 + 41) == "finish_before_start"
    assert snap(t, T0 + 41).in_flight == 0


def test_expiry_counts_the_latest_start_of_a_reused_id() -> None:
    t = tracker(max_request_duration_s=30.0)
    t.apply(started("a", T0), T0)
    t.apply(finished("a", T0 + 1), T0 + 1)
    # A start arriving after its tombstone is taken as the reordered original.
    assert t.apply(started("a", T0 + 2), T0 + 2) == "finish_before_start"
    assert t.apply(started("a", T0 + 5), T0 + 5) == "applied"
    # The first heap entry (deadline T0 + 30) must not expire the second start (T0 + 35).
    assert snap(t, T0 + 31).in_flight == 1
    assert snap(t, T0 + 35).in_flight == 0
    assert t.counts["expired"] == 1


def test_replica_reports_sum() -> None:
    t = tracker()
    t.apply(conc("r1", 3, T0), T0)
    t.apply(conc("r2", 4, T0), T0)
    assert t.current_load == 7.0
    assert snap(t, T0 + 1).in_flight == 7
    t.apply(conc("r1", 1, T0 + 2), T0 + 2)
    assert t.current_load == 5.0
    assert snap(t, T0 + 2).in_flight == 5
    # In-flight requests and replica reports describe the same work: the larger counts.
    for rid in "abcdefgh":
        t.apply(started(rid, T0 + 3), T0 + 3)
    assert t.current_load == 8.0
    assert snap(t, T0 + 3).in_flight == 8


def test_queue_signal_goes_stale_after_ttl() -> None:
    t = tracker()
    t.apply(queue(5, T0), T0)
    s = snap(t, T0 + SIGNAL_TTL_S)
    assert s.queue_length == 5.0
    assert t.counts["stale_signal"] == 0
    s = snap(t, T0 + SIGNAL_TTL_S + 0.5)
    assert s.queue_length == 0.0
    assert t.current_load == 0.0
    assert t.counts["stale_signal"] == 1
    assert s.idle_s == 0.0  # idle counts from when the stale queue was dropped
    assert snap(t, T0 + SIGNAL_TTL_S + 5.5).idle_s == 5.0
    # A fresh report is accepted again.
    assert t.apply(queue(2, T0 + 70), T0 + 70) == "applied"
    assert snap(t, T0 + 70).queue_length == 2.0


def test_replica_signal_goes_stale_after_ttl() -> None:
    t = tracker()
    t.apply(conc("r1", 3, T0), T0)
    t.apply(conc("r2", 4, T0 + 30), T0 + 30)
    assert snap(t, T0 + SIGNAL_TTL_S).in_flight == 7
    s = snap(t, T0 + SIGNAL_TTL_S + 1)
    assert s.in_flight == 4  # r1 went silent, r2 reported 31 s ago
    assert t.current_load == 4.0
    assert t.counts["stale_signal"] == 1
    s = snap(t, T0 + 30 + SIGNAL_TTL_S + 1)
    assert s.in_flight == 0
    assert t.current_load == 0.0
    assert t.counts["stale_signal"] == 2


def test_replica_with_a_fast_clock_still_goes_stale() -> None:
    # Regression: the stale-signal sweep went through replica_concurrency(now, name, 0, now),
    # which is refused as "stale" when the replica's own ts lies ahead of now; the replica
    # was dropped but its 5 stayed in the sum forever, pinning the deployment up.
    t = tracker()
    assert t.apply(conc("r1", 5, T0 + 200), T0) == "applied"
    assert snap(t, T0 + 30).in_flight == 5
    s = snap(t, T0 + 100)
    assert s.in_flight == 0
    assert t.current_load == 0.0
    assert t.counts["stale_signal"] == 1
    assert snap(t, T0 + 200).stable_load == pytest.approx(0.0)


def test_fractional_replica_reports_return_to_exactly_zero() -> None:
    # Regression: the incremental sum kept float residue (0.1 + 0.2 - 0.1 - 0.2 = 2.8e-17),
    # so the load never read 0, idle_s stayed 0 and scale-to-zero's grace never started.
    t = tracker()
    t.apply(conc("r1", 0.1, T0), T0)
    t.apply(conc("r2", 0.2, T0), T0)
    t.apply(conc("r1", 0.0, T0 + 1), T0 + 1)
    t.apply(conc("r2", 0.0, T0 + 1), T0 + 1)
    assert t.current_load == 0.0
    s = snap(t, T0 + 100)
    assert s.idle_s == 99.0
    assert s.stable_load == 0.0
    # The same through the stale-signal sweep.
    t.apply(conc("r1", 0.1, T0 + 101), T0 + 101)
    t.apply(conc("r2", 0.2, T0 + 101), T0 + 101)
    t.apply(conc("r1", 0.0, T0 + 102), T0 + 102)
    assert t.current_load == pytest.approx(0.2)
    # Both replicas go silent; the sweep at T0 + 200 drops them and the load is exactly 0.
    assert snap(t, T0 + 200).idle_s == 0.0
    assert t.current_load == 0.0
    assert snap(t, T0 + 230).idle_s == 30.0


def test_clock_never_goes_backwards() -> None:
    t = tracker()
    t.apply(started("a", T0 + 100), T0 + 100)
    s = snap(t, T0 + 50)
    assert s.now == T0 + 100
    assert s.history_s == 100.0
    # An event processed "at" an earlier now is handled at the clamped now: its ts is only
    # 5 s behind T0 + 100, so it is not late.
    assert t.apply(started("b", T0 + 95), T0 + 40) == "applied"
    assert t.apply(started("c", T0 + 80), T0 + 40) == "late"
    s = snap(t, T0 + 10)
    assert s.now == T0 + 100
    assert s.in_flight == 3
    assert s.stable_load == 0.0  # no time has passed at load > 0
    # 10 s at 3 within the span [T0 + 51, T0 + 110].
    assert snap(t, T0 + 110).stable_load == pytest.approx(30 / 59)
    # Reading at an earlier now reads at T0 + 110 again: the windows never run backwards.
    s = snap(t, T0 + 105)
    assert s.now == T0 + 110
    assert s.stable_load == pytest.approx(30 / 59)
    assert s.panic_load == pytest.approx(3.0)


# -- snapshot ------------------------------------------------------------------------------


def test_snapshot_fields_for_a_known_step_history() -> None:
    t = tracker()  # window_s=60 (1 s buckets, 60), panic_window_s=6 (1 s buckets, 6)
    s = snap(t, T0)
    assert (s.in_flight, s.queue_length, s.stable_load, s.panic_load) == (0, 0.0, 0.0, 0.0)
    assert (s.history_s, s.idle_s) == (0.0, 0.0)

    t.apply(started("a", T0), T0)
    t.apply(started("b", T0), T0)  # load 2 from T0
    t.apply(queue(3, T0 + 10), T0 + 10)  # load 5 from T0 + 10
    t.apply(finished("a", T0 + 20), T0 + 20)  # load 4 from T0 + 20
    s = t.snapshot(T0 + 20.5, DEP, current_replicas=3, ready_replicas=2)
    assert s.now == T0 + 20.5
    assert s.deployment == DEP
    assert (s.current_replicas, s.ready_replicas) == (3, 2)
    assert s.settings is t.settings
    assert s.in_flight == 1
    assert s.queue_length == 3.0
    assert s.load == 4.0
    # Stable: only 20.5 s observed: (2*10 + 5*10 + 4*0.5) / 20.5.
    assert s.stable_load == pytest.approx(72 / 20.5)
    # Panic: buckets T0+15 .. T0+20, span 5.5 s: (5*5 + 4*0.5) / 5.5.
    assert s.panic_load == pytest.approx(27 / 5.5)
    assert s.history_s == 20.5
    assert s.idle_s == 0.0

    t.apply(finished("b", T0 + 30), T0 + 30)
    t.apply(queue(0, T0 + 30), T0 + 30)  # idle from T0 + 30
    s = snap(t, T0 + 45)
    assert (s.in_flight, s.queue_length) == (0, 0.0)
    # Stable: 45 s observed: (2*10 + 5*10 + 4*10) / 45.
    assert s.stable_load == pytest.approx(110 / 45)
    assert s.panic_load == 0.0
    assert s.history_s == 45.0
    assert s.idle_s == 15.0

    # A whole stable window after the last work: exactly zero.
    s = snap(t, T0 + 95)
    assert s.stable_load == 0.0
    assert s.idle_s == 65.0


def test_idle_starts_from_the_tracker_start() -> None:
    t = tracker()
    s = snap(t, T0 + 42)
    assert s.idle_s == 42.0
    assert s.history_s == 42.0


# -- property: a reference model -----------------------------------------------------------

MAX_DURATION = 300.0


@dataclass
class Reference:
    """What the tracker should count, written the simplest way."""

    in_flight: dict[str, float] = field(default_factory=dict)
    tombstones: set[str] = field(default_factory=set)
    queue: float = 0.0
    queue_ts: float = -1.0
    queue_seen: float = T0
    replicas: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def apply(self, kind: str, key: str, value: float, ts: float, now: float) -> Outcome:
        outcome: Outcome
        if kind == "start":
            if ts < now - MAX_DURATION:
                return "expired_on_arrival"
            if key in self.in_flight:
                outcome = "duplicate"
            elif key in self.tombstones:
                self.tombstones.discard(key)
                outcome = "finish_before_start"
            else:
                self.in_flight[key] = now
                outcome = "applied"
        elif kind == "finish":
            if key in self.in_flight:
                del self.in_flight[key]
                self.tombstones.add(key)
                outcome = "applied"
            elif key in self.tombstones:
                outcome = "duplicate"
            else:
                self.tombstones.add(key)
                outcome = "finish_before_start"
        elif kind == "queue":
            # Samples are ordered by their time, but none counts as later than ``now``.
            if min(ts, now) < self.queue_ts:
                return "stale"
            self.queue, self.queue_ts, self.queue_seen = value, min(ts, now), now
            outcome = "applied"
        else:
            previous = self.replicas.get(key)
            if previous is not None and min(ts, now) < previous[1]:
                return "stale"
            self.replicas[key] = (value, min(ts, now), now)
            outcome = "applied"
        if outcome == "applied" and ts < now - LATE_AFTER_S:
            return "late"
        return outcome

    def expire(self, now: float) -> None:
        self.in_flight = {k: s for k, s in self.in_flight.items() if s + MAX_DURATION > now}
        self.replicas = {k: v for k, v in self.replicas.items() if v[2] >= now - SIGNAL_TTL_S}
        if self.queue_seen < now - SIGNAL_TTL_S:
            self.queue = 0.0


_step = st.tuples(
    st.sampled_from(["start", "start", "finish", "finish", "queue", "concurrency", "snapshot"]),
    st.sampled_from(["a", "b", "c", "d", "e"]),
    st.sampled_from(["r1", "r2"]),
    st.integers(0, 20),  # value
    st.one_of(st.floats(-30, 30), st.floats(-30, MAX_DURATION + 100)),  # lag of ts behind now
    st.one_of(st.just(0.0), st.floats(0, 5), st.floats(0, 400)),  # advance of now
)


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(_step, max_size=80))
def test_random_event_sequences_match_a_reference_model(
    steps: list[tuple[str, str, str, int, float, float]],
) -> None:
    t = LoadTracker(Settings(max_request_duration_s=MAX_DURATION), T0)
    ref = Reference()
    now = T0
    for kind, rid, replica, value, lag, advance in steps:
        now += advance
        ts = max(0.0, now - lag)
        if kind == "snapshot":
            s = t.snapshot(now, DEP, 1, 1)
            ref.expire(now)
            replica_sum = sum(v for v, _, _ in ref.replicas.values())
            assert s.in_flight == max(len(ref.in_flight), round(replica_sum))
            assert s.queue_length == ref.queue
            assert s.stable_load >= 0.0
            assert s.panic_load >= 0.0
            assert s.idle_s >= 0.0
            assert s.history_s == now - T0
        else:
            event: Event
            if kind == "start":
                event, key = started(rid, ts), rid
            elif kind == "finish":
                event, key = finished(rid, ts), rid
            elif kind == "queue":
                event, key = queue(value, ts), ""
            else:
                event, key = conc(replica, value, ts), replica
            expected = ref.apply(kind, key, value, ts, now)
            assert t.apply(event, now) == expected
        assert t.in_flight >= 0
        assert t.in_flight == len(ref.in_flight)
        assert set(ref.in_flight) <= {"a", "b", "c", "d", "e"}


# -- idle time, for the daemon's eviction of idle deployments (issue 9, item 3) ------------


@pytest.mark.parametrize(
    ("events", "now", "idle_s"),
    [
        pytest.param([], T0 + 50, 50.0, id="never any work"),
        pytest.param([(started("a", T0), T0)], T0 + 50, 0.0, id="a request in flight"),
        # Work that expires ends when the tracker notices (as for a snapshot): from then on
        # the deployment is idle.
        pytest.param([(started("a", T0), T0)], T0 + 700, 0.0, id="past its lifetime (600 s)"),
        pytest.param(
            [(started("a", T0), T0), (finished("a", T0 + 5), T0 + 5)],
            T0 + 50,
            45.0,
            id="finished",
        ),
        pytest.param([(queue(3, T0), T0)], T0 + 30, 0.0, id="a queue reported"),
        pytest.param([(queue(3, T0), T0)], T0 + SIGNAL_TTL_S + 1, 0.0, id="a queue gone stale"),
        pytest.param([(conc("p", 2, T0), T0)], T0 + 30, 0.0, id="a busy replica"),
        pytest.param(
            [(conc("p", 2, T0 + 1e6), T0)],
            T0 + SIGNAL_TTL_S + 1,
            0.0,
            id="a replica report from a fast clock, gone stale",
        ),
    ],
)
def test_idle_for_lets_expired_work_go_first(
    events: list[tuple[Event, float]], now: float, idle_s: float
) -> None:
    t = tracker()
    for event, at in events:
        t.apply(event, at)
    assert t.idle_for(now) == pytest.approx(idle_s)
    if idle_s == 0.0 and now > T0 + 60:
        # Nothing left holds it busy: the idle time grows from here, it does not stay 0.
        assert t.idle_for(now + 25) == pytest.approx(25.0)
    assert t.in_flight == 0 or now < T0 + 600


@pytest.mark.parametrize("kind", ["queue", "replica", "signal"])
def test_a_sample_dated_ahead_does_not_make_later_honest_ones_stale(kind: str) -> None:
    # The engine rejects samples far ahead; within its skew bound one a few minutes ahead
    # still arrives here, and must not freeze the signal until real time catches up.
    tracker = LoadTracker(Settings(), T0)
    apply = {
        "queue": tracker.queue_length,
        "replica": lambda now, value, ts: tracker.replica_concurrency(now, "r1", value, ts),
        "signal": lambda now, value, ts: tracker.signal(now, "s", value, ts),
    }[kind]
    assert apply(T0, 5.0, T0 + 240) == "applied"
    assert apply(T0 + 1, 2.0, T0 + 1) == "applied"


# -- one poll's events at once (LoadTracker.apply_batch, issue 11 step 7) ------------------

_batch_event = st.tuples(
    st.sampled_from(["start", "start", "finish", "finish", "queue", "concurrency"]),
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from(["r1", "r2"]),
    st.sampled_from([0, 0, 1, 3]),  # value: zero often, so work comes and goes within a batch
)
_poll = st.tuples(
    st.lists(_batch_event, max_size=6),
    st.one_of(st.just(0.0), st.floats(0, 3), st.floats(0, 200)),  # advance of now
)


def _event(kind: str, rid: str, replica: str, value: int, ts: float) -> Event:
    if kind == "start":
        return started(rid, ts)
    if kind == "finish":
        return finished(rid, ts)
    if kind == "queue":
        return queue(value, ts)
    return conc(replica, value, ts)


@settings(max_examples=300, deadline=None)
@given(polls=st.lists(_poll, max_size=40))
def test_a_batch_leaves_what_its_events_one_by_one_leave(
    polls: list[tuple[list[tuple[str, str, str, int]], float]],
) -> None:
    """Every decision reads the same picture whether a poll's events were applied one by one
    or together: the levels a batch passes through last no time, and what they leave behind
    (work seen, for idle time; a queue seen, for the in-flight windows) is kept."""
    config = Settings(window_s=30.0, panic_window_s=6.0)
    one, together = LoadTracker(config, T0), LoadTracker(config, T0)
    now = T0
    for events, advance in polls:
        now += advance
        batch = [_event(*spec, ts=now) for spec in events]
        expected: dict[str, int] = {}
        for event in batch:
            outcome = one.apply(event, now)
            expected[outcome] = expected.get(outcome, 0) + 1
        outcomes: dict[str, int] = {}
        together.apply_batch(batch, now, outcomes)
        assert outcomes == expected
        assert together.counts == one.counts
        later = now + advance / 2
        assert together.snapshot(later, DEP, 2, 2) == one.snapshot(later, DEP, 2, 2)


def test_work_that_came_and_went_within_a_batch_is_not_idleness() -> None:
    t = tracker()
    outcomes: dict[str, int] = {}
    t.apply_batch([started("a", T0 + 100), finished("a", T0 + 100)], T0 + 100, outcomes)
    assert outcomes == {"applied": 2}
    assert t.current_load == 0
    assert t.idle_for(T0 + 130) == pytest.approx(30.0)  # not 130: the request was work
