"""The autoscaler's control loop with the Kubernetes actuator, against a real Deployment.

The actuator talks to the API server with a token of the rendered autoscaler
ServiceAccount, so the rendered Role is exactly what it has. The readings come
from a hand-written metrics source and the clock is injected (windows pass in
simulated seconds); ready replicas come from the Deployment controller, the
scheduler and kwok.
"""

from __future__ import annotations

import asyncio

import pytest

from infra_inference.decide.autoscaling.observe import GatewaySample
from infra_inference.specs.autoscale import ScalingSpec
from tests.integration.cluster_helpers import REPLICA, SERVICE_LABEL, Stack, token_client, wait_until
from tests.support.controlplane import ControlPlane

pytestmark = pytest.mark.controlplane

actuators = pytest.importorskip("infra_inference.runtime.actuators.kubernetes", reason="needs the runtime extra")
loop = pytest.importorskip("infra_inference.runtime.autoscaler.loop", reason="needs the runtime extra")


class _Gateway:
    """Stands in for the gateway's metrics: `concurrency` arrivals a tick (1 s apart) of 1 s each,
    so Little's law reads `concurrency` in flight."""

    def __init__(self, clock: list[float]) -> None:
        self.clock, self.concurrency, self.count = clock, 0.0, 0.0

    async def gateway(self, deployments: list[str], now: float) -> dict[str, GatewaySample]:
        self.count += self.concurrency
        return {d: GatewaySample(now, self.count, self.count, self.count, self.count, 0.0, self.concurrency)
                for d in deployments}

    async def replicas(self, deployment: str) -> None:
        return None

    async def custom(self, deployment: str) -> None:
        return None


def test_autoscaler_scales_the_real_deployment_up_and_down_through_its_service_account(
    controlplane: ControlPlane, stack: Stack
) -> None:
    policy = {"metric": "concurrency", "target": 2, "min_replicas": 1, "max_replicas": 4, "scale_down_window_s": 30}
    ns = stack.autoscaled_chat(policy)
    apps = stack.apps
    ready = lambda: apps.read_namespaced_deployment("chat", ns).status.ready_replicas or 0  # noqa: E731
    replicas = lambda: apps.read_namespaced_deployment_scale("chat", ns).spec.replicas  # noqa: E731
    wait_until(lambda: ready() == 1, "the first replica ready", describe=stack.describe(ns))

    clock = [0.0]
    gateway = _Gateway(clock)
    with token_client(controlplane, stack.core, ns, "chat-autoscaler") as as_sa:
        scaler = loop.Autoscaler(ScalingSpec.parse(policy), ["chat"], actuators.KubernetesActuator(as_sa, ns), gateway,
                                 gateways=lambda: [], clock=lambda: clock[0])  # fmt: skip

        async def tick_until(done, what: str, ticks: int) -> None:
            for _ in range(ticks):
                clock[0] += 1.0
                await scaler.tick()
                if done():
                    return
            pytest.fail(f"{what}: not after {ticks} simulated seconds; replicas={replicas()} last={scaler.last}")

        # A private loop, never installed as the thread's current one: asyncio.run
        # would leave none behind, and Pulumi's mocks (tests/support) need it.
        event_loop = asyncio.new_event_loop()
        run = event_loop.run_until_complete

        # 8 requests in flight at 2 per replica: ceil(8 / 2) = 4 replicas.
        gateway.concurrency = 8
        run(tick_until(lambda: replicas() == 4, "scale up to 4", ticks=30))
        wait_until(lambda: ready() == 4, "4 replicas ready (kwok)", describe=stack.describe(ns))

        # Load falls to 1 in flight: ceil(1 / 2) = 1 once the 30 s scale-down window has passed.
        gateway.concurrency = 1
        fell_at = clock[0]
        run(tick_until(lambda: replicas() == 1, "scale down to 1", ticks=300))
        event_loop.close()
        assert clock[0] - fell_at >= 30  # not before the scale-down window
    pods = lambda: stack.core.list_namespaced_pod(ns, label_selector=f"{SERVICE_LABEL}=chat,{REPLICA}").items  # noqa: E731
    wait_until(lambda: len(pods()) == 1 and ready() == 1, "1 replica left", describe=stack.describe(ns))
