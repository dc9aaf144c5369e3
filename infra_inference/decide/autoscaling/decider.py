"""One autoscaling decision: (policy, observation, state, now) -> (decision, new state).

Stages, in order (each a small function below):
1. hold on missing, non-finite or stale data;
2. learn: the cold start from the replicas asked for and become ready, the
   idle gaps from quiet stretches (`memory.py`);
3. record the replicas the reading asks for (the windows start over after an
   idle gap); average them over the stable and panic windows; add the
   replicas that drain the gateway's backlog, and the work it will gain
   before replicas bought now are ready (its rise beyond the arrivals'
   chance), once, outside the windows;
4. panic: enter when the panic-window demand reaches `panic_threshold` x
   ready replicas, leave a stable window after it last did; while panicking,
   never go down; once two readings in a row stand, by their arrival
   counts, over the panic window's mean, the latest reading is that demand;
5. stabilize (HPA semantics): a rise must hold for `scale_up_window_s`, a
   fall for the down window (`scale_down_window_s` or 6 cold starts); never
   cancel a starting replica a recommendation since its ask wanted;
6. rate limits relative to ready replicas, then whole steps up;
7. bounds, where min 0 means "zero once idle for `keep_warm_s` with nothing
   queued or in flight", and until then at least what wakes usually ask for
   at once (`warm_replicas`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from infra_inference.decide.autoscaling.demand import replicas_wanted
from infra_inference.decide.autoscaling.memory import ColdStarts, Gaps, Wakes
from infra_inference.decide.autoscaling.window import Window
from infra_inference.specs.autoscale import ScalingSpec

# A reading older than this is not evidence about now. With the autoscaler's
# 1 s tick this is 10 missed scrapes: long enough to ride out a slow scrape,
# short enough that a dead gateway never drives a scale-down.
STALE_AFTER_S = 10.0

# 7.0000001 replicas is 7, not 8: float noise in value / target must not buy a replica.
_EPSILON = 1e-6

# Queued requests are work to finish, not concurrency to hold: ask for the
# replicas that finish it in this long. 1,200 requests queued during a 5 s cold
# start at 0.1 s each are 120 s of work; over 2 s that is 60 in flight, 10.7
# replicas at a target of 5.6, where counting the queue as concurrency would
# ask for 1,200 / 5.6 = 214. Shorter buys replicas that arrive (a cold start
# later) after the backlog is gone: in the issue-4 simulator at a 70 %
# target, 1 s gains 0.6 points of SLO for 3 % more replica-seconds (0.1 point
# at 30-60 %), 5 s loses 0.2 points to save 1.5 %.
BACKLOG_DRAIN_S = 2.0
# ... or over a quarter of the cold start when that is longer (`_drain_s`): at 30 s, 7.5 s.
# benchmarks/autoscale_replay.py, tuning seeds: against draining in 2 s at every cold start,
# the same share within 1 s on the synthetic trace at 30 s for half the replica-seconds, and
# 8 % fewer on the LLM chat trace.
DRAIN_COLD_STARTS = 0.25

# Capacity let go takes a cold start to get back (`_down_window_s`): hold the highest
# recommendation of the last 6 cold starts (30 s at a 5 s cold start, 6 minutes at 60 s).
# Tuning seeds, against 3: +4 to +8 points within 1 s on the bursty code trace and the
# synthetic one at 30-60 s, for 2-5 % more replica-seconds on the steady chat trace.
HOLD_COLD_STARTS = 6.0

# Warm capacity (`keep_warm_s`). A wake makes the first requests wait a whole cold start and buys
# for the queue it projects, then holds that for HOLD_COLD_STARTS: idle at least 12 cold starts
# before zero (twice the hold; a 30 s cold start: 6 minutes); and keep one replica through the idle
# gaps this service usually has (the 0.9 quantile of the last 12, if under 10 minutes).
# benchmarks/autoscale_replay.py, against 4: the code trace at 30 s 95.98 -> 97.74 % within 1 s at
# 1.47 -> 1.34x the oracle (seeds 1-3); synthetic +0.2 to +0.7 point for 2-3 % more; chat unchanged.
KEEP_WARM_COLD_STARTS = 12.0
KEEP_WARM_GAP_QUANTILE = 0.9
KEEP_WARM_GAP_CAP_S = 600.0
GAP_MIN_S = 10.0
# ... and keep warm, rather than one replica, what this service's wakes usually ask for at once: the
# lower quartile of the most each of the last 12 asked for in its first 2 cold starts (at least
# WAKE_SPAN_S). A wake waits a cold start for anything beyond the replicas kept, and an ON/OFF service
# comes back at its usual level: on the code trace 15-25 requests in the first seconds, 3-4 replicas'
# worth, into the one replica kept. benchmarks/autoscale_replay.py, tuning seeds, against one replica:
# the code trace at a 5 s cold start 97.8 -> 98.7 % within 1 s at 1.31 -> 1.45x the oracle, at 30 s
# 97.3 -> 98.9 % at 1.26 -> 1.23x (fewer wakes panicking); the median 99.0 % at 2.04x; chat and
# synthetic unchanged (chat never idles; synthetic has too few gaps an hour for a history).
WAKE_SPAN_S = 10.0
WAKE_QUANTILE = 0.25

# A step up in demand: two readings in a row (at a 1 s tick, two seconds) whose arrivals put them,
# less STEP_Z standard errors, over the panic window's mean. The mean of a 6 s window takes 6 s to
# reach a new level, and a wake or burst bought for it a step a tick (3 -> 6 -> 11 -> 16 -> 20 ->
# ... -> 32 replicas over 7 s at a 5x burst of the synthetic trace, seed 1, at 3121 s). 3 standard
# errors of a Poisson count are about 2 of the Gamma arrivals' (BurstGPT: shape 0.5, twice the
# variance): a chat service's 2-6 requests a second never pass, a burst of 400 does at once.
# benchmarks/autoscale_replay.py, tuning seeds: synthetic at 5 / 30 s +0.78 / +0.20 point within 1 s
# for 4 % / 1 % more replica-seconds; both LLM traces unchanged to the request. One reading instead
# of two: the code trace at 5 s 1.45 -> 1.98x the oracle (its clumps of arrivals last a second);
# 4 standard errors instead of 3: the same.
STEP_Z = 3.0

# Replicas at capacity: the queue rises and falls with the arrivals, and over a window with n of them it moves
# by about sqrt(2 n) requests by chance (BurstGPT's Gamma arrivals: twice a Poisson count's variance). Only the
# rise beyond QUEUE_NOISE_Z of those is projected over the cold start. On the chat trace (seed 101, a 60 s cold
# start, 359 s) 7 requests queued in 3 s on 3 ready replicas were projected to 522 s of work by the time
# replicas came, and bought 7, which started for 60 s and were let go as they became ready: the queue was gone.
# benchmarks/autoscale_replay.py, tuning seeds, against projecting the whole rise: chat 1.07 / 1.13 / 1.16 ->
# 1.05 / 1.09 / 1.12x KPA-style's replica-seconds at 5 / 30 / 60 s for at most 0.12 point fewer within 1 s;
# code at 5 s 1.45 -> 1.43x the oracle (at 60 s 0.19 point fewer); synthetic at 30 s 0.26 point fewer. 2 and 3
# errors: the same on chat, 0.6 and 0.7 point fewer on synthetic. With no replica ready nothing leaves the
# queue: its whole rise is demand.
QUEUE_NOISE_Z = 1.0


@dataclass(frozen=True)
class Observation:
    """What the collector saw for one deployment.

    Attributes:
        at: When it was sampled, on the same clock as `now`.
        value: The metric: a service-wide total (concurrency, throughput,
            custom) or a per-replica average (utilization %, p95 ms); None
            when it could not be read.
        outstanding: Requests queued or in flight at the gateway; None when unknown.
        current: Replicas asked for now (the Deployment's spec.replicas).
        ready: Replicas ready to serve.
        backlog_s: Replica-seconds of work queued at the gateway (queued
            requests x mean service time), for metric concurrency when `value`
            is the arrivals' concurrency (arrival rate x service time) rather
            than the queue itself; None otherwise.
        queued: Requests waiting at the gateway (the count behind `backlog_s`); None when unknown.
        queue_only: `value` is the count of requests outstanding because no
            service time is known yet (nothing answered since the gateway
            started): good for the first step from zero, not for more while
            the replicas it asked for are still starting.
        arrivals: Requests that arrived over the interval `value`'s rate was
            measured on (how much evidence the reading is); None when unknown.
    """

    at: float
    value: float | None
    outstanding: float | None
    current: int
    ready: int
    backlog_s: float | None = None
    queue_only: bool = False
    queued: float | None = None
    arrivals: float | None = None


@dataclass(frozen=True)
class Decision:
    """The replicas to ask for and why, in words fit for a log line."""

    desired: int
    reason: str
    panicking: bool = False
    stable_replicas: float | None = None
    panic_replicas: float | None = None


@dataclass(frozen=True)
class ScalerState:
    """Everything a decision remembers; starts empty, returned new by each decision."""

    demand: Window = Window()
    recommendations: Window = Window()
    with_backlog: Window = Window()
    queued: Window = Window()
    arrivals: Window = Window()
    panic_last_over: float | None = None
    panic_floor: int = 0
    last_active: float | None = None
    cold: ColdStarts = ColdStarts()
    gaps: Gaps = Gaps()
    wakes: Wakes = Wakes()
    stepped_at: float | None = None


def decide(policy: ScalingSpec, obs: Observation, state: ScalerState, now: float,
           stale_after_s: float = STALE_AFTER_S) -> tuple[Decision, ScalerState]:
    """The replicas `policy` wants for `obs` at `now`, and the state to pass to the next call.

    `policy.target` must be resolved (`ScalingSpec.resolved_target`).
    """
    target = _target(policy)
    hold = _bounded(policy, obs.current)
    obs = _finite(obs)
    if obs.value is None:
        return Decision(hold, f"hold at {hold}: no {policy.metric} reading"), state
    age = now - obs.at
    if age > stale_after_s:
        return Decision(hold, f"hold at {hold}: {policy.metric} reading is {age:.1f}s old "
                              f"(> {stale_after_s:g}s)"), state
    wanted = replicas_wanted(policy.metric, obs.value, target, obs.ready)
    if wanted is None:
        return Decision(hold, f"hold at {hold}: no ready replica reports {policy.metric}"), state
    if obs.queue_only and obs.current > obs.ready:
        # Nothing answered yet and replicas still starting: the count grows with every arrival
        # while they start, and replicas bought on it start slower still where they share CPU
        # (0 -> 3 -> 6 -> 11 -> ... -> 200 on the local stack, for 13 req/s that needed 1).
        wanted = min(wanted, obs.current)

    active = obs.value > 0 or (obs.outstanding or 0) > 0
    gaps = _gap_ended(state, now) if active else state.gaps
    # Work back after an idle gap: the gap's zeros say nothing about the demand now. Averaged in,
    # 14 in flight after 50 s idle read as 14 x 10 / 60 = 2.3 over a 60 s window, one replica's
    # worth at a target of 5.6, and a wake into a ramp waited a second cold start for the rest.
    woke = gaps != state.gaps
    demand = Window() if woke else state.demand
    state = replace(state, cold=state.cold.seen(now, obs.current, obs.ready), gaps=gaps,
                    last_active=now if active or state.last_active is None else state.last_active,
                    demand=demand.add(now, wanted, max(policy.stable_window_s, policy.panic_window_s)))
    stable = state.demand.mean(now, policy.stable_window_s) or 0.0
    panic, state = _panic_demand(policy, obs, state, now, wanted)

    panicking, state = _panic(policy, obs, state, now, panic)
    demand = panic if panicking else stable
    cold_s = state.cold.estimate_s or 0.0
    if obs.queued is not None:
        state = replace(state, queued=state.queued.add(now, obs.queued, policy.panic_window_s))
    if obs.arrivals is not None:
        state = replace(state, arrivals=state.arrivals.add(now, obs.arrivals, policy.panic_window_s))
    growth = _queue_growth(policy, obs, state, now)
    ahead_s = _until_ready_s(obs, state, now, cold_s)
    backlog = _backlog(policy, obs, target, demand, cold_s, growth * ahead_s)
    base, recommended = _ceil(stable), _ceil(stable + backlog)
    why = f"stable {stable:.2f} replicas over {policy.stable_window_s:g}s"
    if panicking:
        # Not obs.current: that holds replicas bought for a queue, which the down window would then keep for
        # 6 cold starts (tuning seeds: 1.18 -> 1.13x KPA-style's replica-seconds on chat at 30 s, synthetic at
        # 60 s 0.19 -> 0.12x, the same share within 1 s). `recommended` still never goes below it.
        base = max(state.panic_floor, _ceil(panic))
        recommended = max(state.panic_floor, obs.current, _ceil(panic + backlog))
        why = f"panic: {panic:.2f} replicas over {policy.panic_window_s:g}s >= {policy.panic_threshold:g} x " \
              f"{max(obs.ready, 1)} ready"
    if backlog:
        why += f"; + {backlog:.2f} to drain {obs.backlog_s:.1f}s of queued work"
        if growth * ahead_s:
            why += f" (+ {growth * ahead_s:.1f}s more by the time replicas are ready)"
        why += f" in {_drain_s(cold_s):g}s"
    keep_s = max(policy.scale_up_window_s, _down_window_s(policy, state), 0.001)
    cold_keep_s = 2 * (state.cold.estimate_s or 0.0) + 1
    state = replace(state, recommendations=state.recommendations.add(now, base, keep_s),
                    with_backlog=state.with_backlog.add(now, recommended, cold_keep_s))

    # What this wake asks for in its first cold starts (before the floor: a kept level must not feed itself).
    wakes = state.wakes.started(now) if woke else state.wakes
    state = replace(state, wakes=wakes.saw(now, recommended, max(WAKE_SPAN_S, 2 * cold_s)))
    desired = _stabilized(policy, obs.current, state, now, base, recommended)
    if desired != recommended:
        why += f"; stabilized {recommended} -> {desired}"
    kept = _keep_starting(obs, state, now, desired)
    if kept != desired:
        why += f"; keep {kept - desired} starting (asked for again since)"
        desired = kept
    limited = _rate_limited(policy, obs, desired)
    if limited != desired:
        why += f"; rate-limited {desired} -> {limited}"
    stepped = _whole_steps(policy, obs.current, limited)
    if stepped != limited:
        why += f"; step {policy.step}: {limited} -> {stepped}"

    final, floor_why = _floor(policy, obs, state, now, stepped, panicking, active)
    if floor_why:
        why += f"; {floor_why}"
    state = replace(state, cold=state.cold.asked(now, obs.current, final))
    return Decision(final, f"{obs.current} -> {final}: {why}", panicking, stable, panic), state


def _panic_demand(policy: ScalingSpec, obs: Observation, state: ScalerState, now: float,
                  wanted: float) -> tuple[float, ScalerState]:
    """The panic window's mean, or this reading once the level has stepped up (`STEP_Z`).

    A reading over n arrivals is off by about 1 / sqrt(n) of itself
    (Poisson): 400 arrivals a second reading 10 replicas' worth are
    10 x (1 - 3 / 20) = 8.5 at least, so over a window mean of 2.8 that is a
    new level, while 4 arrivals reading 14 are at least 14 x (1 - 3 / 2) < 0,
    noise. Two such readings in a row (within the panic window) and the mean
    of a window that still holds the old level is stale: the latest reading
    is the demand.
    """
    panic = state.demand.mean(now, policy.panic_window_s) or 0.0
    lower = wanted * (1.0 - STEP_Z / math.sqrt(obs.arrivals)) if obs.arrivals else 0.0
    if lower <= panic:
        return panic, state if state.stepped_at is None else replace(state, stepped_at=None)
    before = state.stepped_at
    state = replace(state, stepped_at=now)
    if before is not None and now - before < policy.panic_window_s:
        return max(panic, wanted), state
    return panic, state


def _finite(obs: Observation) -> Observation:
    """NaN or infinite numbers are no reading: a broken exporter must hold the count, not raise or jump to max."""
    def ok(x: float | None) -> float | None:
        return x if x is not None and math.isfinite(x) and x >= 0 else None

    numbers = (obs.value, obs.outstanding, obs.backlog_s, obs.queued, obs.arrivals)
    if tuple(ok(x) for x in numbers) == numbers:
        return obs
    return replace(obs, value=ok(obs.value), outstanding=ok(obs.outstanding), backlog_s=ok(obs.backlog_s),
                   queued=ok(obs.queued), arrivals=ok(obs.arrivals))


def _target(policy: ScalingSpec) -> float:
    if policy.target is None:
        raise ValueError("decide() needs a resolved target: pass ScalingSpec.resolved_target(max_concurrency)")
    return policy.target


def _drain_s(cold_start_s: float) -> float:
    """Seconds to drain queued work in: BACKLOG_DRAIN_S, or the cold start when longer.

    A replica bought for the queue helps only once it is ready: with a 30 s
    cold start, the replicas that would drain 60 s of queued work in 2 s
    (30 of them, at a target of 1) arrive after the ready ones have drained
    most of it, and are paid for after. Over the cold start it is 2.
    """
    return max(BACKLOG_DRAIN_S, DRAIN_COLD_STARTS * cold_start_s)


def _queue_growth(policy: ScalingSpec, obs: Observation, state: ScalerState, now: float) -> float:
    """Seconds of work the queue gains a second: its rise over the panic window beyond chance x the mean service time.

    Queued 20 requests of 2 s at 100 s and 50 at 103 s, with 50 arrivals
    between: chance is sqrt(2 x 50) = 10, so (30 - 10) / 3 = 6.7 a second,
    13 s of work a second (`QUEUE_NOISE_Z`). With no replica ready nothing
    leaves the queue: its whole rise counts, and it gains at least all the
    arriving work (`value`, seconds of it a second) from the first look,
    before the window has seen it rise.
    """
    if not obs.backlog_s or not obs.queued or obs.value is None:
        return 0.0
    span = policy.panic_window_s
    if obs.ready == 0:
        return max(state.queued.rise_per_s(now, span) * obs.backlog_s / obs.queued, obs.value)
    chance = QUEUE_NOISE_Z * math.sqrt(2 * state.arrivals.total_after_first(now, span))
    return state.queued.rise_per_s(now, span, chance) * obs.backlog_s / obs.queued


def _until_ready_s(obs: Observation, state: ScalerState, now: float, cold_start_s: float) -> float:
    """Seconds until capacity asked for now takes work: the rest of the oldest start, or a whole cold start.

    Asked for at 100 s with a 30 s cold start, at 110 s: 20 s. Once the
    measured cold start has passed without them (replicas slowed by each
    other's start), 0: the queue is then read as it is, never projected.
    """
    oldest = state.cold.oldest_ask
    if obs.current > obs.ready and oldest is not None:
        return max(0.0, oldest + cold_start_s - now)
    return cold_start_s


def _backlog(policy: ScalingSpec, obs: Observation, target: float, demand: float, cold_start_s: float,
             growth_s: float) -> float:
    """Replicas that finish the queued work in `_drain_s`; counted in this decision only, never averaged.

    Averaged into the windows, a backlog that lasts a 5 s cold start would
    keep buying replicas for a stable window after it drained. And while
    replicas are starting, the queue grows because they are not ready yet:
    they were asked for to take it, so it may hold them but not add to them
    (6 asked for, 2 ready, arrivals wanting 2: at most 4 replicas' worth, the
    ones starting), and only a backlog left once they are ready asks for
    more. Otherwise, where starting replicas slow each other down (2 CPU
    cores, many processes), every tick of a longer cold start buys more.

    What it can add is `growth_s`: the work the queue will have gained by
    the time replicas bought now are ready (its rise over the panic window
    x `_until_ready_s`), bought in the same step rather than a cold start
    later. A wake at a 30 s cold start whose queue rises 8 s of work a
    second holds 76 s after 6 s and will hold 76 + 8 x 24 = 268 s when the
    replicas come: over 7.5 s at a target of 5.6, 6.4 replicas now, where
    the queue alone bought 1.8 and the rest waited a second cold start.
    """
    if policy.metric != "concurrency" or not obs.backlog_s:
        return 0.0
    drain_s = _drain_s(cold_start_s)
    replicas = obs.backlog_s / drain_s / target
    if obs.current > obs.ready:
        replicas = min(replicas, max(0.0, obs.current - demand))
    return replicas + growth_s / drain_s / target


def _ceil(replicas: float) -> int:
    return max(0, math.ceil(replicas - _EPSILON))


def _panic(policy: ScalingSpec, obs: Observation, state: ScalerState, now: float,
           panic: float) -> tuple[bool, ScalerState]:
    """KPA's panic mode: stays on until a whole stable window passes without the threshold being reached.

    With 4 ready replicas and threshold 2, panic starts once the panic window
    averages 8 replicas' worth of demand; it holds the highest panic
    recommendation since (a burst to 12 then a lull to 9 keeps 12), so a
    burst's replicas are not let go before the stable window has seen it.
    """
    over = panic / max(obs.ready, 1) >= policy.panic_threshold
    if over:
        return True, replace(state, panic_last_over=now, panic_floor=max(state.panic_floor, _ceil(panic)))
    if state.panic_last_over is not None and now - state.panic_last_over < policy.stable_window_s:
        return True, state
    return False, replace(state, panic_last_over=None, panic_floor=0)


def _down_window_s(policy: ScalingSpec, state: ScalerState) -> float:
    """`scale_down_window_s` (native default 0), or HOLD_COLD_STARTS cold starts when longer.

    A replica let go takes a cold start to get back, and the requests that
    arrive meanwhile wait: with a 60 s cold start, capacity a recommendation
    wanted within the last 3 minutes is kept (at 5 s, the last 15 s).
    """
    return max(policy.down_window_s, HOLD_COLD_STARTS * (state.cold.estimate_s or 0.0))


def _stabilized(policy: ScalingSpec, current: int, state: ScalerState, now: float, base: int,
                recommended: int) -> int:
    """HPA stabilization: up to the lowest recommendation of the up window, down to the highest of the down window.

    Recommendations 3, 5, 4 within a 300 s down window from 6 replicas go to
    5: the fall is the smallest any recent recommendation agrees with. The
    windows hold the arrivals' recommendations (`base`); the replicas for a
    backlog (`recommended` - `base`) count in this decision only, so a
    queue drained in seconds is not held for minutes.
    """
    up = min(state.recommendations.values(now, policy.scale_up_window_s) or [base]) + recommended - base
    down = max(max(state.recommendations.values(now, _down_window_s(policy, state)) or [base]), recommended)
    if up > current:
        return up
    if down < current:
        return down
    return current


def _keep_starting(obs: Observation, state: ScalerState, now: float, desired: int) -> int:
    """Never cancel a starting replica that a recommendation since its ask wanted: it is paid for and half started.

    Asked for at 100 s (4 -> 7), recommendations 7, 5, 6 since, 4 ready, 3
    starting, now 4: keep 6. Only once every recommendation since the
    oldest ask is below does the fall cancel it (a burst that ended).
    """
    oldest = state.cold.oldest_ask
    if desired >= obs.current or obs.current <= obs.ready or oldest is None:
        return desired
    since = state.with_backlog.values(now, now - oldest + 1e-9)
    return max(desired, min(obs.current, int(max(since, default=desired))))


def _rate_limited(policy: ScalingSpec, obs: Observation, desired: int) -> int:
    """At most x `max_scale_up_rate` and / `max_scale_down_rate` of ready replicas per decision.

    10 ready with rates 1000 and 2: anything from floor(10 / 2) = 5 to 10000.
    No ready replica counts as one for scaling up, so zero can always start.
    """
    up_limit = math.ceil(policy.max_scale_up_rate * max(obs.ready, 1))
    down_limit = math.floor(obs.ready / policy.max_scale_down_rate)
    if desired > obs.current:
        return max(obs.current, min(desired, up_limit))
    return min(obs.current, max(desired, down_limit))


def _whole_steps(policy: ScalingSpec, current: int, desired: int) -> int:
    """Scale up by whole steps: from 2 with step 4, wanting 3 gets 6 (a StandbyPool holds 4 at a time)."""
    if desired <= current:
        return desired
    return current + math.ceil((desired - current) / policy.step) * policy.step


def _gap_ended(state: ScalerState, now: float) -> Gaps:
    """Work again after an idle stretch: remember how long it lasted."""
    if state.last_active is None or now - state.last_active < GAP_MIN_S:
        return state.gaps
    return state.gaps.ended(now - state.last_active)


def keep_warm_s(policy: ScalingSpec, state: ScalerState) -> tuple[float, str]:
    """Idle seconds before going to zero: `scale_to_zero_after_s`, or longer when a wake costs more than waiting.

    A wake makes the first requests wait a whole cold start, so the idle
    grace is at least KEEP_WARM_COLD_STARTS cold starts (a 60 s cold start:
    12 minutes). And a service whose idle gaps mostly end sooner than that
    keeps one replica through them: the last gaps' KEEP_WARM_GAP_QUANTILE
    quantile, as long as it is under KEEP_WARM_GAP_CAP_S. Gaps of 30-240 s
    keep one warm for 240 s; a nightly gap of hours goes to zero after the grace.
    """
    grace, why = policy.scale_to_zero_after_s, f"scale_to_zero_after_s {policy.scale_to_zero_after_s:g}"
    cold = state.cold.estimate_s
    if cold is not None and KEEP_WARM_COLD_STARTS * cold > grace:
        grace, why = KEEP_WARM_COLD_STARTS * cold, f"{KEEP_WARM_COLD_STARTS:g} cold starts of {cold:.0f}s"
    usual = state.gaps.quantile(KEEP_WARM_GAP_QUANTILE)
    if usual is not None and grace < usual <= KEEP_WARM_GAP_CAP_S:
        grace, why = usual, f"the usual idle gap ({usual:.0f}s)"
    return grace, why


def warm_replicas(state: ScalerState) -> int:
    """Replicas kept until the idle grace ends: 1, or what this service's wakes usually ask for at once.

    The last wakes asked for 4, 3, 5 and 4 replicas in their first cold
    starts: the lower quartile, 3, stays warm (fewer than 3 wakes: 1).
    """
    return max(1, state.wakes.quantile(WAKE_QUANTILE) or 1)


def _floor(policy: ScalingSpec, obs: Observation, state: ScalerState, now: float, desired: int,
           panicking: bool, active: bool) -> tuple[int, str]:
    """Bounds [min, max]; with min 0, zero only after the idle grace period and never with work outstanding."""
    if policy.min_replicas > 0 or policy.scale_to_zero_after_s <= 0:
        bounded = _bounded(policy, desired)
        return bounded, "" if bounded == desired else f"bounds [{policy.min_replicas}, {policy.max_replicas}]"
    idle_s = now - (state.last_active if state.last_active is not None else now)
    grace, grace_why = keep_warm_s(policy, state)
    nothing_outstanding = obs.outstanding == 0
    if nothing_outstanding and not active and not panicking:
        if obs.current == 0:
            return 0, "" if desired == 0 else "idle at zero"
        if idle_s >= grace:
            return 0, f"idle {idle_s:.0f}s >= {grace:.0f}s ({grace_why})"
    warm = warm_replicas(state)
    bounded = min(max(desired, warm), policy.max_replicas)
    if bounded == desired:
        return bounded, ""
    if desired < warm:
        kept = "1" if warm == 1 else f"{warm}, what wakes here usually ask for at once,"
        return bounded, f"keep {kept} until idle {grace:.0f}s ({grace_why}; idle {idle_s:.0f}s" + \
            ("" if nothing_outstanding else f", {obs.outstanding} outstanding") + ")"
    return bounded, f"bounds [0, {policy.max_replicas}]"


def _bounded(policy: ScalingSpec, replicas: int) -> int:
    return min(max(replicas, policy.min_replicas), policy.max_replicas)
