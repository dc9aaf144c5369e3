"""The decider: worked tables for each stage, and properties over arbitrary observation sequences."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra_inference.decide.autoscaling import Decision, Observation, ScalerState, Window, decide, replicas_wanted
from infra_inference.decide.autoscaling.memory import ColdStarts
from infra_inference.specs.autoscale import ScalingSpec


def policy(**overrides: Any) -> ScalingSpec:
    fields: dict[str, Any] = {"metric": "concurrency", "target": 10.0, "min_replicas": 1, "max_replicas": 20,
                              "stable_window_s": 60, "panic_window_s": 6, "scale_down_window_s": 0}
    fields.update(overrides)
    return ScalingSpec.parse(fields)


ZERO = {"min_replicas": 0, "scale_to_zero_after_s": 30}


def obs(now: float, value: float | None, current: int, ready: int | None = None,
        outstanding: float | None = None) -> Observation:
    return Observation(at=now, value=value, current=current, ready=current if ready is None else ready,
                       outstanding=value if outstanding is None else outstanding)


def run(p: ScalingSpec, steps: list[tuple[float, float | None]], start: int, *, follow: bool = True
        ) -> list[Decision]:
    """Feed (now, value) readings; with `follow`, every decision is actuated and ready at once."""
    state, current, out = ScalerState(), start, []
    for now, value in steps:
        d, state = decide(p, obs(now, value, current), state, now)
        out.append(d)
        if follow:
            current = d.desired
    return out


def test_concurrency_wants_total_over_target() -> None:
    # 42 in flight at 5.6 per replica: 7.5 -> 8 replicas.
    assert replicas_wanted("concurrency", 42, 5.6, ready=3) == pytest.approx(7.5)
    d, _ = decide(policy(target=5.6), obs(0, 42, current=3), ScalerState(), 0)
    assert d.desired == 8


def test_utilization_scales_relative_to_ready_replicas() -> None:
    # 4 ready at 90 % with a 70 % target: 4 x 90 / 70 = 5.14 -> 6.
    d, _ = decide(policy(metric="gpu-utilization", target=70), obs(0, 90, current=4), ScalerState(), 0)
    assert d.desired == 6


def test_utilization_with_no_ready_replica_holds() -> None:
    d, _ = decide(policy(metric="cpu-utilization", target=70), obs(0, 90, current=2, ready=0), ScalerState(), 0)
    assert d.desired == 2 and "no ready replica" in d.reason


def test_missing_reading_holds_and_keeps_state() -> None:
    state = ScalerState()
    d, new = decide(policy(), obs(0, None, current=5, outstanding=0), state, 0)
    assert (d.desired, new) == (5, state)
    assert "no concurrency reading" in d.reason


def test_stale_reading_holds() -> None:
    d, _ = decide(policy(), Observation(at=0, value=0, outstanding=0, current=5, ready=5), ScalerState(), now=11)
    assert d.desired == 5 and "11.0s old" in d.reason


def test_before_any_answer_the_queue_wakes_from_zero_but_buys_no_more_while_replicas_start() -> None:
    p = policy(target=1.4, max_replicas=200, **ZERO)
    d, state = decide(p, Observation(at=0, value=4, outstanding=4, current=0, ready=0, queue_only=True),
                      ScalerState(), 0)
    assert d.desired == 3  # 4 queued at 1.4 each: straight to the size they ask for
    for t, queued in ((1, 20), (2, 60), (3, 200)):  # the queue grows while the 3 start
        d, state = decide(p, Observation(at=t, value=queued, outstanding=queued, current=3, ready=0,
                                         queue_only=True), state, t)
        assert d.desired == 3, d.reason
    # Once replicas are ready and the queue still grows, it asks for more again.
    d, _ = decide(p, Observation(at=4, value=200, outstanding=200, current=3, ready=3, queue_only=True), state, 4)
    assert d.desired > 3


def test_float_noise_does_not_buy_a_replica() -> None:
    d, _ = decide(policy(target=0.1), obs(0, 0.7000000001, current=7), ScalerState(), 0)
    assert d.desired == 7


def test_stable_window_averages_before_scaling_up() -> None:
    # 10 ticks at 10 (one replica's worth), then 30: the 60 s mean is (10*10 + 30) / 11 = 11.8 -> 2.
    steps = [(float(t), 10.0) for t in range(10)] + [(10.0, 30.0)]
    assert run(policy(panic_threshold=5), steps, start=1)[-1].desired == 2


def test_panic_jumps_to_the_panic_window_estimate() -> None:
    # 60 s at 10 (1 replica); then 100 for 6 s: the panic window means 10 replicas' worth,
    # which is >= 2 x 1 ready: panic, and straight to the panic estimate.
    steps = [(float(t), 10.0) for t in range(60)] + [(float(t), 100.0) for t in range(60, 66)]
    decisions = run(policy(), steps, start=1, follow=False)
    assert decisions[-1].panicking
    assert decisions[-1].desired == 10


def stepped(values_and_arrivals: list[tuple[float, float]], ready: int = 2) -> list[Decision]:
    """One reading a second (value, arrivals it was measured over), replicas held at `ready`."""
    p, state, out = policy(target=10, max_replicas=100), ScalerState(), []
    for t, (value, arrivals) in enumerate(values_and_arrivals):
        d, state = decide(p, Observation(float(t), value, value, ready, ready, arrivals=arrivals), state, float(t))
        out.append(d)
    return out


def test_a_step_up_seen_twice_is_the_demand_at_once_not_a_window_mean_later() -> None:
    # 60 s at 20 in flight from 200 arrivals a second, then 5x: 1,000 a second reading 100.
    # The panic window's mean is (4 x 20 + 100) / 5 = 36 at the first reading of the new level,
    # 52 at the second; the readings, less 3 standard errors (100 x (1 - 3 / sqrt(1000)) = 90.5),
    # are far over it, so from the second reading the demand is 100: 10 replicas at once.
    ds = stepped([(20.0, 200.0)] * 60 + [(100.0, 1000.0)] * 3)
    assert ds[60].desired < 10, ds[60].reason  # once may be a clump of arrivals
    assert ds[61].panicking and ds[61].desired == 10, ds[61].reason
    assert ds[61].panic_replicas == 10


def test_few_arrivals_reading_high_are_noise_not_a_step() -> None:
    # Long requests: 4 arrivals in a second read 60 in flight (15 s each) over a mean of 20.
    # 60 x (1 - 3 / 2) < 0: no evidence of a new level, however many seconds in a row.
    ds = stepped([(20.0, 2.0)] * 60 + [(60.0, 4.0)] * 3)
    assert all(d.panic_replicas is not None and d.panic_replicas < 6 for d in ds[60:]), [d.reason for d in ds[60:]]


def test_panic_never_scales_down_and_ends_a_stable_window_after_the_burst() -> None:
    p = policy(stable_window_s=20, panic_window_s=2)
    steps = [(0.0, 100.0), (1.0, 100.0)] + [(float(t), 0.0) for t in range(2, 40)]
    decisions = run(p, steps, start=1)
    assert decisions[1].panicking and decisions[1].desired == 10
    during = [d for d in decisions if d.panicking]
    assert all(d.desired == 10 for d in during)
    # Last over the threshold at t=1: panic ends at t=21, then the mean falls off.
    assert not decisions[21].panicking
    assert decisions[-1].desired == 1


def test_scale_down_stabilization_takes_the_highest_recent_recommendation() -> None:
    p = policy(scale_down_window_s=30, panic_threshold=100, stable_window_s=1)
    steps = [(0.0, 50.0), (10.0, 30.0), (20.0, 10.0), (29.0, 10.0), (31.0, 10.0), (41.0, 10.0)]
    assert [d.desired for d in run(p, steps, start=5)] == [5, 5, 5, 5, 3, 1]


def test_scale_up_window_requires_a_rise_to_hold() -> None:
    p = policy(scale_up_window_s=10, panic_threshold=100, stable_window_s=1)
    steps = [(0.0, 10.0), (1.0, 50.0), (5.0, 50.0), (11.5, 50.0)]
    assert [d.desired for d in run(p, steps, start=1)] == [1, 1, 1, 5]


def test_queued_work_asks_for_the_replicas_that_drain_it_in_this_decision_only() -> None:
    # Arrivals bring 10 in flight (100 req/s x 0.1 s): 2 replicas at a target of 5. 200 requests
    # queued behind a cold start are 20 s of work: over BACKLOG_DRAIN_S = 2 s, 10 more in flight,
    # 2 more replicas -- not the 200 / 5 = 40 that counting the queue as concurrency would ask for.
    p = policy(target=5, panic_threshold=100)
    queued = Observation(at=0, value=10, outstanding=210, current=2, ready=2, backlog_s=20)
    d, state = decide(p, queued, ScalerState(), 0)
    assert d.desired == 4 and "drain 20.0s of queued work" in d.reason
    drained = Observation(at=1, value=10, outstanding=10, current=4, ready=4, backlog_s=0)
    d, _ = decide(p, drained, state, 1)
    assert d.desired == 2  # the backlog was never averaged into the stable window


def test_backlog_holds_the_replicas_starting_but_adds_none_while_they_start() -> None:
    # 6 asked for, 2 ready: the 60 s of queued work (6 replicas' worth) is what the 4 starting
    # ones are for; it keeps them (2 + 4 = 6), and asks for no more until they are ready.
    p = policy(target=5, panic_threshold=100)
    d, _ = decide(p, Observation(at=0, value=10, outstanding=600, current=6, ready=2, backlog_s=60), ScalerState(), 0)
    assert d.desired == 6
    d, _ = decide(p, Observation(at=0, value=10, outstanding=600, current=6, ready=6, backlog_s=60), ScalerState(), 0)
    assert d.desired == 8


def test_backlog_counts_for_concurrency_only() -> None:
    p = policy(metric="throughput", target=5, panic_threshold=100)
    d, _ = decide(p, Observation(at=0, value=10, outstanding=210, current=2, ready=2, backlog_s=20), ScalerState(), 0)
    assert d.desired == 2


def test_rate_limits_are_relative_to_ready_replicas() -> None:
    p = policy(max_scale_up_rate=2, max_scale_down_rate=2, panic_threshold=100, stable_window_s=1)
    up, _ = decide(p, obs(0, 200, current=3), ScalerState(), 0)
    assert up.desired == 6 and "rate-limited 20 -> 6" in up.reason
    down, _ = decide(p, obs(0, 10, current=10), ScalerState(), 0)
    assert down.desired == 5


def test_scale_up_comes_in_whole_steps() -> None:
    d, _ = decide(policy(step=4, panic_threshold=100), obs(0, 30, current=2), ScalerState(), 0)
    assert d.desired == 6 and "step 4" in d.reason


def test_steps_never_pass_max() -> None:
    d, _ = decide(policy(step=4, max_replicas=5, panic_threshold=100), obs(0, 30, current=2), ScalerState(), 0)
    assert d.desired == 5


def test_from_zero_any_queued_request_starts_a_replica_at_once() -> None:
    d, _ = decide(policy(**ZERO), obs(0, 1, current=0, outstanding=1), ScalerState(), 0)
    assert d.desired == 1


def test_idle_at_zero_stays_at_zero() -> None:
    d, _ = decide(policy(**ZERO), obs(0, 0, current=0), ScalerState(), 0)
    assert d.desired == 0


def test_to_zero_only_after_the_grace_period() -> None:
    steps = [(0.0, 5.0)] + [(float(t), 0.0) for t in range(1, 32)]
    decisions = run(policy(**ZERO), steps, start=1)
    assert [d.desired for d in decisions[:30]] == [1] * 30  # idle 29 s at t=29
    assert decisions[30].desired == 0 and "idle 30s" in decisions[30].reason


def test_never_to_zero_with_a_request_in_flight() -> None:
    # A throughput reading of 0 (no request finished lately) while one long request is in flight.
    p = policy(metric="throughput", target=5, **ZERO)
    state = ScalerState(last_active=-1000.0)
    d, _ = decide(p, Observation(at=0, value=0, outstanding=1, current=1, ready=1), state, 0)
    assert d.desired == 1 and "1 outstanding" in d.reason


def test_unresolved_target_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="resolved target"):
        decide(ScalingSpec(), obs(0, 1, current=1), ScalerState(), 0)


# --- properties --------------------------------------------------------------------------------

policies = st.builds(
    lambda mn, extra, zero, step, stable, panic, thr, up, down, upw, downw, metric: policy(
        metric=metric, target=5.0, min_replicas=0 if zero else mn, max_replicas=max(mn, 1) + extra,
        scale_to_zero_after_s=zero, step=min(step, max(mn, 1) + extra), stable_window_s=stable,
        panic_window_s=panic, panic_threshold=thr, max_scale_up_rate=up, max_scale_down_rate=down,
        scale_up_window_s=upw, scale_down_window_s=downw),
    st.integers(1, 5), st.integers(0, 10), st.sampled_from([0, 5, 30]), st.integers(1, 3),
    st.sampled_from([5, 30, 60]), st.sampled_from([1, 3, 6]), st.sampled_from([1.5, 2.0, 4.0]),
    st.sampled_from([1.5, 2.0, 1000.0]), st.sampled_from([1.5, 2.0]), st.sampled_from([0, 5]),
    st.sampled_from([0, 30, 300]), st.sampled_from(["concurrency", "throughput"]),
)
readings = st.lists(st.tuples(
    st.floats(0.1, 5.0),                                            # seconds since the last tick
    st.one_of(st.none(), st.floats(0, 200, allow_nan=False)),       # value (None: scrape failed)
    st.one_of(st.none(), st.integers(0, 50)),                       # outstanding
    st.integers(0, 25),                                             # current (someone else may have set it)
    st.floats(0, 1),                                                # share of current that is ready
    st.floats(0, 12),                                               # age of the reading
    st.one_of(st.none(), st.floats(0, 100)),                        # backlog_s
), max_size=40)


def replay(p: ScalingSpec, rs: list[tuple[float, float | None, int | None, int, float, float, float | None]]
           ) -> list[tuple[Observation, Decision]]:
    state, now, out = ScalerState(), 0.0, []
    for dt, value, outstanding, current, ready_share, age, backlog_s in rs:
        now += dt
        o = Observation(at=now - age, value=value, outstanding=outstanding, current=current,
                        ready=int(current * ready_share), backlog_s=backlog_s,
                        queued=None if backlog_s is None else backlog_s / 2)  # 2 s of work each
        d, state = decide(p, o, state, now)
        out.append((o, d))
    return out


@settings(max_examples=300, deadline=None)
@given(policies, readings)
def test_never_outside_bounds(p: ScalingSpec, rs: Any) -> None:
    for _, d in replay(p, rs):
        assert p.min_replicas <= d.desired <= p.max_replicas


@settings(max_examples=300, deadline=None)
@given(policies, readings)
def test_never_to_zero_while_anything_is_queued_or_in_flight(p: ScalingSpec, rs: Any) -> None:
    for o, d in replay(p, rs):
        if d.desired == 0 and o.current > 0:
            assert o.outstanding == 0 and o.value == 0


@settings(max_examples=300, deadline=None)
@given(policies, readings)
def test_never_down_in_panic(p: ScalingSpec, rs: Any) -> None:
    for o, d in replay(p, rs):
        if d.panicking:
            assert d.desired >= min(o.current, p.max_replicas)


@settings(max_examples=100, deadline=None)
@given(policies, readings)
def test_deterministic(p: ScalingSpec, rs: Any) -> None:
    assert replay(p, rs) == replay(p, rs)


# --- warm capacity, cold starts and wakes ---------------------------------------------------------

def actuated(p: ScalingSpec, values: list[float], cold_start_s: float, backlog_s: float | None = None
             ) -> list[tuple[int, int, Decision]]:
    """One reading a second; replicas asked for are ready `cold_start_s` later (a fall cancels starting ones)."""
    state, asks, ready, out = ScalerState(), [], 0, []
    for t, value in enumerate(values):
        now = float(t)
        ready += sum(1 for a in asks if a + cold_start_s <= now)
        asks = [a for a in asks if a + cold_start_s > now]
        current = ready + len(asks)
        d, state = decide(p, Observation(now, value, value, current, ready, backlog_s), state, now)
        out.append((current, ready, d))
        if d.desired > current:
            asks += [now] * (d.desired - current)
        elif d.desired < current:
            drop = current - d.desired
            keep = max(0, len(asks) - drop)
            ready -= drop - (len(asks) - keep)
            asks = asks[:keep]
    return out


def test_the_decider_learns_the_cold_start_and_idles_twelve_of_them_before_zero() -> None:
    # A 30 s cold start, then idle: 30 s of scale_to_zero_after_s would wake every 30 s gap
    # through a whole cold start; it waits 12 x 30 = 360 s instead.
    p = policy(target=5, **ZERO)
    steps = actuated(p, [10.0] * 60 + [0.0] * 450, cold_start_s=30)
    zero_at = next(t for t, (_, _, d) in enumerate(steps) if t > 60 and d.desired == 0)
    assert 59 + 358 <= zero_at <= 59 + 365, steps[zero_at][2].reason
    assert "12 cold starts of 3" in steps[zero_at][2].reason


def test_a_service_that_usually_idles_briefly_keeps_one_replica_through_its_gaps() -> None:
    # Gaps of 90 s, 3 of them, after work one replica serves: the fourth idles 90 s with one
    # replica, not zero after 30 s.
    p = policy(target=5, **ZERO)
    values = ([4.0] * 20 + [0.0] * 90) * 4
    steps = actuated(p, values, cold_start_s=1)
    last_gap = [d for _, _, d in steps[3 * 110 + 20:3 * 110 + 110]]
    assert min(d.desired for d in last_gap) == 1
    assert "usual idle gap" in last_gap[-1].reason, last_gap[-1].reason
    first_gap = [d.desired for _, _, d in steps[20:105]]
    assert min(first_gap) == 0  # no history yet: scale_to_zero_after_s


def test_an_on_off_service_keeps_what_its_wakes_ask_for_at_once_through_its_usual_gaps() -> None:
    # ON 20 s at 18 in flight (4 replicas at a target of 5), then 90 s idle, four times. After
    # three wakes that each asked for 4 at once, the fourth gap keeps 4 warm (not 1), so the next
    # wake's first requests meet 4 ready replicas rather than 1 and a cold start.
    p = policy(target=5, **ZERO)
    values = ([18.0] * 20 + [0.0] * 90) * 4 + [18.0] * 5
    steps = actuated(p, values, cold_start_s=1)
    fourth_gap = [d for _, _, d in steps[3 * 110 + 20:3 * 110 + 110]]
    assert min(d.desired for d in fourth_gap) == 4, [d.reason for d in fourth_gap]
    assert "4, what wakes here usually ask for at once," in fourth_gap[-1].reason
    current, ready, _ = steps[4 * 110]
    assert (current, ready) == (4, 4)  # the fifth wake finds them ready
    second_gap = [d.desired for _, _, d in steps[110 + 20:110 + 110]]
    assert min(second_gap) <= 1  # one wake seen: not yet a history


def test_the_replicas_kept_warm_follow_the_wakes_not_themselves() -> None:
    # Wakes that asked for 4 keep 4 warm; then the service's wakes shrink to 1 replica's worth.
    # What a wake records is what it asked for, not the 4 the floor kept, so the kept level
    # falls back to 1 once most recent wakes asked for 1 (a level must not feed itself).
    p = policy(target=5, **ZERO)
    values = ([18.0] * 20 + [0.0] * 90) * 4 + ([3.0] * 20 + [0.0] * 90) * 12
    steps = actuated(p, values, cold_start_s=1)
    last_gap = [d.desired for _, _, d in steps[-80:]]
    assert min(last_gap) == 1, steps[-1][2].reason


def test_what_wakes_ask_for_is_kept_only_until_the_idle_grace_ends() -> None:
    # Four wakes of 4 replicas after 150 s gaps, then an idle night: the 4 are kept after the
    # burst's panic (60 s) has ended, and go to zero once idle as long as the usual gap, never later.
    p = policy(target=5, **ZERO)
    values = ([18.0] * 20 + [0.0] * 150) * 4 + [18.0] * 20 + [0.0] * 400
    steps = actuated(p, values, cold_start_s=1)
    night = [d for _, _, d in steps[4 * 170 + 20:]]
    assert night[100].desired == 4, night[100].reason
    zero = next(i for i, d in enumerate(night) if d.desired == 0)
    assert 150 <= zero <= 155, night[zero].reason


def test_a_wake_buys_for_the_queue_in_one_step_and_no_more_while_they_start() -> None:
    # Back after an idle gap: 10 req/s at 1 s each (10 in flight, 2 replicas at a target of 5)
    # and 40 queued (40 s of work, 8 more over 2 s x ... drained over max(2, c / 4) = 2 s).
    p = policy(target=5, max_replicas=50, **ZERO)
    state = ScalerState(last_active=-100.0)
    d, state = decide(p, Observation(0, 10, 50, 0, 0, backlog_s=40), state, 0)
    assert d.desired == 6, d.reason  # 2 for the arrivals + 4 for the queue, at once
    for t in (1.0, 2.0, 3.0):  # the queue grows while they start: it asks for no more
        d, state = decide(p, Observation(t, 10, 50 + 10 * t, 6, 0, backlog_s=40 + 10 * t), state, t)
        assert d.desired == 6, d.reason


def test_idle_zeros_do_not_dilute_the_demand_after_a_gap() -> None:
    # 60 s of 0 then 14 in flight: the windows start over, so 14 / 5 = 2.8 -> 3 at once
    # (averaged with the gap's zeros it would be 14 x 1 / 60 -> 1).
    p = policy(target=5, **ZERO)
    steps = run(p, [(float(t), 0.0) for t in range(60)] + [(60.0, 14.0)], start=1)
    assert steps[-1].desired == 3


def test_noise_never_cancels_a_starting_replica_asked_for_again() -> None:
    # Long requests: one-second readings swing 3 <-> 7 replicas' worth around a mean of 5 while
    # replicas take 30 s to start; with a 6 s stable window and no scale-down window (the
    # settings behind issue 13's 549 cancellations an hour) nothing starting is cancelled.
    p = policy(target=1, stable_window_s=6, panic_window_s=2, scale_down_window_s=0, max_replicas=20)
    values = [7.0 if (t // 3) % 2 else 3.0 for t in range(300)]
    steps = actuated(p, values, cold_start_s=30)
    cancels = [t for t, (current, ready, d) in enumerate(steps) if current > ready and d.desired < current]
    assert cancels == []


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(0.5, 40), min_size=2, max_size=10), st.sampled_from([5.0, 30.0]),
       st.sampled_from([2, 6, 60]))
def test_noise_that_recurs_never_cancels_a_starting_replica(pattern: list[float], cold: float, stable: int) -> None:
    # Readings that repeat a pattern (noise around a level): whatever a tick asks for, a tick
    # within the pattern's period asks for again, so cancelling a starting replica is always
    # a replica bought twice. After the cold start has been measured, none is cancelled.
    p = policy(target=5, stable_window_s=stable, panic_window_s=2, scale_down_window_s=0, max_replicas=20)
    steps = actuated(p, pattern * (int(4 * cold) // len(pattern) + 20), cold_start_s=cold)
    learned = int(2 * cold) + len(pattern)
    cancels = [(t, d.reason) for t, (current, ready, d) in enumerate(steps)
               if t > learned and current > ready and d.desired < current]
    assert cancels == []


@settings(max_examples=200, deadline=None)
@given(policies, st.lists(st.sampled_from([math.nan, math.inf, -math.inf, 1.0, 0.0]), max_size=20))
def test_non_finite_readings_hold(p: ScalingSpec, values: list[float]) -> None:
    state = ScalerState()
    for t, v in enumerate(values):
        d, new = decide(p, Observation(float(t), v, v, 3, 3, backlog_s=v, queued=v), state, float(t))
        if not math.isfinite(v):
            assert d.desired == min(max(3, p.min_replicas), p.max_replicas) and new == state
        state = new


# --- the queue a cold start will add -------------------------------------------------------------

def queued(t: float, value: float, n: float, current: int, ready: int, service_s: float = 2.0) -> Observation:
    """A reading with `n` requests of `service_s` queued at the gateway."""
    return Observation(t, value, n + value, current, ready, backlog_s=n * service_s, queued=n)


def test_a_growing_queue_buys_at_once_for_the_queue_there_will_be_when_replicas_are_ready() -> None:
    # A 30 s cold start (learned), a wake: 2 in flight's worth of arrivals (0.2 replicas at a
    # target of 10), and a queue that grows 10 requests of 2 s a second: 20 s of work a second.
    # At 101 s the replica asked for at 100 s is ready at 130 s, 29 s on: the queue will then
    # hold 40 + 20 x 29 = 620 s of work, 620 / 7.5 s / 10 = 8.3 replicas. The queue as it is
    # (40 s) would buy none beyond the one starting, and the rest would wait a second cold start.
    p = policy(**ZERO, max_replicas=50)
    state = ScalerState(cold=ColdStarts(estimate_s=30.0), last_active=0.0)
    d, state = decide(p, queued(100, 2, 10, current=0, ready=0), state, 100)
    assert d.desired == 2, d.reason  # nothing ready: the arrivals' 2 s of work a second queue (below)
    d, state = decide(p, queued(101, 2, 20, current=2, ready=0), state, 101)
    assert d.desired == 9, d.reason  # ceil(0.2 + min(40 / 75, 2 - 0.2) + 580 / 75) = ceil(8.47)
    assert "more by the time replicas are ready" in d.reason
    for t in (102.0, 103.0, 104.0):  # it keeps growing as projected: nothing more is bought
        d, state = decide(p, queued(t, 2, 20 + 10 * (t - 101), current=9, ready=0), state, t)
        assert d.desired == 9, d.reason


def test_with_nothing_ready_the_queue_gains_all_the_arriving_work_from_the_first_look() -> None:
    # A wake at a 30 s cold start: arrivals bring 8 s of work a second (8 in flight at a
    # target of 10: 0.8 replicas) and nothing serves, so by the time a replica bought now is
    # ready the queue (16 s now) will have gained 8 x 30 = 240 s: (16 + 240) / 7.5 / 10 = 3.4
    # replicas more, bought at the first look rather than after the panic window has seen
    # the queue rise.
    p = policy(**ZERO, max_replicas=50)
    state = ScalerState(cold=ColdStarts(estimate_s=30.0), last_active=0.0)
    d, _ = decide(p, queued(100, 8, 8, current=0, ready=0), state, 100)
    assert d.desired == math.ceil(0.8 + (16 + 240) / 75), d.reason
    d, _ = decide(p, queued(100, 8, 8, current=1, ready=1), state, 100)  # one ready: no rise seen yet
    assert d.desired == math.ceil(0.8 + 16 / 75), d.reason


def test_a_queue_that_is_not_growing_buys_only_for_itself() -> None:
    # The same 40 s of work, but steady (or draining): nothing is projected.
    p = policy(**ZERO, max_replicas=50)
    for later in (20.0, 10.0):
        state = ScalerState(cold=ColdStarts(estimate_s=30.0), last_active=0.0)
        _, state = decide(p, queued(100, 2, 20, current=1, ready=1), state, 100)
        d, _ = decide(p, queued(101, 2, later, current=1, ready=1), state, 101)
        assert d.desired == math.ceil(0.2 + later * 2 / 7.5 / 10), d.reason
        assert "more by the time" not in d.reason


@settings(max_examples=150, deadline=None)
@given(st.floats(0.5, 50), st.sampled_from([5.0, 30.0, 60.0]), st.floats(0.1, 20))
def test_replicas_that_start_slower_than_measured_are_not_joined_by_more(rate: float, cold: float,
                                                                          value: float) -> None:
    # The replicas asked for never become ready (they start slower than the cold start measured,
    # as Python replicas on 2 shared cores do) while the queue grows every second: once the
    # measured cold start has passed, the growing queue buys nothing more.
    p = policy(**ZERO, max_replicas=1000)
    state, current = ScalerState(cold=ColdStarts(estimate_s=cold), last_active=0.0), 0
    seen_after = []
    for t in range(int(3 * cold)):
        d, state = decide(p, queued(float(t), value, rate * (t + 1), current, 0), state, float(t))
        if t > cold + p.panic_window_s:
            seen_after.append(d.desired)
        current = d.desired
    assert seen_after == sorted(seen_after, reverse=True), seen_after  # never rises once they are overdue


def test_replicas_bought_for_a_queue_in_a_panic_are_not_held_for_the_down_window() -> None:
    # A burst to 20 replicas' worth on 10 ready panics and buys for its 600 s queue too (600 /
    # 7.5 s / 10 = 8 more). Once the queue has drained and the panic is over, the down window
    # (6 cold starts of 30 s) holds the burst's own 20, not the 28 bought for it and its queue.
    p = policy(**ZERO, max_replicas=100, panic_window_s=6, stable_window_s=60)
    state, current = ScalerState(cold=ColdStarts(estimate_s=30.0), last_active=0.0), 10
    for t in range(5):  # the 18 asked for start for 30 s
        d, state = decide(p, Observation(float(t), 200, 800, current, 10, backlog_s=600, queued=300),
                          state, float(t))
        current = d.desired
    assert current == 28 and d.panicking, d.reason
    for t in range(5, 100):  # the queue drained; arrivals back to 2 replicas' worth
        ready = current if t >= 30 else 10
        d, state = decide(p, Observation(float(t), 20, 20, current, ready, backlog_s=0, queued=0),
                          state, float(t))
        current = d.desired
    assert d.desired == 20 and not d.panicking, d.reason


def test_window_rise_per_second() -> None:
    w = Window().add(100, 10, 6).add(102, 25, 6).add(105, 40, 6)
    assert w.rise_per_s(105, 6) == 6.0  # (40 - 10) / 5
    assert w.rise_per_s(107, 6) == 5.0  # 100 s is out: (40 - 25) / 3
    assert Window().add(0, 40, 6).add(1, 10, 6).rise_per_s(1, 6) == 0.0  # falling: no rise
    assert Window().add(0, 40, 6).rise_per_s(0, 6) == 0.0


def _at_capacity(queued: list[float], arrivals: float) -> Decision:
    """3 ready replicas at 15 in flight (a target of 5), a measured 60 s cold start, 7.5 s requests queueing."""
    p = policy(target=5, max_replicas=50)
    state = ScalerState()
    for t, q in enumerate(queued):
        state = replace(state, cold=ColdStarts(estimate_s=60.0))
        reading = Observation(at=float(t), value=15.0, outstanding=24 + q, current=3, ready=3, backlog_s=7.5 * q,
                              queued=q, arrivals=arrivals)
        d, state = decide(p, reading, state, float(t))
    return d


def test_a_queue_rise_within_the_arrivals_chance_is_not_projected_over_the_cold_start() -> None:
    # 4 arrivals a second: over 3 s the queue moves by about sqrt(2 x 12) = 4.9 by chance. 0, 1, 3, 4 buys for
    # the 30 s of work queued (over 15 s at 5: 0.4 replica), not for 4 / 3 a second x 7.5 s x 60 s = 600 s more
    # (8 replicas, started for 60 s and let go once the queue is gone).
    assert _at_capacity([0, 1, 3, 4], arrivals=4).desired == 4
    # 30 a second piling up 70 in 3 s is a burst beyond chance (13.4): bought for in full, up to max_replicas.
    assert _at_capacity([0, 20, 40, 70], arrivals=30).desired == 50
