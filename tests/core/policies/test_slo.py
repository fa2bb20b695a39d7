"""The ``slo`` policy: rows of snapshots -> replicas, checked against the queue model."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from autoscaler.config.params import validate_params
from autoscaler.core.policies.slo import SloParams, SloPolicy, SloState
from autoscaler.core.queueing import replicas_needed, wait_tail
from autoscaler.core.settings import Settings, SloTarget
from autoscaler.core.snapshot import Snapshot

T0 = 1_795_435_200.0
# 4 slots a replica, 1% may wait longer than 1 s
S = Settings(parallelism=4, max_replicas=50, slo=SloTarget(wait_s=1.0, attainment=0.99))
FLAT = (5.0,) * 60  # 5 req/s for ten minutes


def snap(
    history: tuple[float, ...] = FLAT,
    *,
    current: int = 3,
    queue: float = 0.0,
    history_s: float = 3600.0,
    recent: float | None = None,
    now: float = T0,
    gauges: float | None = None,
) -> Snapshot:
    """A snapshot with 2 s exponential-like service (200 samples) and a 60 s cold start;
    ``gauges`` makes it gauge-only with that measured concurrency."""
    rate = None if gauges is not None else (history[-1] if history else 0.0)
    return Snapshot(
        now=now,
        deployment="ns/model",
        settings=S,
        current_replicas=current,
        ready_replicas=current,
        in_flight=0,
        queue_length=queue,
        stable_load=0.0,
        panic_load=0.0,
        history_s=history_s,
        idle_s=0.0,
        stable_in_flight=gauges,
        panic_in_flight=gauges,
        service_s=2.0,
        service_scv=1.0,
        service_samples=200,
        arrival_rate=rate,
        arrival_recent=rate if recent is None else recent,
        arrival_history=history if gauges is None else (),
        cold_start_s=60.0,
    )


def policy(**params: float) -> SloPolicy:
    return SloPolicy(validate_params(SloParams, params))


def mgk(offered: float, budget: float = 0.01, arrival_scv: float = 0.5) -> int:
    """The M/G/k count for ``offered`` Erlangs (2 s mean with 200 samples against 20 of the
    2 s prior: 2 s, scv 1; a constant history has dispersion 0.5)."""
    return replicas_needed(offered, 4, 2.0, 1.0, 1.0, budget, 50, arrival_scv)[0]


@pytest.mark.parametrize("rate", [1.0, 5.0, 12.0, 30.0])
def test_steady_rate_sizes_to_mgk(rate: float) -> None:
    p = policy()
    result = p.recommend(snap((rate,) * 60, current=1), p.initial_state())
    assert result.replicas == mgk(rate * 2.0)
    assert result.replicas > 0


def test_rising_trend_sizes_above_flat_base() -> None:
    p = policy()
    ramp = tuple(1.0 + 0.5 * i for i in range(60))
    base = sum(ramp[-6:]) / 6  # the last minute's mean
    flat = p.recommend(snap((base,) * 60, current=1), p.initial_state())
    rising = p.recommend(snap(ramp, current=1), p.initial_state())
    assert rising.replicas > flat.replicas
    assert "set by trend" in rising.describe()


# (snapshot, expected replicas, reason fragment): a fleet of 8 where the counts say 4
HOLDS = [
    pytest.param(snap(current=8, history_s=100.0), 8, "look-back seen", id="young-history"),
    pytest.param(snap(current=8, history_s=179.0), 8, "look-back seen", id="under-3-cold"),
    pytest.param(snap(current=8, queue=1.0), 8, "queue still draining", id="queue"),
    pytest.param(snap(current=8, recent=9.0), 8, "rate still rising", id="rising"),
    pytest.param(snap(current=8), 4, "scale-down (down count)", id="down"),
    pytest.param(snap(current=8, history_s=180.0), 4, "scale-down", id="3-cold-starts-seen"),
]


@pytest.mark.parametrize(
    ("cold_s", "spread", "want"),
    [
        (60.0, 1.0, 180.0),  # Poisson: three cold starts
        (60.0, 0.5, 180.0),  # smoother than Poisson: never shorter
        (30.0, 1.0, 180.0),  # at least a minute a cold start
        (120.0, 1.0, 360.0),
        (60.0, 4.0, 360.0),  # bursty: times sqrt(dispersion)
        (60.0, 50.0, 600.0),  # at most the history kept
    ],
)
def test_down_lookback_grows_with_burstiness(cold_s: float, spread: float, want: float) -> None:
    assert SloPolicy.down_lookback(cold_s, spread) == pytest.approx(want)


def test_a_burst_five_minutes_ago_still_counts_for_bursty_traffic() -> None:
    p = policy()
    # 30 req/s for a minute, 340 s ago, then silence: outside three cold starts, but the
    # traffic's dispersion stretches the look-back over it
    bursty = (0.0,) * 20 + (30.0,) * 6 + (0.0,) * 34
    held = p.recommend(snap(bursty, current=12), p.initial_state())
    assert held.replicas == 12
    assert "scale-down" not in held.describe()
    # the same silence without the burst in the history lets the fleet go
    quiet = p.recommend(snap((0.0,) * 60, current=12), p.initial_state())
    assert quiet.replicas < 12


@pytest.mark.parametrize(("snapshot", "want", "why"), HOLDS)
def test_scale_down_holds(snapshot: Snapshot, want: int, why: str) -> None:
    p = policy()
    result = p.recommend(snapshot, p.initial_state())
    assert result.replicas == want
    assert why in result.describe()


def test_hysteresis_band_holds_between_counts() -> None:
    p = policy()
    # at 5.7 req/s the up count and the down count (half the budget at the base rate plus one
    # standard error of a 60 s count with the constant history's dispersion 0.5) differ
    s = snap((5.7,) * 60, current=1)
    up = p.recommend(s, p.initial_state()).replicas
    down = mgk((5.7 + math.sqrt(5.7 * 0.5 / 60)) * 2.0, budget=0.01 * 0.5)
    assert down > up
    for current in range(up, down + 1):
        r = p.recommend(replace(s, current_replicas=current), p.initial_state())
        assert r.replicas == current
    assert p.recommend(replace(s, current_replicas=down + 3), p.initial_state()).replicas < (
        down + 3
    )


def test_backlog_adds_the_slots_that_clear_it() -> None:
    p = policy()
    plain = p.recommend(snap(current=1), p.initial_state())
    queued = p.recommend(snap(current=1, queue=600.0), p.initial_state())
    # 600 queued x 2 s over a 60 s cold start = 20 more busy slots
    assert queued.replicas == mgk(10.0 + 20.0)
    assert queued.replicas > plain.replicas
    assert "set by backlog" in queued.describe()


def test_gauge_only_uses_littles_law() -> None:
    p = policy()
    result = p.recommend(snap(current=1, gauges=10.0), p.initial_state())
    assert result.replicas == mgk(10.0, arrival_scv=1.0)
    assert "Little's law" in result.describe()


def test_reason_names_rate_service_miss_and_term() -> None:
    p = policy()
    text = p.recommend(snap(current=1), p.initial_state()).describe()
    assert text.startswith("slo: 5.00 req/s")
    assert "x 2.00s" in text
    assert "P(wait>1s)" in text
    assert "set by rate" in text


def test_same_input_same_recommendation() -> None:
    p = policy()
    s, state = snap(current=2, queue=30.0), SloState(standby_rate=4.0, standby_ts=T0 - 60)
    a, b = p.recommend(s, state), p.recommend(s, state)
    assert (a.replicas, a.state, a.describe()) == (b.replicas, b.state, b.describe())


def surge(p: SloPolicy) -> SloState:
    """A 20 req/s surge that finds 1 replica and runs through its first 60 s cold start."""
    hot = (5.0,) * 54 + (20.0,) * 6
    first = p.recommend(snap(hot, current=1), p.initial_state())
    assert first.state.surge_since == T0
    after = p.recommend(snap(hot, current=first.replicas, now=T0 + 60.0), first.state)
    return after.state  # type: ignore[no-any-return]


def test_surge_remembered_as_standby() -> None:
    state = surge(policy())
    assert state.standby_rate >= 15.0
    assert state.standby_ts == T0 + 60.0
    assert state.surge_since is None


def test_standby_floor_keeps_fades_and_never_adds() -> None:
    p = policy(burst_memory_s=1800.0)
    state = surge(p)
    quiet = (0.0,) * 60
    full = mgk(state.standby_rate * 2.0, arrival_scv=1.0)
    kept = p.recommend(snap(quiet, current=full, now=T0 + 120.0), state)
    assert kept.replicas >= full - 1
    assert "standby for bursts" in kept.describe()
    # whole for half the memory, then fading linearly to nothing by its end
    held = p.recommend(snap(quiet, current=full, now=T0 + 60.0 + 899.0), state)
    assert held.replicas == kept.replicas
    fading = p.recommend(snap(quiet, current=full, now=T0 + 60.0 + 1350.0), state)
    assert 0 < fading.replicas < kept.replicas
    gone = p.recommend(snap(quiet, current=full, now=T0 + 60.0 + 1800.0), state)
    assert gone.replicas == 0
    # in a silence with a small fleet the floor never adds replicas
    small = p.recommend(snap(quiet, current=1, now=T0 + 120.0), state)
    assert small.replicas <= 1


def run_surge(
    p: SloPolicy,
    state: SloState,
    history: tuple[float, ...],
    current: int,
    at: float,
    recent: float | None = None,
) -> SloState:
    """A surge that starts at ``at`` and runs through its first 60 s cold start."""
    first = p.recommend(snap(history, current=current, now=at, recent=recent), state)
    assert first.state.surge_since == at
    after = p.recommend(
        snap(history, current=first.replicas, now=at + 60.0, recent=recent), first.state
    )
    return after.state  # type: ignore[no-any-return]


def test_a_burst_the_floor_serves_restarts_the_memory() -> None:
    p = policy(burst_memory_s=1800.0)
    state = surge(p)  # 20 req/s, remembered at T0 + 60
    at = T0 + 60.0 + 1200.0  # a third into the fade: the floor is for 20 x 2/3 req/s
    floor = p.recommend(snap((0.0,) * 60, current=20, now=at), state).replicas
    # a lull well below the floor, then traffic at the remembered rate again: the standby
    # fleet carries it, no surge starts, and the memory restarts
    lull = p.recommend(snap((0.0,) * 60, current=floor, now=at - 10.0), state)
    assert lull.state.standby_quiet
    burst = (20.0 * 2 / 3,) * 60
    served = p.recommend(snap(burst, current=floor, now=at), lull.state)
    assert served.replicas == floor
    assert served.state.surge_since is None
    assert served.state.standby_ts == at
    assert served.state.standby_rate == pytest.approx(20.0 * 2 / 3)
    assert not served.state.standby_quiet
    # a level that stays at the floor is no new burst: the memory is not restarted again
    stays = p.recommend(snap(burst, current=floor, now=at + 60.0), served.state)
    assert stays.state.standby_ts == at
    # and the restarted floor holds whole for another half memory
    later = p.recommend(snap((0.0,) * 60, current=floor, now=at + 899.0), served.state)
    assert later.replicas == floor


def test_a_recurring_surge_is_judged_against_the_traffic_not_the_floor() -> None:
    p = policy(burst_memory_s=1800.0)
    state = surge(p)
    at = T0 + 60.0 + 1300.0
    floor = p.recommend(snap((0.0,) * 60, current=20, now=at), state).replicas
    # 40 req/s outgrows the standby fleet; the silence before it needed 1 replica
    hot = (0.0,) * 57 + (40.0,) * 3
    again = run_surge(p, state, hot, current=floor, at=at, recent=40.0)
    assert again.standby_ts == at + 60.0
    assert again.standby_rate == 40.0


def test_a_30s_spike_on_a_flat_window_is_noise_not_a_burst() -> None:
    p = policy()
    # the last 30 s ran at 3x the minute's rate, but the window's rate stayed at 5 req/s:
    # the fleet follows it; a standby floor at the spike would keep replicas for noise
    follows = p.recommend(snap(FLAT, current=1), p.initial_state()).replicas
    state = run_surge(p, p.initial_state(), FLAT, current=follows, at=T0, recent=15.0)
    assert state.standby_rate == 0.0
    # the same spike on a window that rose with it is a burst
    hot = (5.0,) * 54 + (15.0,) * 6
    state = run_surge(p, p.initial_state(), hot, current=follows, at=T0, recent=15.0)
    assert state.standby_rate == 15.0


def test_no_standby_when_fleet_kept_up() -> None:
    p = policy()
    # the fleet of 4 was short, but 6 req/s needs 5: fewer than 1.5x of it
    hot = (6.0,) * 60
    first = p.recommend(snap(hot, current=4), p.initial_state())
    assert first.replicas == 5
    assert first.state.surge_since == T0
    after = p.recommend(snap(hot, current=first.replicas, now=T0 + 60.0), first.state)
    assert after.state.standby_rate == 0.0


def test_a_surge_lasts_until_the_fleet_has_caught_up() -> None:
    p = policy()
    hot = (5.0,) * 54 + (20.0,) * 6
    first = p.recommend(snap(hot, current=1), p.initial_state())
    # a cold start later the fleet is still short: the surge goes on
    short = p.recommend(snap(hot, current=2, now=T0 + 60.0), first.state)
    assert short.state.surge_since == T0
    assert short.state.standby_rate == 0.0
    done = p.recommend(snap(hot, current=first.replicas, now=T0 + 90.0), short.state)
    assert done.state.surge_since is None
    assert done.state.standby_rate >= 15.0


def test_load_met_on_a_start_is_no_burst() -> None:
    p = policy()
    # seconds after a start the daemon finds 20 req/s and 1 replica: not a rise it has seen
    hot = (20.0,) * 60
    first = p.recommend(snap(hot, current=1, history_s=5.0), p.initial_state())
    assert first.state.surge_since == T0
    assert first.state.surge_base == first.replicas
    after = p.recommend(
        snap(hot, current=first.replicas, now=T0 + 60.0, history_s=65.0), first.state
    )
    assert after.state.standby_rate == 0.0


# --- the error budget -------------------------------------------------------------------------


def saved(rate: float, seen_s: float, late_share: float) -> SloState:
    """An account that has seen ``seen_s`` of ``rate`` arrivals, ``late_share`` of them late."""
    return SloState(budget_ts=T0, budget_seen=rate * seen_s, budget_late=rate * seen_s * late_share)


# (account, expected budget the moment is sized for): budget 1%, 6 req/s, 600 s spend horizon
BUDGETS = [
    pytest.param(SloState(), 0.01, id="fresh-account"),
    pytest.param(saved(6.0, 3600, 0.01), 0.01, id="spent-exactly"),
    pytest.param(saved(6.0, 3600, 0.05), 0.01, id="overspent-never-below-slo"),
    # 300 s seen: saved budget counts for 300/3600 of what it would
    pytest.param(saved(6.0, 300, 0.0), 0.01 + 0.005 / 12, id="young-account-counts-in-part"),
    # half a window seen, 0.9% of it predicted late: (1.44 - 0.972) / 36 = 1.3%, half counts
    pytest.param(saved(6.0, 1800, 0.009), 0.0115, id="half-window-half-counts"),
    pytest.param(saved(6.0, 3600, 0.0), 0.02, id="capped-at-twice"),
]


@pytest.mark.parametrize(("account", "budget"), BUDGETS)
def test_allowance_spreads_saved_budget_over_the_spend_horizon(
    account: SloState, budget: float
) -> None:
    assert policy()._allowance(account, 0.01, 6.0) == pytest.approx(budget)


def test_a_window_that_underflows_against_the_rate_counts_the_account_whole() -> None:
    # Found by the fuzz suite: 1e-165 req/s over a 2.2e-311 s window is 0.0 in floats.
    tiny = policy(budget_window_s=2.225073858507e-311, budget_spend_s=1.0)
    assert tiny._allowance(saved(1e-165, 10, 0.0), 0.01, 1e-165) == pytest.approx(0.02)


def test_saved_budget_sizes_a_peak_thinner_and_says_so() -> None:
    p = policy()
    s = snap((6.0,) * 60, current=1, now=T0 + 1)  # booked 1 s ago: no new booking
    fresh = p.recommend(s, saved(6.0, 0, 0.0))
    rich = p.recommend(s, saved(6.0, 3600, 0.0))
    assert fresh.replicas == mgk(12.0) == 5
    assert rich.replicas == mgk(12.0, budget=0.02) == 4
    assert "budget saved in the window" in rich.describe()
    assert "budget saved" not in fresh.describe()


def test_account_books_the_ready_fleets_predicted_misses() -> None:
    p = policy()
    start = p.recommend(snap(current=3), p.initial_state()).state
    assert start.budget_ts == T0 and start.budget_seen == 0.0
    too_soon = p.recommend(snap(current=3, now=T0 + 5), start).state
    assert too_soon.budget_seen == 0.0  # booked at most every BUDGET_STEP_S
    later = p.recommend(snap(current=3, now=T0 + 20), start).state
    assert later.budget_seen == pytest.approx(5.0 * 20)
    miss = wait_tail(12, 10.0, 2.0, 1.0, 1.0, 0.5)
    assert later.budget_late == pytest.approx(miss * 5.0 * 20)
    assert 0 < later.budget_late < later.budget_seen


def test_no_window_no_account() -> None:
    p = policy(budget_window_s=0)
    state = p.recommend(snap(current=3), p.initial_state()).state
    assert state.budget_ts is None
    assert p._allowance(saved(6.0, 3600, 0.0), 0.01, 6.0) == 0.01
