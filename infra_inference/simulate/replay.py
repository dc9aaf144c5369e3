"""A discrete-event replay of a trace through a gateway queue and autoscaled replicas.

The gateway is one FIFO queue; a replica has `slots` (its max_concurrency)
and serves each request for the request's own seconds; a replica asked for
is ready `cold_start_s` later. Every `period_s` the policy sees what the
runtime's collector would scrape (`GatewaySample`: the gateway's cumulative
counters and gauges) and answers with the replicas to ask for; a fall
cancels replicas still starting first. With a `Wake`, a request that
queues with no replica ready asks the policy at once, as the gateway's
activator wakes the runtime's autoscaler. Cost is replica-seconds asked for
(a starting replica is paid for), plus any warm standby held throughout.

Events (arrivals, completions, replicas becoming ready) are processed in
time order, so a 2 h trace of 600,000 requests replays in seconds.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from infra_inference.decide.autoscaling.observe import GatewaySample
from infra_inference.simulate.workload import Request

# The latency objective: seconds a request may wait at the gateway before a replica takes it.
SLO_QUEUE_S = 1.0
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Replica:
    """Slots per replica (max_concurrency), seconds from asked-for to ready, and warm standby replicas held."""

    slots: int = 8
    cold_start_s: float = 5.0
    standby: int = 0


@dataclass(frozen=True)
class View:
    """What a policy sees at a tick: the gateway's counters, the replicas asked for and ready, and how busy they were.

    `busy_share` is the share of ready slots in use over the last period
    (the CPU-utilization proxy of an HPA-style policy).
    """

    now: float
    sample: GatewaySample
    current: int
    ready: int
    busy_share: float


Policy = Callable[[View], int]


@dataclass(frozen=True)
class Wake:
    """The gateway's activator: a request that queues with no replica ready wakes the autoscaler at once.

    The runtime's autoscaler long-polls the gateway (`/activator/wait`),
    which answers when a request queues behind a backend with no ready
    replica, and at once while requests wait so; after each poke it stops
    listening for `cooldown_s`. So a wake from zero is decided at the first
    request's arrival, not at the next tick, and while the first replicas
    start with requests waiting, every `cooldown_s` (each tick restarting
    the wait for the next regular one). Without it, a wake at a 1 s tick
    looks up to a second late, with several requests already outstanding.
    Knative's activator pokes its autoscaler only while the revision is at
    zero (`at_zero_only`): once replicas are asked for, it waits for ticks.
    """

    cooldown_s: float
    at_zero_only: bool = False


@dataclass
class Run:
    """What a replay measured."""

    name: str
    requests: int = 0
    within_slo: int = 0
    failed: int = 0
    replica_seconds: float = 0.0
    scale_ups: int = 0
    cancelled: int = 0

    @property
    def slo_share(self) -> float:
        return self.within_slo / max(1, self.requests)


def replay(name: str, requests: Sequence[Request], duration_s: float, policy: Policy, period_s: float,
           replica: Replica, timeout_s: float = TIMEOUT_S, wake: Wake | None = None) -> Run:
    """Replay `requests` for `duration_s` under `policy`, ticking every `period_s` (and at `wake`'s pokes)."""
    run = Run(name)
    queue: deque[Request] = deque()
    inflight: list[tuple[float, float]] = []  # (finishes at, service seconds)
    starting: deque[float] = deque()  # ready-at times, in order (one cold start for all)
    ready = current = i = 0
    arrivals = served = 0
    served_s = busy_s = 0.0
    last = 0.0
    next_tick, previous = 0.0, 0.0  # the next regular tick; the last tick of any kind
    listens_at = 0.0  # when the activator's long-poll is listening again after a poke

    def dispatch(t: float) -> None:
        while queue and len(inflight) < ready * replica.slots:
            r = queue.popleft()
            if t - r.at > timeout_s:
                run.failed += 1
                continue
            if t - r.at <= SLO_QUEUE_S:
                run.within_slo += 1
            heapq.heappush(inflight, (t + r.service_s, r.service_s))

    def poke_at() -> float:
        """When the activator pokes next, given nothing changes: now if requests wait with no replica ready."""
        if wake is None or not queue or ready or (wake.at_zero_only and current):
            return math.inf
        return max(listens_at, last)

    while next_tick < duration_s:
        while True:
            t_arrive = requests[i].at if i < len(requests) else math.inf
            t_finish = inflight[0][0] if inflight else math.inf
            t_ready = starting[0] if starting else math.inf
            t = min(t_arrive, t_finish, t_ready)
            tick = min(next_tick, poke_at())
            if t > tick:  # events at the tick's own time come first (a burst's simultaneous arrivals)
                break
            busy_s += (t - last) * (min(1.0, len(inflight) / (ready * replica.slots)) if ready else 0.0)
            last = t
            if t == t_finish:
                _, s = heapq.heappop(inflight)
                served += 1
                served_s += s
            elif t == t_ready:
                starting.popleft()
                ready += 1
            else:
                queue.append(requests[i])
                arrivals += 1
                i += 1
            dispatch(t)
        busy_s += (tick - last) * (min(1.0, len(inflight) / (ready * replica.slots)) if ready else 0.0)
        last = tick
        if wake is not None and poke_at() <= tick:  # a poke (a regular tick at the same moment is the same tick)
            listens_at = tick + wake.cooldown_s
        run.replica_seconds += (current + replica.standby) * (tick - previous)
        while queue and tick - queue[0].at > timeout_s:
            queue.popleft()
            run.failed += 1
        sample = GatewaySample(tick, float(served), float(arrivals), float(served), served_s, float(len(queue)),
                               float(len(inflight)))
        desired = policy(View(tick, sample, current, ready, busy_s / (tick - previous) if tick > previous else 0.0))
        busy_s = 0.0
        if desired > current:
            starting.extend([tick + replica.cold_start_s] * (desired - current))
            run.scale_ups += 1
        elif desired < current:
            drop = current - desired
            while drop and starting:  # cancel the replicas still starting first (newest first)
                starting.pop()
                run.cancelled += 1
                drop -= 1
            ready -= drop
        current = desired
        previous, next_tick = tick, tick + period_s  # the loop's wait restarts at every tick, poked or not
    run.replica_seconds += (current + replica.standby) * (duration_s - previous)
    run.failed += len(queue)
    run.requests = i  # arrivals after the last tick met no decision: counted neither way
    return run
