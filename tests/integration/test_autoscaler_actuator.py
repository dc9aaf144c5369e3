"""The autoscaler's in-cluster wiring against a real API server: scale subresource and EndpointSlice discovery.

As `infra-inference autoscaler` runs in a cluster (runtime/autoscaler/cli.py),
with a token of the rendered autoscaler ServiceAccount: the Kubernetes
actuator scales the replica Deployment, and EndpointSlice discovery follows
its ready pods through the replica Service's slices, which the real
EndpointSlice controller writes from pods that the scheduler placed and
kwok made ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from kubernetes import client

from infra_inference.runtime.actuators import Replicas
from tests.integration.cluster_helpers import WAIT_S, Stack, token_client, wait_until
from tests.support.controlplane import ControlPlane

pytestmark = pytest.mark.controlplane

actuators = pytest.importorskip("infra_inference.runtime.actuators.kubernetes", reason="needs the runtime extra")
endpointslices = pytest.importorskip("infra_inference.runtime.discovery.endpointslices",
                                     reason="needs the runtime extra")

REPLICA_PORT = 8080


async def _until(predicate: Callable[[], bool], what: str, describe: Callable[[], str]) -> None:
    """Yield to the loop (discovery publishes through it) until `predicate`; WAIT_S is a guard, not a speed check."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"{what}: not within {WAIT_S:g}s\n{describe()}")
        await asyncio.sleep(0.05)


def test_actuator_scales_and_endpointslice_discovery_follows_the_ready_pods(
    controlplane: ControlPlane, stack: Stack
) -> None:
    ns = stack.autoscaled_chat({"metric": "concurrency", "target": 2, "min_replicas": 1, "max_replicas": 4})
    describe = stack.describe(ns)
    wait_until(lambda: len([p for p in stack.pods(ns, "chat") if p.status.pod_ip]) == 1, "the first replica placed",
               describe=describe)

    def pod_addresses() -> list[str]:
        return sorted(f"{p.status.pod_ip}:{REPLICA_PORT}" for p in stack.pods(ns, "chat")
                      if p.status.pod_ip and p.metadata.deletion_timestamp is None
                      and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or []))

    seen: dict[str, list[str]] = {}
    with token_client(controlplane, stack.core, ns, "chat-autoscaler") as as_sa:
        actuator = actuators.KubernetesActuator(as_sa, ns)
        discovery = endpointslices.EndpointSliceDiscovery(as_sa, ns, {"chat-replicas": ("chat", REPLICA_PORT)})

        async def scenario() -> None:
            watching = asyncio.create_task(discovery.run(lambda d, addresses: seen.__setitem__(d, addresses)))
            try:
                await _until(lambda: len(seen.get("chat", [])) == 1, "one ready address", describe)
                assert seen["chat"] == pod_addresses()
                # A slice someone else wrote for the same Service (a tenant allowed to create EndpointSlices):
                # never an address of the service's, whatever its labels claim.
                client.DiscoveryV1Api(stack.api).create_namespaced_endpoint_slice(ns, {
                    "metadata": {"name": "rogue", "labels": {"kubernetes.io/service-name": "chat-replicas",
                                                             "endpointslice.kubernetes.io/managed-by": "me"}},
                    "addressType": "IPv4", "ports": [{"name": "http", "port": REPLICA_PORT}],
                    "endpoints": [{"addresses": ["203.0.113.9"], "conditions": {"ready": True}}]})

                await actuator.scale("chat", 3)
                await _until(lambda: len(seen["chat"]) >= 3, "three ready addresses after scaling to 3", describe)
                assert seen["chat"] == pod_addresses()  # and not 203.0.113.9
                # The Deployment's readyReplicas follows its ReplicaSet's status, a moment after the
                # EndpointSlices: the actuator reports 3 of 3 once it does.
                loop = asyncio.get_running_loop()
                deadline = loop.time() + WAIT_S
                while (replicas := await actuator.replicas("chat")) != Replicas(3, 3):
                    if loop.time() > deadline:
                        pytest.fail(f"the actuator reads {replicas}, not 3 of 3 ready, within {WAIT_S:g}s")
                    await asyncio.sleep(0.05)

                await actuator.scale("chat", 1)
                await _until(lambda: len(seen["chat"]) == 1, "one address after scaling to 1", describe)
                assert (await actuator.replicas("chat")).current == 1
            finally:
                watching.cancel()

        # A private loop, never installed as the thread's current one: asyncio.run would leave
        # none behind, and Pulumi's mocks (tests/support) need it.
        event_loop = asyncio.new_event_loop()
        try:
            event_loop.run_until_complete(scenario())
        finally:
            event_loop.close()
