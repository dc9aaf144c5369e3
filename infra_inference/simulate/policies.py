"""The policies a replay compares: ours (`decide/` on `observe`), KPA-style, HPA-style, and an oracle.

Ours runs the real decider on the gateway's counters read through
`decide/autoscaling/observe.py`, exactly as the runtime's autoscaler does,
so the simulator cannot drift from production. The baselines are written
out here, independent of ours (a change to `decide/` cannot move them):
KPA-style is Knative's algorithm and defaults, HPA-style the Kubernetes HPA
on a CPU proxy, and the oracle knows the future.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from infra_inference.decide.autoscaling import ScalerState, decide
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
    """Knative's KPA with its defaults, written out (pkg/autoscaler/scaling/autoscaler.go), independent of ours.

    Concurrency is the requests outstanding (queued at the activator or
    queue-proxy + in flight), averaged over a 60 s stable and a 6 s panic
    window of 2 s samples; target 70 % of the container concurrency. Panic
    when the panic window wants >= 2x the ready pods; in panic never scale
    down; leave panic a stable window after it was last over. Scale rates
    1000x up, /2 down per decision, relative to ready pods; zero only after
    a 30 s grace with nothing outstanding.
    """
    target, stable_s, panic_s, grace_s = 0.7 * slots, 60.0, 6.0, 30.0
    samples: deque[tuple[float, float]] = deque()
    panic_since: float | None = None  # the last time over the panic threshold
    panic_desired = 0
    last_active = 0.0

    def policy(view: View) -> int:
        nonlocal panic_since, panic_desired, last_active
        outstanding = view.sample.queued + view.sample.inflight
        samples.append((view.now, outstanding))
        while view.now - samples[0][0] >= stable_s:
            samples.popleft()
        stable = sum(v for _, v in samples) / len(samples)
        recent = [v for t, v in samples if view.now - t < panic_s]
        panic = sum(recent) / len(recent)
        ready = max(view.ready, 1)
        lo, hi = math.floor(view.ready / 2), math.ceil(1000 * ready)
        want_stable = min(hi, max(lo, math.ceil(stable / target - 1e-9)))
        want_panic = min(hi, max(lo, math.ceil(panic / target - 1e-9)))
        if want_panic / ready >= 2.0:
            panic_since = view.now  # Knative's panicTime: the last time over the threshold
        elif panic_since is not None and view.now - panic_since >= stable_s:
            panic_since, panic_desired = None, 0
        desired = want_stable
        if panic_since is not None:
            panic_desired = max(panic_desired, want_panic, view.current)
            desired = panic_desired
        if outstanding > 0:
            last_active = view.now
        if desired == 0 and (outstanding > 0 or view.now - last_active < grace_s):
            desired = min(1, view.current) if outstanding == 0 else 1
        return min(max_replicas, desired)

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
