"""Autoscaling policies replayed on one seeded trace: % of requests within the latency SLO, and replica-seconds.

A discrete-event simulator replays hours of trace in seconds. Ours and the
KPA-style baseline run the real `decide/` code; HPA-style, static peak and the
oracle are written out below. Every policy sees the same arrivals, the same
replica cold start and the same service time. With --real, a few minutes of the
same trace (at an eighth of its rate) go to the real local stack instead
(`infra-inference dev`'s gateway, autoscaler and echo replicas on 127.0.0.1),
and the simulator replays the same slice with the cold start measured here.

Run: .venv/bin/python benchmarks/autoscale_replay.py [--hours H] [--seed S] [--plots DIR]
         [--cold-start-s S] [--real]
The plots need the `bench` extra (matplotlib): `make bench` installs it.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import importlib.util
import json
import math
import random
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from infra_inference.decide.autoscaling import Observation, ScalerState, decide, littles_law  # noqa: E402
from infra_inference.runtime.dev import DevStack  # noqa: E402
from infra_inference.runtime.metrics import prom  # noqa: E402
from infra_inference.runtime.transport.ports import free_port  # noqa: E402
from infra_inference.specs.autoscale import ScalingSpec  # noqa: E402
from infra_inference.wire.policy import AutoscalerConfig  # noqa: E402

# The latency SLO, queueing at the gateway included.
SLO_S = 1.0
TIMEOUT_S = 30.0
STEP_S = 0.05


@dataclass(frozen=True)
class Service:
    """A replica: slots (its max_concurrency), seconds per request, seconds from asked-for to ready."""

    slots: int
    service_s: float
    cold_start_s: float


# 8 slots, 100 ms per request (a GPU forward pass), a 5 s cold start (standby node warm,
# image cached, model streamed from the node cache).
SIM = Service(8, 0.1, 5.0)


# --- the trace ----------------------------------------------------------------------------------

def trace(hours: float, seed: int) -> list[float]:
    """Arrival rate (req/s) per second: diurnal base, sudden bursts, and idle gaps long enough for zero.

    The "day" is compressed to 1 h so a 2 h trace has two. Base 20..120 req/s;
    ~6 bursts an hour of 20-90 s at 3-5x; ~2 idle gaps an hour of 3-8 minutes.
    """
    rng = random.Random(seed)
    n = int(hours * 3600)
    rate = [20 + 100 * (0.5 - 0.5 * math.cos(2 * math.pi * t / 3600)) for t in range(n)]
    for _ in range(int(6 * hours)):
        start, length, factor = rng.randrange(n), rng.randint(20, 90), rng.uniform(3, 5)
        for t in range(start, min(n, start + length)):
            rate[t] *= factor
    for _ in range(int(2 * hours)):
        start, length = rng.randrange(n), rng.randint(180, 480)
        for t in range(start, min(n, start + length)):
            rate[t] = 0.0
    return rate


def arrivals(rate: list[float], seed: int) -> list[float]:
    """Poisson arrival times for the per-second rates."""
    rng = random.Random(seed + 1)
    out: list[float] = []
    for second, r in enumerate(rate):
        t = float(second)
        while r > 0:
            t += rng.expovariate(r)
            if t >= second + 1:
                break
            out.append(t)
    return out


# --- policies: f(now, observed) -> desired replicas, called every `period_s` ----------------------

@dataclass
class Seen:
    """What a policy may look at: the gateway's counters and gauges, and the replicas' busy share (the CPU proxy).

    `service_s` is the mean time a request spent in a replica, as the gateway
    measures it; None until the first request was served.
    """

    outstanding: int
    busy_share: float
    current: int
    ready: int
    queued: int
    arrived: int
    seconds: float
    service_s: float | None


Policy = Callable[[float, Seen], int]


def decider(spec: ScalingSpec, by_littles_law: bool) -> Policy:
    """`decide()` on what the gateway reports, read as our collector reads it (runtime/autoscaler/collect.py).

    `by_littles_law`: concurrency is arrival rate x service time with the queue
    as work (ours); otherwise the requests outstanding, queue included, as the
    KPA measures concurrency.
    """
    state = ScalerState()

    def policy(now: float, seen: Seen) -> int:
        nonlocal state
        value, backlog_s = float(seen.outstanding), None
        if by_littles_law and seen.service_s is not None:
            value, backlog_s = littles_law(seen.arrived, seen.seconds, seen.service_s, seen.queued)
        obs = Observation(at=now, value=value, outstanding=float(seen.outstanding), current=seen.current,
                          ready=seen.ready, backlog_s=backlog_s,
                          queue_only=by_littles_law and seen.service_s is None)
        d, state = decide(spec, obs, state, now)
        return d.desired

    return policy


# Our policy at four targets (share of a replica's slots): the product default; 60 %, the most
# headroom within 1.25x of the oracle with a 5 s cold start; and, with that cold start, the
# headroom at which it beats the KPA-style baseline's SLO and the one at which it reaches 99 %.
OUR_SHARES = (0.7, 0.6, 0.35, 0.3)
OUR_TICK_S = AutoscalerConfig.model_fields["tick_s"].default


def our_spec(share: float, slots: int) -> ScalingSpec:
    # Concurrency by Little's law at `share` of the slots, a 2 s panic window (a burst shows in
    # 2 ticks), a 6 s stable window and no scale-down stabilization: the signal does not count
    # the queue that builds during a cold start as demand, so it can follow the arrivals closely
    # both ways. share 0.7 is the product default (CONCURRENCY_TARGET_SHARE). A 1 s panic window
    # gains 1.0 point of SLO here with a 5 s cold start; its real-stack runs so far all hit the
    # wake-from-zero run-up since fixed (benchmarks/RESULTS.md, runs 3-8), so it is unproven.
    return ScalingSpec(metric="concurrency", target=share * slots, min_replicas=0, max_replicas=200,
                       scale_to_zero_after_s=30, stable_window_s=6, panic_window_s=2, panic_threshold=2.0,
                       scale_down_window_s=0)


def ours(share: float, slots: int = SIM.slots) -> tuple[Policy, float]:
    """Our decider on our signal, every OUR_TICK_S (the autoscaler's default tick, 1 s)."""
    return decider(our_spec(share, slots), by_littles_law=True), OUR_TICK_S


def spec_defaults() -> tuple[Policy, float]:
    """An AutoscalePolicy that sets only metric, bounds and scale to zero: the spec's default windows
    (60 s stable, 6 s panic, 300 s scale-down stabilization) and target (70 %), at the default tick."""
    spec = ScalingSpec(metric="concurrency", min_replicas=0, max_replicas=200, scale_to_zero_after_s=30)
    return decider(spec.model_copy(update={"target": spec.resolved_target(SIM.slots)}), by_littles_law=True), \
        OUR_TICK_S


def kpa_style() -> tuple[Policy, float]:
    # Knative defaults: 60 s stable / 6 s panic windows, panic at 200 %, 70 % target
    # utilization of the container concurrency, 30 s scale-to-zero grace, 2 s tick.
    return decider(ScalingSpec(metric="concurrency", target=0.7 * SIM.slots, min_replicas=0, max_replicas=200,
                               scale_to_zero_after_s=30, stable_window_s=60, panic_window_s=6,
                               panic_threshold=2.0, scale_down_window_s=0), by_littles_law=False), 2.0


def hpa_style() -> tuple[Policy, float]:
    """Kubernetes HPA on CPU: desired = ceil(ready x util / target), 10 % tolerance, 15 s sync,
    0 s up / 300 s down stabilization, default rate limits (max(4 pods, +100 %) up per period).
    CPU utilization is proxied by the replicas' busy share, averaged over the last sync period as
    metrics-server reports it; the HPA cannot scale to zero (min 1)."""
    recs: deque[tuple[float, int]] = deque()
    samples: deque[tuple[float, float]] = deque()

    def policy(now: float, seen: Seen) -> int:
        samples.append((now, seen.busy_share))
        while samples and now - samples[0][0] > 15:
            samples.popleft()
        util = sum(s for _, s in samples) / len(samples)
        ready = max(seen.ready, 1)
        ratio = util / 0.7
        rec = seen.current if abs(ratio - 1) <= 0.1 else math.ceil(ready * ratio)
        rec = max(1, min(200, rec))
        recs.append((now, rec))
        while recs and now - recs[0][0] > 300:
            recs.popleft()
        if rec < seen.current:
            rec = min(seen.current, max(r for _, r in recs))
        return min(rec, max(seen.current + 4, 2 * seen.current))

    return policy, 15.0


# --- the simulator ------------------------------------------------------------------------------

@dataclass
class Run:
    name: str
    latencies: list[float] = field(default_factory=list)
    failed: int = 0
    replica_seconds: float = 0.0
    timeline: list[tuple[float, int, float, float]] = field(default_factory=list)  # t, replicas, load, p95

    @property
    def requests(self) -> int:
        return len(self.latencies) + self.failed

    @property
    def within_slo(self) -> float:
        return sum(1 for x in self.latencies if x <= SLO_S) / max(1, self.requests)


def simulate(name: str, times: list[float], duration_s: float, policy: Policy | None, period_s: float,
             schedule: Callable[[float], int] | None = None, service: Service = SIM) -> Run:
    """Gateway FIFO -> replicas of `service.slots` slots; a replica asked for is ready a cold start later."""
    run = Run(name)
    queue: deque[float] = deque()
    inflight: list[float] = []  # completion times
    starting: deque[float] = deque()  # ready-at times
    ready = current = 0
    i, next_tick, t = 0, 0.0, 0.0
    window: list[float] = []
    busy_acc = 0.0
    arrived_at_tick = 0
    while t < duration_s:
        t += STEP_S
        while i < len(times) and times[i] <= t:
            queue.append(times[i])
            i += 1
        while starting and starting[0] <= t:
            starting.popleft()
            ready += 1
        while queue and t - queue[0] > TIMEOUT_S:
            queue.popleft()
            run.failed += 1
        while queue:
            # Start times are exact, not rounded to the step: a slot freed at 3.37 s takes the
            # request waiting since 3.31 s at 3.37 s (rounding would stretch 100 ms to 150 ms).
            if len(inflight) < ready * service.slots:
                start = max(queue[0], t - STEP_S)
            elif inflight and inflight[0] <= t and len(inflight) <= ready * service.slots:
                start = max(queue[0], heapq.heappop(inflight))
            else:
                break
            latency = start - queue.popleft() + service.service_s
            run.latencies.append(latency)
            window.append(latency)
            heapq.heappush(inflight, start + service.service_s)
        while inflight and inflight[0] <= t:
            heapq.heappop(inflight)
        busy_acc += min(1.0, len(inflight) / (ready * service.slots)) if ready else 0.0
        run.replica_seconds += current * STEP_S
        if t >= next_tick:
            steps = max(1, round(period_s / STEP_S))
            served = len(run.latencies) > len(inflight)  # every request takes service_s in a replica
            seen = Seen(len(queue) + len(inflight), busy_acc / steps, current, ready, len(queue),
                        i - arrived_at_tick, period_s, service.service_s if served else None)
            arrived_at_tick = i
            busy_acc = 0.0
            desired = schedule(t) if schedule else policy(t, seen)  # type: ignore[misc]
            if desired > current:
                starting.extend([t + service.cold_start_s] * (desired - current))
            elif desired < current:
                drop = current - desired
                while drop and starting:  # cancel starting replicas first
                    starting.pop()
                    drop -= 1
                ready -= drop
            current = desired
            next_tick += period_s
        if t % 10 < STEP_S:
            p95 = sorted(window)[int(0.95 * (len(window) - 1))] if window else 0.0
            run.timeline.append((t, current, len(queue) + len(inflight), p95))
            window = []
    run.failed += len(queue)
    return run


def oracle_schedule(times: list[float], duration_s: float, share: float = 0.85, lead_s: int | None = None,
                    service: Service = SIM) -> Callable[[float], int]:
    """The replicas each second's arrivals need at `share` of the slots, asked for `lead_s` early.

    The oracle knows the future: it asks a cold start (and a second) early, at 85 %.
    With `lead_s` 0 it knows only the present, though better than any real policy
    (each second's arrivals as the second begins): the bound on what reacting can
    do at a given headroom, since whatever it asks for still takes a cold start.
    """
    per_s = [0] * (int(duration_s) + 2)
    for a in times:
        per_s[int(a)] += 1
    need = [math.ceil(n * service.service_s / (service.slots * share)) if n else 0 for n in per_s]
    lead_s = int(service.cold_start_s) + 1 if lead_s is None else lead_s
    ahead = [max(need[s:s + lead_s + 1]) for s in range(len(need))]
    return lambda t: ahead[min(int(t), len(ahead) - 1)]


def static_peak(rate: list[float]) -> Callable[[float], int]:
    replicas = math.ceil(max(rate) * SIM.service_s / (SIM.slots * 0.7))
    return lambda t: replicas


def plot(run: Run, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [x[0] / 60 for x in run.timeline]
    fig, axes = plt.subplots(3, 1, figsize=(10, 6), sharex=True)
    for ax, series, label in zip(axes, ([x[2] for x in run.timeline], [x[1] for x in run.timeline],
                                        [x[3] * 1000 for x in run.timeline]),
                                 ("in flight + queued", "replicas", "p95 ms (10 s)"), strict=True):
        ax.plot(t, series, linewidth=0.8)
        ax.set_ylabel(label)
    axes[2].axhline(SLO_S * 1000, color="red", linewidth=0.6)
    axes[2].set_yscale("log")
    axes[2].set_xlabel("minutes")
    fig.suptitle(f"{run.name}: {run.within_slo:.2%} within {SLO_S:g} s, {run.replica_seconds:.0f} replica-s")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def sim(hours: float, seed: int, plots: Path | None, service: Service = SIM) -> None:
    rate = trace(hours, seed)
    times = arrivals(rate, seed)
    duration = len(rate)
    print(f"trace: {hours:g} h, seed {seed}, {len(times)} requests, peak {max(rate):.0f} req/s; "
          f"{service.slots} slots x {service.service_s * 1000:.0f} ms per replica, "
          f"cold start {service.cold_start_s:g} s, SLO {SLO_S:g} s")
    started = time.perf_counter()
    runs = [simulate("oracle", times, duration, None, 1.0, oracle_schedule(times, duration, service=service),
                     service=service)]
    policies = [*((f"ours@{share:.0%}", lambda share=share: ours(share)) for share in OUR_SHARES),
                ("defaults", spec_defaults), ("kpa-style", kpa_style), ("hpa-style", hpa_style)]
    for name, make in policies:
        policy, period = make()
        runs.append(simulate(name, times, duration, policy, period, service=service))
    runs.append(simulate("static-peak", times, duration, None, 1.0, static_peak(rate), service=service))
    for share in (OUR_SHARES[0], OUR_SHARES[-1]):
        runs.append(simulate(f"no-lead@{share:.0%}", times, duration, None, 1.0,
                             oracle_schedule(times, duration, share, lead_s=0, service=service), service=service))
    table(runs)
    print(f"simulated {len(runs)} x {hours:g} h in {time.perf_counter() - started:.1f} s")
    if plots is not None and importlib.util.find_spec("matplotlib") is None:
        print("plots skipped: matplotlib is not installed (`make bench` installs the bench extra)")
    elif plots is not None:
        plots.mkdir(parents=True, exist_ok=True)
        for r in runs:
            plot(r, plots / f"autoscale_{r.name}.png")
        print(f"plots: {plots}/autoscale_<policy>.png")


def table(runs: list[Run]) -> None:
    """Each run's figures; the first run is the oracle the others' cost is compared with."""
    oracle = runs[0].replica_seconds
    print(f"{'policy':<14} {'requests':>9} {'within SLO':>10} {'failed':>7} {'replica-s':>10} {'x oracle':>9}")
    for r in runs:
        print(f"{r.name:<14} {r.requests:>9} {r.within_slo:>10.2%} {r.failed:>7} {r.replica_seconds:>10.0f} "
              f"{r.replica_seconds / oracle:>9.2f}")


# --- the same policy against the real local stack -----------------------------------------------

# The slice: the last 10 s of an idle gap (the service is at zero) through the wake-up, the
# diurnal base, and the first 39 s of a 4.15x burst at 5166 s.
REAL_FROM_S = 4945
REAL_SECONDS = 260
# An eighth of the trace's rate (13 req/s base, 61 in the burst) into replicas of 2 slots: at
# most ~5 replica processes, which 2 cores can start and serve without the replicas themselves
# (Python processes starting at once) stretching the cold start several-fold. The echo model
# sleeps 100 ms per request, standing in for a GPU forward pass, so a replica costs little CPU.
REAL_SCALE = 0.125
REAL_SLOTS = 2
ECHO_DELAY_MS = 100.0


def cold_start_s(serve_args: list[str]) -> float:
    """A bare `infra-inference serve` from exec to ready on this machine: the simulator's cold start for the slice."""
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "infra_inference", "serve", "--host", "127.0.0.1",
                             "--port", str(port), *serve_args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - started < 60:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("a replica did not become ready within 60 s")
    finally:
        proc.terminate()
        proc.wait()


async def drive(stack: DevStack, times: list[float], run: Run, seconds: float) -> None:
    """Open loop: each request at its arrival time, latency from that time; replicas asked for, sampled."""
    body = json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]})
    url = f"{stack.url}/v2/models/{stack.model}/infer"
    start = time.monotonic()

    async def one(session: aiohttp.ClientSession, at: float) -> None:
        await asyncio.sleep(max(0.0, start + at - time.monotonic()))
        try:
            async with session.post(url, data=body, headers={"content-type": "application/json"},
                                    timeout=aiohttp.ClientTimeout(total=TIMEOUT_S + 5)) as r:
                await r.read()
                ok = r.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            ok = False
        if ok:
            run.latencies.append(time.monotonic() - start - at)
        else:
            run.failed += 1

    async def sample() -> None:
        # The simulator's cost is the replicas asked for (current), integrated; so is this one.
        period = 0.25
        for i in range(int(seconds / period)):
            text = await asyncio.to_thread(stack.autoscaler_metrics)
            run.replica_seconds += prom.total(prom.parse(text), "infra_inference_desired_replicas") * period
            await asyncio.sleep(max(0.0, start + (i + 1) * period - time.monotonic()))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(sample(), *(one(session, at) for at in times))


def real(hours: float, seed: int) -> None:
    rate = [r * REAL_SCALE for r in trace(hours, seed)[REAL_FROM_S:REAL_FROM_S + REAL_SECONDS]]
    times = arrivals(rate, seed)
    slots = REAL_SLOTS
    serve_args = ["--model", "echo", "--echo-delay-ms", f"{ECHO_DELAY_MS:g}"]
    cold = statistics.median(cold_start_s([*serve_args, "--max-concurrency", str(slots)]) for _ in range(3))
    service = Service(slots, ECHO_DELAY_MS / 1000, cold)
    print(f"real stack: trace seed {seed}, seconds {REAL_FROM_S}..{REAL_FROM_S + REAL_SECONDS} at "
          f"{REAL_SCALE:g}x rate: {len(times)} requests, peak {max(rate):.0f} req/s; {slots} slots x "
          f"{ECHO_DELAY_MS:g} ms echo per replica; measured cold start {cold:.2f} s; SLO {SLO_S:g} s")
    live = Run(f"real ours@{OUR_SHARES[0]:.0%}")
    policy = our_spec(OUR_SHARES[0], slots)
    with DevStack(policy, serve_args, max_concurrency=slots, timeout_s=TIMEOUT_S, max_queue=100_000,
                  tick_s=OUR_TICK_S) as stack:
        asyncio.run(drive(stack, times, live, REAL_SECONDS))
    simulated, period = ours(OUR_SHARES[0], slots)
    table([simulate("oracle", times, REAL_SECONDS, None, 1.0, oracle_schedule(times, REAL_SECONDS, service=service),
                    service),
           simulate(f"sim ours@{OUR_SHARES[0]:.0%}", times, REAL_SECONDS, simulated, period, service=service),
           live])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--plots", type=Path, default=Path("out/bench"))
    parser.add_argument("--cold-start-s", type=float, default=SIM.cold_start_s,
                        help="Seconds from a replica asked for to ready, in the simulator (the real stack "
                             "measures its own).")
    parser.add_argument("--real", action="store_true",
                        help=f"Replay {REAL_SECONDS} s of the trace against the real local stack (gateway, "
                             f"autoscaler, echo replicas on 127.0.0.1) and the simulator, instead of hours "
                             f"in the simulator alone.")
    args = parser.parse_args()
    if args.real:
        real(args.hours, args.seed)
    else:
        sim(args.hours, args.seed, args.plots, replace(SIM, cold_start_s=args.cold_start_s))


if __name__ == "__main__":
    main()
