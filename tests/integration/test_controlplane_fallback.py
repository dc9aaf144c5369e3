"""The CPU fallback on a real control plane: GPU slots full -> a CPU replica serves -> GPU frees -> CPU back to 0.

The service has fixed GPU replicas and `cpu_fallback`; its rendered
autoscaler (policy.json from the rendered ConfigMap) runs with a token of its
rendered ServiceAccount, so the Role is exactly what it has. The gateway's
reading is a stand-in (requests outstanding for the GPU backend) and the clock
is injected; placement, readiness and EndpointSlices are the real scheduler's,
kubelet's (kwok) and EndpointSlice controller's.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes import client

from infra_inference.decide.autoscaling.observe import GatewaySample
from infra_inference.render.stack import render_stack
from tests.integration.cluster_helpers import (
    Stack, pool_args, running, service_args, token_client, unschedulable, wait_until,
)
from tests.support.controlplane import ControlPlane

pytestmark = pytest.mark.controlplane

actuators = pytest.importorskip("infra_inference.runtime.actuators.kubernetes", reason="needs the runtime extra")
loop = pytest.importorskip("infra_inference.runtime.autoscaler.loop", reason="needs the runtime extra")
wire = pytest.importorskip("infra_inference.wire.policy", reason="needs the runtime extra")


class _Gateway:
    """Stands in for the gateway's metrics: requests in flight, all counted under the GPU backend (nothing
    answered yet, so the reading is the outstanding count)."""

    def __init__(self) -> None:
        self.outstanding = 0.0

    async def gateway(self, deployments: list[str], now: float) -> dict[str, GatewaySample]:
        return {d: GatewaySample(now, 0.0, 0.0, 0.0, 0.0, 0.0, self.outstanding if d == "chat" else 0.0)
                for d in deployments}

    async def replicas(self, deployment: str) -> None:
        return None

    async def custom(self, deployment: str) -> None:
        return None


def test_cpu_fallback_serves_while_gpu_slots_are_full_and_retires_when_they_free(
    controlplane: ControlPlane, stack: Stack
) -> None:
    ns, pool = f"inf-{stack.sid}", f"l4-{stack.sid}"
    doc = {
        "platform": {"namespace": ns},
        "pools": {pool: pool_args(gpus_per_node=1, sharing={"strategy": "time-slicing", "replicas_per_gpu": 4})},
        "services": {"chat": service_args(pool, ns, gpu_fraction=0.25, replicas=2, cpu_fallback=True)},
    }
    [node] = stack.add_pool_nodes(doc, pool, 1)
    # Another online service's pod holds 3 of the node's 4 slots (same priority: nothing to preempt):
    # one GPU replica fits, the other stays Pending.
    blocker = {"metadata": {"name": "neighbour", "namespace": ns}, "spec": {
        "nodeName": node, "terminationGracePeriodSeconds": 0, "priorityClassName": "inference-online",
        "tolerations": [{"operator": "Exists"}],
        "containers": [{"name": "t", "image": "registry.k8s.io/pause:3.10",
                        "resources": {"limits": {"nvidia.com/gpu": "3"}}}]}}
    objects = render_stack(doc)
    stack.apply([o for o in objects if o["kind"] in ("Namespace", "PriorityClass")])
    stack.core.create_namespaced_pod(ns, blocker)
    stack.apply(objects)
    describe = stack.describe(ns)
    [cm] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "chat-autoscaler"]
    cfg = wire.AutoscalerConfig.model_validate(json.loads(cm["data"]["policy.json"]))
    assert cfg.fallback is not None and cfg.fallback.deployment == "chat-cpu"

    def pods(variant: str) -> list[client.V1Pod]:
        return stack.core.list_namespaced_pod(ns, label_selector=f"infra-inference.dev/variant={variant}").items

    wait_until(lambda: sum(map(running, pods("main"))) == 1 and any(unschedulable(p) for p in pods("main")),
               "one GPU replica running, one Pending on the full node", describe=describe)

    gateway = _Gateway()
    clock = [0.0]
    apps = stack.apps
    cpu_replicas = lambda: apps.read_namespaced_deployment_scale("chat-cpu", ns).spec.replicas or 0  # noqa: E731 (0 is omitted)
    with token_client(controlplane, stack.core, ns, "chat-autoscaler") as as_sa:
        scaler = loop.Autoscaler(cfg.policy, cfg.deployments, actuators.KubernetesActuator(as_sa, ns), gateway,
                                 gateways=lambda: [], clock=lambda: clock[0], fallback=cfg.fallback)
        event_loop = asyncio.new_event_loop()  # private: Pulumi's mocks elsewhere need the thread's own

        def tick(seconds: float = 1.0) -> None:
            clock[0] += seconds
            event_loop.run_until_complete(scaler.tick())

        try:
            # Idle: the CPU variant (created at Kubernetes' default of 1) goes to 0, the GPU side stays at 2.
            tick()
            assert cpu_replicas() == 0 and apps.read_namespaced_deployment_scale("chat", ns).spec.replicas == 2
            wait_until(lambda: not pods("cpu"), "no CPU replica while idle", describe=describe)

            # Requests arrive while a GPU replica cannot be placed: a CPU replica wakes and becomes ready.
            gateway.outstanding = 3
            tick()
            assert cpu_replicas() == 1, scaler.last
            wait_until(lambda: [p for p in pods("cpu") if running(p)], "a CPU replica running", describe=describe)
            [cpu_pod] = pods("cpu")
            assert "nvidia.com/gpu" not in (cpu_pod.spec.containers[0].resources.requests or {})

            def cpu_endpoints() -> list[str]:
                slices = client.DiscoveryV1Api(stack.api).list_namespaced_endpoint_slice(
                    ns, label_selector="kubernetes.io/service-name=chat-cpu-replicas").items
                return [a for s in slices for e in s.endpoints or [] if e.conditions.ready for a in e.addresses]

            # What the gateway routes overflow to: the CPU replica's ready address.
            wait_until(lambda: cpu_endpoints() == [cpu_pod.status.pod_ip], "the CPU replica in its EndpointSlice",
                       describe=describe)

            # The GPU slots free: the Pending replica is placed; the CPU replica stays through the cool-down only.
            stack.core.delete_namespaced_pod("neighbour", ns, grace_period_seconds=0)
            wait_until(lambda: sum(map(running, pods("main"))) == 2, "both GPU replicas running", describe=describe)
            wait_until(lambda: apps.read_namespaced_deployment("chat", ns).status.ready_replicas == 2,
                       "the Deployment reporting 2 ready", describe=describe)
            tick()
            freed_at = clock[0]
            while cpu_replicas() > 0:
                assert clock[0] - freed_at < 120, scaler.last
                tick()
            assert clock[0] - freed_at >= 29  # not before the 30 s cool-down
            wait_until(lambda: not pods("cpu"), "the CPU replica retired", describe=describe)
        finally:
            event_loop.close()
