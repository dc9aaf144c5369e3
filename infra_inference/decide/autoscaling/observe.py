"""From counters to an `Observation`: the one path the runtime collector and the simulator share.

The collector scrapes the gateway and the replicas (I/O) and hands this
module plain numbers: cumulative counters and gauges per deployment
(`GatewaySample`), replicas' cumulative CPU seconds or GPU busy ratios
(`ReplicaSample`), or a custom query's value. `observe` turns them into the
reading the decider takes, remembering what it needs between ticks in a
frozen `ObserverState`. The simulator feeds it the same numbers from its own
queue, so what the benchmark measures is what production runs.

Anything that cannot be a real reading is no reading: a NaN or infinite
counter, a counter above 2**53 (a float counter that large can no longer
count by one), a negative gauge. The decider holds on None; it never sees
such a number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from infra_inference.decide.autoscaling.decider import Observation
from infra_inference.decide.autoscaling.demand import littles_law
from infra_inference.specs.autoscale import Metric

# 2**53 = 9.0e15: beyond it a float counter cannot count by one, so no gateway or replica
# produced it; 1e300 requests in flight is a broken exporter, not a reason to go to max.
MAX_PLAUSIBLE = float(2 ** 53)

# The service time is a mean over recent requests weighted by request, decayed with this
# half-life, not this tick's mean: LLM requests take 0.05-40 s, so the 3 requests that finish
# in one second can average 0.2 s or 12 s, and Little's law would swing 60x with them. Over a
# 60 s half-life, ~250 requests at 4 req/s carry the estimate; a shift in the mix (longer
# prompts at night) shows in a minute. benchmarks/autoscale_replay.py, tuning seeds: the
# per-tick mean keeps about the same share within 1 s on the LLM traces for 20-85 % more
# replica-seconds (its swings are held by the scale-down window).
SERVICE_HALF_LIFE_S = 60.0
_MIN_WEIGHT = 1e-3
# Rates (arrivals, answers a second) are measured over at least this long, from the newest earlier
# scrape that is this old. The gateway's activator pokes the autoscaler within milliseconds of a tick:
# one arrival 0.03 s after the last scrape read as 33 req/s, x 1 s of service 33 in flight, and a
# wake on the code trace bought 22 replicas for one request (benchmarks/autoscale_replay.py, seed 101).
# Over the last second and more it reads about 1 a second.
RATE_MIN_S = 1.0
# A replica's CPU seconds per second above this many cores is a broken counter, not load.
MAX_CORES = 256.0


def plausible(x: float | None) -> float | None:
    """`x` when it can be a real count or gauge (finite, 0 <= x <= 2**53); None otherwise."""
    if x is None or not math.isfinite(x) or x < 0 or x > MAX_PLAUSIBLE:
        return None
    return float(x)


@dataclass(frozen=True)
class GatewaySample:
    """One scrape of a deployment's gateway metrics, summed over gateway replicas.

    Attributes:
        at: When it was scraped.
        requests: Answered requests, cumulative (`infra_inference_requests_total`).
        arrivals: Requests received, cumulative (`infra_inference_arrivals_total`).
        served: Requests that finished in a replica, cumulative.
        served_s: Seconds those spent in a replica, cumulative: the service time's sum.
        queued: Requests waiting at the gateway now.
        inflight: Requests in a replica now.
        buckets: Cumulative histogram of request durations {upper bound s: count}.
    """

    at: float
    requests: float
    arrivals: float
    served: float
    served_s: float
    queued: float
    inflight: float
    buckets: Mapping[float, float] = field(default_factory=dict)

    def sane(self) -> bool:
        numbers = (self.requests, self.arrivals, self.served, self.served_s, self.queued, self.inflight,
                   *self.buckets.values())
        return all(plausible(x) is not None for x in numbers)

    def since(self, previous: GatewaySample | None) -> GatewaySample | None:
        """The increase since `previous`, its `at` the seconds between the two scrapes.

        None on the first look, or after a gateway restarted (its counters reset).
        """
        if previous is None or self.at <= previous.at or self.requests < previous.requests \
                or self.arrivals < previous.arrivals or self.served < previous.served \
                or self.served_s < previous.served_s:
            return None
        return GatewaySample(self.at - previous.at, self.requests - previous.requests,
                             self.arrivals - previous.arrivals, self.served - previous.served,
                             self.served_s - previous.served_s, self.queued, self.inflight,
                             {le: c - previous.buckets.get(le, 0.0) for le, c in self.buckets.items()})


@dataclass(frozen=True)
class ReplicaSample:
    """One scrape of a ready replica: cumulative CPU seconds, and its GPUs' busy ratios (0..1) if any."""

    cpu_s: float | None = None
    gpu_ratios: tuple[float, ...] = ()


@dataclass(frozen=True)
class ServiceTime:
    """Seconds a request spends in a replica: a request-weighted mean, decayed by SERVICE_HALF_LIFE_S.

    12 requests of 0.5 s then 3 of 20 s: 66 s over 15 requests, 4.4 s, where the
    second tick's own mean would say 20 s. Each `add` decays what came before by
    0.5 ** (seconds / half-life): after one half-life the old requests weigh half.
    """

    seconds: float = 0.0
    requests: float = 0.0

    def add(self, served: float, served_s: float, elapsed_s: float) -> ServiceTime:
        decay = 0.5 ** (max(0.0, elapsed_s) / SERVICE_HALF_LIFE_S)
        seconds, requests = self.seconds * decay, self.requests * decay
        if self.requests > 0 and requests < _MIN_WEIGHT:  # hours idle: keep the mean, not a weight of 0
            seconds, requests = self.seconds / self.requests * _MIN_WEIGHT, _MIN_WEIGHT
        return ServiceTime(seconds + served_s, requests + served)

    @property
    def mean(self) -> float | None:
        return self.seconds / self.requests if self.requests > 0 else None


@dataclass(frozen=True)
class ObserverState:
    """What observing remembers between ticks: the previous scrape, the service-time estimate, and the
    scrapes of the last RATE_MIN_S (with the newest older one) that rates are measured from."""

    previous: GatewaySample | None = None
    service: ServiceTime = ServiceTime()
    recent: tuple[GatewaySample, ...] = ()
    previous_cpu: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def observe_gateway(metric: Metric, sample: GatewaySample | None, state: ObserverState, current: int,
                    ready: int, now: float) -> tuple[Observation, ObserverState]:
    """The reading for a gateway metric (concurrency, throughput, latency), or the outstanding count alone.

    For utilization and custom metrics the gateway still says what is
    outstanding (never to zero with work waiting): pass their value through
    `with_value`.
    """
    if sample is None or not sample.sane():
        return Observation(now, None, None, current, ready), state
    outstanding = sample.queued + sample.inflight
    delta = sample.since(state.previous)
    service = state.service if delta is None else state.service.add(delta.served, delta.served_s, delta.at)
    rate, recent = _rate_delta(sample, state.recent, delta)
    state = replace(state, previous=sample, service=service, recent=recent)
    if metric == "concurrency":
        return _concurrency(sample, rate, service, current, ready), state
    value = None
    if rate is not None and metric == "throughput":
        value = plausible(rate.requests / rate.at)
    elif delta is not None and metric == "latency":
        p95 = quantile(0.95, delta.buckets)
        value = None if p95 is None else p95 * 1000.0
    return Observation(sample.at, value, outstanding, current, ready), state


def _rate_delta(sample: GatewaySample, recent: tuple[GatewaySample, ...],
                delta: GatewaySample | None) -> tuple[GatewaySample | None, tuple[GatewaySample, ...]]:
    """The increase to measure rates by: since the newest scrape at least RATE_MIN_S old (else the oldest kept).

    Scrapes at 10, 11 and a poke at 11.03: the poke's rates are over 10 -> 11.03,
    not the 0.03 s since 11. None where `delta` is (a first look, a restart).
    """
    if delta is None:
        return None, (sample,)
    kept = (*recent, sample)
    older = [s for s in kept if sample.at - s.at >= RATE_MIN_S]
    base = older[-1] if older else kept[0]
    kept = tuple(older[-1:]) + tuple(s for s in kept if sample.at - s.at < RATE_MIN_S)
    return sample.since(base) or delta, kept


def _concurrency(sample: GatewaySample, delta: GatewaySample | None, service: ServiceTime, current: int,
                 ready: int) -> Observation:
    """Arrival rate x service time, and the queue as work; the requests outstanding until both are known.

    Before any request was served, and on the first look, there is no rate,
    and the outstanding count (9 queued at a gateway with no replica: 9) is
    the best reading of demand.
    """
    outstanding = sample.queued + sample.inflight
    service_s = service.mean
    if delta is None or service_s is None:
        return Observation(sample.at, outstanding, outstanding, current, ready, queue_only=True)
    concurrency, backlog_s = littles_law(delta.arrivals, delta.at, service_s, sample.queued)
    value, backlog = plausible(concurrency), plausible(backlog_s)
    if value is None or backlog is None:  # counters each plausible, their ratio not (1e15 / 1e-300)
        return Observation(sample.at, None, outstanding, current, ready)
    return Observation(sample.at, value, outstanding, current, ready, backlog, queued=sample.queued,
                       arrivals=delta.arrivals)


def quantile(q: float, cumulative: Mapping[float, float]) -> float | None:
    """PromQL's histogram_quantile: linear inside the bucket that holds rank q x count.

    Counts 60 under 0.05 s, 100 under 0.1 s: p95 is rank 95, in (0.05, 0.1],
    35 of that bucket's 40 -> 0.05 + 0.05 x 35/40 = 0.094 s. None for no observations.
    """
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] <= 0:
        return None
    rank = q * cumulative[bounds[-1]]
    lower, below = 0.0, 0.0
    for upper in bounds:
        count = cumulative[upper]
        if count >= rank:
            if math.isinf(upper):
                return lower  # the +Inf bucket has no width: its lower bound is the best estimate
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = upper, count
    return lower


def utilization(metric: Metric, replicas: Mapping[str, ReplicaSample] | None, state: ObserverState,
                now: float) -> tuple[float | None, ObserverState]:
    """Mean over ready replicas, in percent: GPU busy ratio (clamped to 100 %), or CPU seconds per second.

    A replica's CPU is the increase of its cumulative seconds since its last
    scrape (3.0 s more over 2 s: 150 %, one and a half cores). A replica whose
    counter is implausible or went backwards (it restarted) is left out this tick.
    """
    if not replicas:
        return None, state
    if metric == "gpu-utilization":
        per_replica = []
        for s in replicas.values():
            ratios = [plausible(r) for r in s.gpu_ratios]
            if ratios and all(r is not None for r in ratios):
                per_replica.append(min(1.0, sum(r for r in ratios if r is not None) / len(ratios)))
        return (100.0 * sum(per_replica) / len(per_replica) if per_replica else None), state
    previous, seen, rates = dict(state.previous_cpu), {}, []
    for url, s in replicas.items():
        cpu = plausible(s.cpu_s)
        if cpu is None:
            continue
        seen[url] = (now, cpu)
        before = previous.get(url)
        if before is not None and now > before[0] and cpu >= before[1]:
            rates.append(min(MAX_CORES, (cpu - before[1]) / (now - before[0])))
    return (100.0 * sum(rates) / len(rates) if rates else None), replace(state, previous_cpu=seen)


def with_value(obs: Observation, value: float | None) -> Observation:
    """`obs` with another metric's value (utilization, custom); an implausible value is no value."""
    return replace(obs, value=plausible(value), backlog_s=None, queue_only=False)
