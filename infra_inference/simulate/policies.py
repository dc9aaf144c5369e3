"""The policies a replay compares: ours (`decide/` on `observe`), KPA-style, HPA-style, and an oracle.

Ours and KPA-style run the real decider; ours reads the gateway's counters
through `decide/autoscaling/observe.py` exactly as the runtime's autoscaler
does, so the simulator cannot drift from production. KPA-style feeds the
decider the requests outstanding (queued + in flight), as Knative measures
concurrency, with Knative's defaults. HPA-style and the oracle are written
out here.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from infra_inference.decide.autoscaling import Observation, ScalerState, decide
from infra_inference.decide.autoscaling.observe import ObserverState, observe_gateway
from infra_inference.simulate.replay import Policy, View
from infra_inference.simulate.workload import Request
from infra_inference.specs.autoscale import ScalingSpec


def decider(spec: ScalingSpec) -> Policy:
    """`decide()` on `observe_gateway()`: the runtime autoscaler's path, tick for tick."""
    state, observer = ScalerState(), ObserverState()

    def policy(view: View) -> int:
        nonlocal state, observer
        obs, observer = observe_gateway(spec.metric, view.sample, observer, view.current, view.ready, view.now)
        d, state = decide(spec, obs, state, view.now)
        return d.desired

    return policy


def kpa_style(slots: int, max_replicas: int = 200) -> tuple[Policy, float]:
    """Knative's KPA defaults: outstanding requests, 60 s stable / 6 s panic windows, panic at 200 %,
    70 % of the container concurrency as target, 30 s scale-to-zero grace, 2 s tick."""
    spec = ScalingSpec(metric="concurrency", target=0.7 * slots, min_replicas=0, max_replicas=max_replicas,
                       scale_to_zero_after_s=30, stable_window_s=60, panic_window_s=6, panic_threshold=2.0,
                       scale_down_window_s=0)
    state = ScalerState()

    def policy(view: View) -> int:
        nonlocal state
        outstanding = view.sample.queued + view.sample.inflight
        d, state = decide(spec, Observation(view.now, outstanding, outstanding, view.current, view.ready),
                          state, view.now)
        return d.desired

    return policy, 2.0


def hpa_style(max_replicas: int = 200) -> tuple[Policy, float]:
    """Kubernetes HPA on CPU: desired = ceil(ready x util / target), 10 % tolerance, 15 s sync,
    0 s up / 300 s down stabilization, default rate limits (max(4 pods, +100 %) up per period).
    CPU utilization is proxied by the replicas' busy share over the last sync period, as
    metrics-server reports it; the HPA cannot scale to zero (min 1)."""
    recs: deque[tuple[float, int]] = deque()

    def policy(view: View) -> int:
        ratio = view.busy_share / 0.7
        rec = view.current if abs(ratio - 1) <= 0.1 else math.ceil(max(view.ready, 1) * ratio)
        rec = max(1, min(max_replicas, rec))
        recs.append((view.now, rec))
        while recs and view.now - recs[0][0] > 300:
            recs.popleft()
        if rec < view.current:
            rec = min(view.current, max(r for _, r in recs))
        return min(rec, max(view.current + 4, 2 * view.current))

    return policy, 15.0


def oracle(requests: Sequence[Request], duration_s: float, slots: int, cold_start_s: float,
           share: float = 0.85) -> tuple[Policy, float]:
    """The replicas the in-service concurrency needs at `share` of the slots, asked for a cold start early.

    It knows every request's arrival and service time in advance: each
    second's mean concurrency (a 4.5 s request arriving at 10.5 s counts 0.5
    in second 10, 1 in 11-14), divided by `share` x slots, and asks at each
    second for the most any of the next cold start + 1 seconds needs. With
    100 ms requests at 200 req/s: 20 in flight, 20 / (0.85 x 8) = 2.9 -> 3.
    """
    seconds = int(duration_s) + 2
    concurrency = [0.0] * (seconds + 1)
    for r in requests:
        start, end = r.at, min(r.at + r.service_s, float(seconds))
        s = int(start)
        while s < end:
            concurrency[s] += min(end, s + 1) - max(start, s)
            s += 1
    need = [math.ceil(c / (slots * share) - 1e-9) for c in concurrency]
    lead = int(math.ceil(cold_start_s)) + 1
    ahead = [max(need[s:s + lead + 1]) for s in range(len(need))]

    def policy(view: View) -> int:
        return ahead[min(int(view.now), len(ahead) - 1)]

    return policy, 1.0
