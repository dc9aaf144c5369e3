"""The tick loop: collect -> decide -> actuate, once a `tick_s`, and at once when the gateway pokes.

Each deployment has its own decider state; a CPU fallback is sized by its own
stage (decide/autoscaling/fallback.py) from the other deployments' overflow. Every decision is logged with its
reason when it changes something (or its reason changes), and exported as
`infra_inference_desired_replicas` / `infra_inference_ready_replicas`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import aiohttp
from prometheus_client import CollectorRegistry, Gauge

from infra_inference.decide.autoscaling import Decision, Observation, ScalerState, decide
from infra_inference.decide.autoscaling.fallback import FallbackState, GpuSide, fallback_replicas
from infra_inference.decide.autoscaling.observe import (
    GatewaySample,
    ObserverState,
    observe_gateway,
    utilization,
    with_value,
)
from infra_inference.runtime.actuators.base import Actuator, Replicas
from infra_inference.runtime.autoscaler.collect import Source
from infra_inference.specs.autoscale import ScalingSpec
from infra_inference.wire import metrics as names
from infra_inference.wire.policy import FallbackConfig

log = logging.getLogger(__name__)

# The activator long-poll: the gateway answers at once when requests wait for replicas.
POKE_POLL_S = 10.0
POKE_COOLDOWN_S = 0.5


class Autoscaler:
    """Scales `deployments` with `policy` (its target resolved).

    Args:
        policy: The decider's knobs.
        deployments: One decision each.
        actuator: Reads and sets replica counts.
        source: Where the metrics come from (`collect.HttpSource`).
        gateways: Base URLs to long-poll for activator pokes.
        tick_s: Seconds between ticks without a poke.
        clock: Monotonic seconds; passed to decide() as `now`.
        fallback: The service's CPU fallback, one of `deployments`, sized from the others' overflow.
    """

    def __init__(self, policy: ScalingSpec, deployments: list[str], actuator: Actuator, source: Source,
                 gateways: Callable[[], list[str]], tick_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, fallback: FallbackConfig | None = None) -> None:
        self.policy = policy
        self.deployments = deployments
        self._actuator = actuator
        self._source = source
        self._gateways = gateways
        self._tick_s = tick_s
        self._clock = clock
        self.states = {d: ScalerState() for d in deployments}
        self.observers = {d: ObserverState() for d in deployments}
        self._fallback = fallback
        self._fallback_state = FallbackState()
        self.last: dict[str, Decision] = {}
        self.registry = CollectorRegistry()
        self._desired = Gauge(names.DESIRED_REPLICAS, "Replicas the autoscaler asks for.",
                              ["deployment"], registry=self.registry)
        self._ready = Gauge(names.READY_REPLICAS, "Replicas ready, as the actuator reports.",
                            ["deployment"], registry=self.registry)
        self._poked = asyncio.Event()

    async def tick(self) -> None:
        now = self._clock()
        gateway = await self._source.gateway(self.deployments, now)
        gpu: list[tuple[Replicas, float | None]] = []
        for d in self.deployments:
            if self._fallback is not None and d == self._fallback.deployment:
                continue
            try:  # one deployment's failure (an API error, a bad reading) must not skip the others
                decided = await self._tick_one(d, None if gateway is None else gateway.get(d), now)
            except Exception:
                log.exception("%s: tick failed; holding", d)
                continue
            if decided is not None:
                gpu.append(decided)
        if self._fallback is not None:
            await self._fallback_tick(self._fallback, gpu, now)

    async def _tick_one(self, deployment: str, sample: GatewaySample | None,
                        now: float) -> tuple[Replicas, float | None] | None:
        """Observe, decide, actuate one deployment: (replicas asked for and ready, outstanding), None on hold."""
        replicas = await self._actuator.replicas(deployment)
        if replicas is None:
            log.warning("%s: replicas unreadable; holding", deployment)
            return None
        obs, self.observers[deployment] = await self._observe(deployment, sample, replicas.current,
                                                              replicas.ready, now)
        decision, self.states[deployment] = decide(self.policy, obs, self.states[deployment], now)
        await self._apply(deployment, decision, replicas)
        return Replicas(decision.desired, replicas.ready), obs.outstanding

    async def _observe(self, deployment: str, sample: GatewaySample | None, current: int, ready: int,
                       now: float) -> tuple[Observation, ObserverState]:
        """The gateway's reading; for utilization and custom metrics, their value with the gateway's outstanding."""
        metric = self.policy.metric
        obs, state = observe_gateway(metric, sample, self.observers[deployment], current, ready, now)
        if metric in ("gpu-utilization", "cpu-utilization"):
            value, state = utilization(metric, await self._source.replicas(deployment), state, now)
            obs = with_value(obs, value)
        elif metric == "custom":
            obs = with_value(obs, await self._source.custom(deployment))
        return obs, state

    async def _apply(self, deployment: str, decision: Decision, replicas: Replicas) -> None:
        self._ready.labels(deployment).set(replicas.ready)
        self._desired.labels(deployment).set(decision.desired)
        if decision.desired != replicas.current:
            await self._actuator.scale(deployment, decision.desired)
        self._log(deployment, decision, replicas.current)

    async def _fallback_tick(self, fb: FallbackConfig, gpu: list[tuple[Replicas, float | None]], now: float) -> None:
        """Size the CPU variant from the GPU deployments' overflow and pending replicas."""
        replicas = await self._actuator.replicas(fb.deployment)
        if replicas is None or len(gpu) < len(self.deployments) - 1:
            return  # some deployment unreadable: hold
        outstanding = [o for _, o in gpu]
        side = GpuSide(desired=sum(r.current for r, _ in gpu), ready=sum(r.ready for r, _ in gpu),
                       outstanding=None if None in outstanding else sum(o for o in outstanding if o is not None),
                       slots_per_replica=fb.gpu_slots_per_replica)
        desired, reason, self._fallback_state = fallback_replicas(
            side, replicas.current, fb.slots_per_replica, fb.max_replicas, self._fallback_state, now)
        await self._apply(fb.deployment, Decision(desired, reason), replicas)

    def _log(self, deployment: str, decision: Decision, current: int) -> None:
        previous = self.last.get(deployment)
        self.last[deployment] = decision
        if decision.desired != current or previous is None or previous.desired != decision.desired:
            log.info("%s", json.dumps({"deployment": deployment, "at": round(time.time(), 3), "current": current,
                                       "desired": decision.desired,
                                       "panicking": decision.panicking, "reason": decision.reason}))

    async def run(self) -> None:
        """Tick forever; a poke from any gateway cuts the wait short."""
        async with aiohttp.ClientSession() as session:
            pollers = asyncio.create_task(self._poll_pokes(session))
            try:
                while True:
                    started = self._clock()
                    try:
                        await self.tick()
                    except Exception:  # a failed tick holds; the next one tries again
                        log.exception("tick failed")
                    self._poked.clear()
                    try:
                        await asyncio.wait_for(self._poked.wait(), max(0.0, self._tick_s - (self._clock() - started)))
                    except TimeoutError:
                        pass
            finally:
                pollers.cancel()

    async def _poll_pokes(self, session: aiohttp.ClientSession) -> None:
        while True:
            urls = self._gateways()
            if not urls:
                await asyncio.sleep(self._tick_s)
                continue
            polls = [asyncio.create_task(self._wait_for_poke(session, u)) for u in urls]
            done, pending = await asyncio.wait(polls, return_when=asyncio.FIRST_COMPLETED)
            for p in pending:
                p.cancel()
            if any(t.result() for t in done):
                self._poked.set()
                # A poke's job is the first tick after idle; while replicas start, the gateway would
                # poke continuously, and ticks every few ms would flood the decider's windows.
                await asyncio.sleep(POKE_COOLDOWN_S)

    async def _wait_for_poke(self, session: aiohttp.ClientSession, url: str) -> bool:
        try:
            async with session.get(f"{url}/activator/wait", params={"timeout_s": str(POKE_POLL_S)},
                                   timeout=aiohttp.ClientTimeout(total=POKE_POLL_S + 5)) as r:
                return bool((await r.json()).get("poked"))
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            await asyncio.sleep(self._tick_s)
            return False
