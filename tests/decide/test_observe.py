"""From counters to observations: worked tables, implausible inputs, and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra_inference.decide.autoscaling import Observation, ScalerState, decide
from infra_inference.decide.autoscaling.observe import (
    GatewaySample,
    ObserverState,
    ReplicaSample,
    ServiceTime,
    observe_gateway,
    utilization,
    with_value,
)
from infra_inference.specs.autoscale import ScalingSpec


def sample(at: float, arrivals: float, served: float, served_s: float, queued: float = 0, inflight: float = 0,
           requests: float | None = None) -> GatewaySample:
    return GatewaySample(at, served if requests is None else requests, arrivals, served, served_s, queued, inflight)


def observe_all(metric: str, samples: list[GatewaySample | None]) -> list[Observation]:
    state, out = ObserverState(), []
    for s in samples:
        obs, state = observe_gateway(metric, s, state, 2, 2, s.at if s else 0.0)  # type: ignore[arg-type]
        out.append(obs)
    return out


def test_first_look_is_the_outstanding_count() -> None:
    (first,) = observe_all("concurrency", [sample(10, 100, 90, 9.0, queued=30, inflight=8)])
    assert (first.value, first.outstanding, first.queue_only, first.backlog_s) == (38, 38, True, None)


def test_concurrency_is_arrival_rate_times_service_time_and_the_queue_is_work() -> None:
    # +200 arrivals in 2 s at 0.1 s each: 10 in flight; 300 queued x 0.1 s: 30 s of work, not 308 in flight.
    _, second = observe_all("concurrency", [sample(10, 100, 90, 9.0), sample(12, 300, 190, 19.0, 300, 8)])
    assert second.value == pytest.approx(10.0) and second.backlog_s == pytest.approx(30.0)
    assert (second.outstanding, second.queue_only, second.queued) == (308, False, 300)


def test_a_poke_just_after_a_tick_measures_the_rate_over_the_last_second() -> None:
    # Ticks at 10 and 11 (4 arrivals a second at 1 s each), then the activator's poke at 11.03 with one more:
    # over 10 -> 11.03 that is 5 / 1.03 s, not 1 / 0.03 s = 33 in flight; the service time still counts
    # each request once.
    obs = observe_all("concurrency", [sample(10, 100, 96, 96.0), sample(11, 104, 100, 100.0),
                                      sample(11.03, 105, 100, 100.0, queued=1)])
    assert obs[2].value == pytest.approx(5 / 1.03)
    assert obs[2].arrivals == 5  # the count the rate stands on: its noise is the decider's to weigh
    # Then at 11.53 (another poke): over 10 -> 11.53 still; at 12.1, over 11.03 -> 12.1.
    more = observe_all("concurrency", [sample(10, 100, 96, 96.0), sample(11, 104, 100, 100.0),
                                       sample(11.03, 105, 100, 100.0), sample(11.53, 106, 100, 100.0),
                                       sample(12.1, 110, 104, 104.0)])
    assert more[3].value == pytest.approx(6 / 1.53) and more[4].value == pytest.approx(5 / 1.07)


def test_service_time_is_request_weighted_and_decayed_not_this_ticks_mean() -> None:
    # 12 requests of 0.5 s, then a tick where 3 of 20 s finish: the tick's mean says 20 s, the
    # requests say (6 + 60) / 15 = 4.4 s (less a little decay over the 1 s between).
    st_ = ServiceTime().add(12, 6.0, 1.0).add(3, 60.0, 1.0)
    assert st_.mean == pytest.approx((6 * 0.5 ** (1 / 60) + 60) / (12 * 0.5 ** (1 / 60) + 3))
    assert 4.3 < st_.mean < 4.5  # type: ignore[operator]
    # After a half-life, old requests weigh half: 10 of 1 s, 60 s later 10 of 3 s -> (5 + 30) / (5 + 10).
    assert ServiceTime().add(10, 10, 0).add(10, 30, 60).mean == pytest.approx(35 / 15)


def test_the_service_time_survives_hours_idle() -> None:
    assert ServiceTime().add(10, 1.0, 0).add(0, 0, 3600 * 30).mean == pytest.approx(0.1)


def test_a_gateway_restart_starts_over_instead_of_reading_negative_rates() -> None:
    obs = observe_all("concurrency", [sample(10, 100, 90, 9.0), sample(12, 5, 4, 0.4, inflight=1)])
    assert obs[1].queue_only and obs[1].value == 1  # a new first look: the outstanding count, no rate yet


def test_throughput_and_latency_from_deltas() -> None:
    a = GatewaySample(0, 100, 100, 100, 10, 0, 0, {0.05: 60, 0.1: 100, math.inf: 100})
    b = GatewaySample(2, 300, 300, 300, 30, 0, 0, {0.05: 120, 0.1: 200, math.inf: 300})
    assert observe_all("throughput", [a, b])[1].value == pytest.approx(100.0)
    # The second tick: 60 under 0.05 s, 100 under 0.1 s, 200 in all: p95 (rank 190) sits in +Inf: 0.1 s.
    assert observe_all("latency", [a, b])[1].value == pytest.approx(100.0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, 1e300])
def test_implausible_counters_are_no_reading(bad: float) -> None:
    (obs,) = observe_all("concurrency", [sample(10, 100, 90, 9.0, inflight=bad)])
    assert obs.value is None and obs.outstanding is None


def test_a_missing_scrape_is_no_reading_and_keeps_the_previous_one() -> None:
    obs = observe_all("concurrency", [sample(10, 100, 90, 9.0), None, sample(12, 300, 190, 19.0)])
    assert obs[1].value is None
    assert obs[2].value == pytest.approx(10.0)


def test_utilization_is_clamped_and_implausible_replicas_are_left_out() -> None:
    gpu, _ = utilization("gpu-utilization", {"a": ReplicaSample(gpu_ratios=(5.0,)),
                                              "b": ReplicaSample(gpu_ratios=(0.5,)),
                                              "c": ReplicaSample(gpu_ratios=(math.nan,))}, ObserverState(), 0)
    assert gpu == pytest.approx(75.0)  # 100 % (clamped) and 50 %; c says nothing
    _, state = utilization("cpu-utilization", {"a": ReplicaSample(cpu_s=10.0)}, ObserverState(), 0)
    cpu, _ = utilization("cpu-utilization", {"a": ReplicaSample(cpu_s=13.0)}, state, 2)
    assert cpu == pytest.approx(150.0)  # 3 CPU-seconds in 2 s
    cpu, _ = utilization("cpu-utilization", {"a": ReplicaSample(cpu_s=1e15)}, state, 2)
    assert cpu == pytest.approx(25600.0)  # a counter jump is at most 256 cores, not 5e16 %


def test_an_implausible_custom_value_is_no_value() -> None:
    obs = Observation(0, 3, 3, 1, 1)
    assert with_value(obs, 1e300).value is None and with_value(obs, math.nan).value is None
    assert with_value(obs, 7.0).value == 7.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_readings_hold_in_the_decider(bad: float) -> None:
    # Before: NaN raised ValueError in math.ceil, inf OverflowError.
    policy = ScalingSpec(metric="concurrency", target=5, min_replicas=1, max_replicas=20)
    d, state = decide(policy, Observation(0, bad, bad, 4, 4, backlog_s=bad), ScalerState(), 0)
    assert d.desired == 4 and "no concurrency reading" in d.reason
    assert state == ScalerState()


def test_a_huge_counter_does_not_jump_to_max() -> None:
    # Before: 1e300 in flight read as 1e300 / 5 replicas, rate-limited to max in one step.
    policy = ScalingSpec(metric="concurrency", target=5, min_replicas=1, max_replicas=200)
    obs, _ = observe_gateway("concurrency", sample(0, 1, 1, 0.1, inflight=1e300), ObserverState(), 4, 4, 0)
    d, _ = decide(policy, obs, ScalerState(), 0)
    assert d.desired == 4


counters = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 5), counters, counters, counters, counters, counters), max_size=20))
def test_any_counters_give_a_finite_reading_or_none(rows: list[tuple[float, ...]]) -> None:
    state, now = ObserverState(), 0.0
    for dt, arrivals, served, served_s, queued, inflight in rows:
        now += dt
        obs, state = observe_gateway("concurrency", GatewaySample(now, served, arrivals, served, served_s, queued,
                                                                  inflight), state, 1, 1, now)
        for x in (obs.value, obs.outstanding, obs.backlog_s, obs.queued):
            assert x is None or (math.isfinite(x) and x >= 0)
