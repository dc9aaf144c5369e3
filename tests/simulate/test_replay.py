"""The simulator on traces small enough to work out by hand, and the workloads' statistics."""

from __future__ import annotations

import math
import statistics

import pytest

from infra_inference.simulate import workload
from infra_inference.simulate.policies import decider, hpa_style, kpa_style, oracle
from infra_inference.simulate.replay import Replica, View, Wake, replay
from infra_inference.simulate.workload import Request
from infra_inference.specs.autoscale import ScalingSpec


def fixed(n: int):  # noqa: ANN201
    return lambda view: n


def test_enough_warm_replicas_serve_everything_at_once() -> None:
    requests = [Request(0.5 + i * 0.1, 0.35) for i in range(50)]  # at most 4 in flight
    run = replay("fixed", requests, 10, fixed(1), 1.0, Replica(slots=4, cold_start_s=0))
    assert (run.within_slo, run.failed) == (50, 0)
    assert run.replica_seconds == pytest.approx(10.0)


def test_a_request_waits_for_the_cold_start() -> None:
    # Asked for at t=0, ready at 5: the request at 0.5 waits 4.5 s, the one at 5.5 none.
    run = replay("cold", [Request(0.5, 1.0), Request(5.5, 1.0)], 10, fixed(1), 1.0, Replica(1, cold_start_s=5))
    assert (run.requests, run.within_slo, run.failed) == (2, 1, 0)


def test_slots_queue_requests_fifo() -> None:
    # One slot, three 2 s requests at once: they start at 0, 2, 4; two wait more than 1 s.
    run = replay("one slot", [Request(0.0, 2.0)] * 3, 10, fixed(1), 1.0, Replica(1, cold_start_s=0))
    assert run.within_slo == 1


def test_requests_waiting_past_the_timeout_fail() -> None:
    run = replay("none", [Request(0.5, 1.0)], 40, fixed(0), 1.0, Replica(1, 0), timeout_s=30)
    assert (run.within_slo, run.failed) == (0, 1)


def test_a_fall_cancels_replicas_still_starting_first() -> None:
    asks = iter([3, 1, 1, 1])
    run = replay("flap", [], 4, lambda view: next(asks), 1.0, Replica(1, cold_start_s=10))
    assert (run.scale_ups, run.cancelled) == (1, 2)
    assert run.replica_seconds == pytest.approx(3 + 1 + 1 + 1)


def test_standby_is_paid_for_all_the_time() -> None:
    assert replay("s", [], 10, fixed(0), 1.0, Replica(1, 5, standby=2)).replica_seconds == pytest.approx(20)


def test_the_policy_sees_the_gateways_counters() -> None:
    seen: list[View] = []

    def watch(view: View) -> int:
        seen.append(view)
        return 1

    replay("w", [Request(0.2, 0.5), Request(0.3, 3.0), Request(1.5, 1.0)], 3, watch, 1.0, Replica(1, 0))
    # At t=2: 3 arrived; 0.2 -> 0.7 served; 0.7 -> 3.7 in flight; the one at 1.5 queued.
    s = seen[2].sample
    assert (s.arrivals, s.served, s.served_s, s.inflight, s.queued) == (3, 1, 0.5, 1, 1)


def test_the_activator_wakes_the_policy_at_the_first_request_waiting_for_a_replica() -> None:
    # Nothing ready: the request at 0.3 s asks the policy at once, then every 0.5 s (the long-poll's
    # cooldown) while it waits for the replica starting since 0.3 s (ready at 3.3 s), then each second
    # after the last tick. Without the wake the first look is the 1 s tick.
    def watch(seen: list[float]):  # noqa: ANN202
        def policy(view: View) -> int:
            seen.append(view.now)
            return 1 if view.sample.queued + view.sample.inflight else view.current
        return policy

    woken: list[float] = []
    run = replay("w", [Request(0.3, 1.0)], 5, watch(woken), 1.0, Replica(1, 3.0), wake=Wake(0.5))
    assert woken == pytest.approx([0, 0.3, 0.8, 1.3, 1.8, 2.3, 2.8, 3.8, 4.8])
    assert (run.within_slo, run.replica_seconds) == (0, pytest.approx(5 - 0.3))  # paid from the wake on
    ticked: list[float] = []
    run = replay("t", [Request(0.3, 1.0)], 5, watch(ticked), 1.0, Replica(1, 3.0))
    assert ticked == [0, 1, 2, 3, 4]
    assert run.replica_seconds == pytest.approx(5 - 1)


def test_a_burst_arriving_at_once_is_seen_whole_by_the_wake() -> None:
    seen: list[tuple[float, float]] = []

    def watch(view: View) -> int:
        seen.append((view.now, view.sample.queued))
        return view.current

    replay("b", [Request(0.3, 1.0)] * 4 + [Request(0.6, 1.0)], 1.5, watch, 1.0, Replica(1, 3.0), wake=Wake(0.5))
    assert seen == [(0, 0), (0.3, 4), (0.8, 5)]  # 0.6 came while the long-poll was not listening


def test_knatives_activator_pokes_only_at_zero() -> None:
    # Knative pokes its autoscaler while the revision is at zero: the wake at 0.3 s, then ticks alone.
    seen: list[float] = []

    def watch(view: View) -> int:
        seen.append(view.now)
        return 1 if view.sample.queued + view.sample.inflight else view.current

    replay("k", [Request(0.3, 1.0)], 3, watch, 1.0, Replica(1, 3.0), wake=Wake(0.5, at_zero_only=True))
    assert seen == pytest.approx([0, 0.3, 1.3, 2.3])


def test_the_oracle_asks_a_cold_start_early_and_meets_the_slo() -> None:
    requests = workload.llm(workload.CHAT, 0.25, seed=5)
    policy, period = oracle(requests, 900, slots=8, cold_start_s=5)
    run = replay("oracle", requests, 900, policy, period, Replica(8, 5))
    # What it misses: the first 5 s (nothing can be ready sooner), and Gamma bursts within a second.
    assert run.slo_share > 0.98


def test_policies_are_deterministic_and_ours_is_the_runtimes_path() -> None:
    requests = workload.synthetic(0.1, seed=3)
    spec = ScalingSpec(metric="concurrency", target=5.6, min_replicas=0, max_replicas=50, scale_to_zero_after_s=30)
    runs = [replay("ours", requests, 360, decider(spec), 1.0, Replica(8, 5)) for _ in range(2)]
    assert runs[0] == runs[1] and runs[0].slo_share > 0.5
    for make in (lambda: kpa_style(8, 50), lambda: hpa_style(50)):
        policy, period = make()
        assert replay("b", requests, 360, policy, period, Replica(8, 5)).requests > 0.9 * len(requests)


# --- workloads ----------------------------------------------------------------------------------

def test_traces_are_seeded() -> None:
    assert workload.llm(workload.CODE, 0.1, 1) == workload.llm(workload.CODE, 0.1, 1)
    assert workload.llm(workload.CODE, 0.1, 1) != workload.llm(workload.CODE, 0.1, 2)
    assert workload.synthetic(0.05, 4) == workload.synthetic(0.05, 4)


def test_llm_chat_has_published_shape() -> None:
    requests = workload.llm(workload.CHAT, 1.0, seed=11)
    services = sorted(r.service_s for r in requests)
    # ~4 req/s over the hour (2-6 over the day's curve).
    assert 3.0 < len(requests) / 3600 < 5.0
    # Median: 1,020 prompt tokens / 8,000 per s + 129 x 30 ms = 4.0 s; a heavy tail to ~40 s.
    assert 3.0 < statistics.median(services) < 5.0
    assert services[int(0.99 * len(services))] > 25 and services[-1] <= 1400 / 8000 + 1400 * 0.03 + 1e-9
    # Burstier than Poisson: the coefficient of variation of gaps is above 1 (Gamma shape 0.5: 1.41).
    gaps = [b.at - a.at for a, b in zip(requests, requests[1:])]
    assert statistics.stdev(gaps) / statistics.mean(gaps) > 1.2


def test_llm_code_idles_between_bursts() -> None:
    requests = workload.llm(workload.CODE, 1.0, seed=11)
    idle = [b.at - a.at for a, b in zip(requests, requests[1:]) if b.at - a.at >= 30]
    assert 10 <= len(idle) <= 40 and max(idle) <= 240 + 60  # gaps of 30-240 s, plus the gap in arrivals
    # Coding: long prompts, short answers: mostly under 2 s in a replica.
    assert statistics.median(r.service_s for r in requests) < 1.0


def test_the_synthetic_trace_is_the_one_the_earlier_results_used() -> None:
    rate = workload.synthetic_rates(2.0, 7)
    assert max(rate) == pytest.approx(1027, abs=1)  # RESULTS.md: peak 1,027 req/s
    assert all(math.isclose(r.service_s, 0.1) for r in workload.poisson(rate[:60], 7))
