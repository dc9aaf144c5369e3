"""Our rendered objects in a real control plane: accepted, scheduled, preempting, confined.

Each test writes a stack document (the `infra-inference render` input), renders
it with ``render_stack``, creates kwok nodes that look like the document's
pools (labels, taints and GPU slots as ``render/pool.py`` and the pool spec
define them), applies the objects with server-side apply and watches what the
real scheduler, controllers and admission do with them.
"""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from infra_inference.plan.components import plan_pool
from infra_inference.render.pool import node_selector, tolerations
from infra_inference.render.stack import render_stack
from tests.integration.cluster_helpers import (
    REPLICA,
    SERVICE_LABEL,
    Stack,
    pool_args,
    requests_of,
    running,
    scale,
    service_args,
    token_client,
    unschedulable,
    wait_until,
)
from tests.support.controlplane import ControlPlane
from tests.support.examples import EXAMPLES, rendered_objects

pytestmark = pytest.mark.controlplane


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_objects_apply_server_side_and_their_pods_pass_admission(stack: Stack, example: str) -> None:
    objects = rendered_objects(example)
    assert objects, f"{example} renders no Kubernetes objects"
    stack.apply(objects)

    # Pods are admitted when the ReplicaSet controller creates them (quota,
    # PodSecurity, ServiceAccount, priority class); a rejection shows up as
    # ReplicaFailure, not as an apply error. Scheduling is not asked for here:
    # the examples' pools have no nodes in this cluster.
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    for d in deployments:
        name, ns = d["metadata"]["name"], d["metadata"]["namespace"]

        def created(name: str = name, ns: str = ns) -> client.V1Deployment | None:
            dep = stack.apps.read_namespaced_deployment(name, ns)
            failed = [c for c in dep.status.conditions or [] if c.type == "ReplicaFailure" and c.status == "True"]
            return dep if failed or (dep.status.replicas or 0) == dep.spec.replicas else None

        dep = wait_until(created, f"pods of Deployment {ns}/{name} created")
        failures = [c.message for c in dep.status.conditions or [] if c.type == "ReplicaFailure" and c.status == "True"]
        assert not failures, f"{ns}/{name}: {failures}"

    # A Job's pods count as active from creation (Pending included); one the
    # admission chain refused never does.
    batch = client.BatchV1Api(stack.api)
    for j in (o for o in objects if o["kind"] == "Job"):
        name, ns = j["metadata"]["name"], j["metadata"]["namespace"]
        want = j["spec"].get("parallelism", 1)
        wait_until(lambda name=name, ns=ns, want=want: (batch.read_namespaced_job(name, ns).status.active or 0) == want,
                   f"{want} pods of Job {ns}/{name} created", describe=stack.describe(ns))  # fmt: skip


def test_quickstart_spec_yaml_applies_server_side(stack: Stack) -> None:
    import yaml

    from tests.support.examples import EXAMPLES_DIR

    doc = yaml.safe_load((EXAMPLES_DIR / "quickstart" / "spec.yaml").read_text())
    stack.apply(render_stack(doc))
    ns = doc["platform"]["namespace"]
    assert stack.apps.read_namespaced_deployment("chat", ns).metadata.name == "chat"


def test_quarter_gpu_replicas_pack_four_per_time_sliced_gpu_and_the_rest_wait(stack: Stack) -> None:
    ns, pool = f"inf-{stack.sid}", f"l4-{stack.sid}"
    doc = {
        "platform": {"namespace": ns},
        "pools": {pool: pool_args(gpus_per_node=1, sharing={"strategy": "time-slicing", "replicas_per_gpu": 4}, max_nodes=3)},
        "services": {"chat": service_args(pool, ns, gpu_fraction=0.25, replicas=10)},
    }
    # Two of the pool's three nodes exist: 2 GPUs x 4 time-sliced slots = 8 replicas.
    nodes = stack.add_pool_nodes(doc, pool, 2)
    stack.apply(render_stack(doc))

    def settled() -> list[client.V1Pod] | None:
        pods = stack.pods(ns, "chat")
        ok = len(pods) == 10 and sum(map(running, pods)) == 8 and sum(bool(unschedulable(p)) for p in pods) == 2
        return pods if ok else None

    pods = wait_until(settled, "8 replicas running and 2 unschedulable", describe=stack.describe(ns))
    resource = plan_pool(pool, doc["pools"][pool]).spec.gpu_resource
    assert all(requests_of(p)[resource] == "1" for p in pods)  # a quarter GPU = one time-sliced slot
    per_node = {n: sum(p.spec.node_name == n for p in pods) for n in nodes}
    assert per_node == {nodes[0]: 4, nodes[1]: 4}
    assert all(f"Insufficient {resource}" in unschedulable(p) for p in pods if not p.spec.node_name)


def test_standby_balloons_hold_slots_until_inference_pods_preempt_them(stack: Stack) -> None:
    ns, pool = f"inf-{stack.sid}", f"l4-{stack.sid}"
    doc = {
        "platform": {"namespace": ns},
        "pools": {pool: pool_args(gpus_per_node=1, sharing={"strategy": "time-slicing", "replicas_per_gpu": 4})},
        "services": {"chat": service_args(pool, ns, gpu_fraction=0.25, replicas=0)},
        "standby": {"warm": {"pool": pool, "instances": 1, "namespace": ns}},
    }
    (node,) = stack.add_pool_nodes(doc, pool, 1)
    objects = render_stack(doc)
    stack.apply(objects)
    (balloons,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "warm-balloons"]
    selector = ",".join(f"{k}={v}" for k, v in balloons["spec"]["selector"]["matchLabels"].items())

    def balloon_pods() -> list[client.V1Pod]:
        return stack.core.list_namespaced_pod(ns, label_selector=selector).items

    first = wait_until(lambda: [p for p in balloon_pods() if running(p)], "the balloon running", describe=stack.describe(ns))
    assert first[0].spec.node_name == node
    assert first[0].spec.priority < 0  # inference-standby sits below every real workload

    scale(stack.apps, "chat", ns, 2)  # what the autoscaler does on a burst

    wait_until(lambda: sum(map(running, stack.pods(ns, "chat"))) == 2, "2 inference replicas running", describe=stack.describe(ns))
    # The balloon was evicted; its ReplicaSet's replacement cannot fit the
    # whole node's worth of slots and, at preemptionPolicy Never, waits.
    replacement = wait_until(
        lambda: [p for p in balloon_pods() if unschedulable(p) and p.metadata.name != first[0].metadata.name],
        "the replacement balloon unschedulable", describe=stack.describe(ns),
    )
    assert not replacement[0].status.nominated_node_name
    assert not [p for p in balloon_pods() if p.metadata.name == first[0].metadata.name and running(p) and not p.metadata.deletion_timestamp]


def test_online_inference_preempts_training_and_batch_does_not_preempt_online(stack: Stack) -> None:
    ns, pool = f"inf-{stack.sid}", f"a-{stack.sid}"
    platform_and_pool = {"platform": {"namespace": ns}, "pools": {pool: pool_args(gpus_per_node=4, max_nodes=1)}}
    stack.add_pool_nodes(platform_and_pool, pool, 1)
    stack.apply(render_stack(platform_and_pool))

    # A training job's pods (not ours: a user's), at our `training` class.
    spec = plan_pool(pool, platform_and_pool["pools"][pool]).spec
    for i in range(4):
        stack.core.create_namespaced_pod(ns, {
            "metadata": {"name": f"train-{i}", "labels": {"job": "train"}},
            "spec": {"priorityClassName": "training", "nodeSelector": node_selector(pool), "tolerations": tolerations(spec),
                     "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "t", "image": "registry.k8s.io/pause:3.10", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
        })  # fmt: skip
    training = lambda: stack.core.list_namespaced_pod(ns, label_selector="job=train").items  # noqa: E731
    wait_until(lambda: sum(map(running, training())) == 4, "4 training pods running", describe=stack.describe(ns))

    online = {**platform_and_pool, "services": {"chat": service_args(pool, ns, gpus=1, replicas=4, priority="online")}}
    stack.apply(render_stack(online))
    wait_until(lambda: sum(map(running, stack.pods(ns, "chat"))) == 4, "4 online replicas running", describe=stack.describe(ns))
    wait_until(lambda: not training(), "training pods preempted", describe=stack.describe(ns))

    both = {**online, "services": {**online["services"], "scoring": service_args(pool, ns, gpus=1, replicas=1, priority="batch")}}
    stack.apply(render_stack(both))
    (batch,) = wait_until(lambda: [p for p in stack.pods(ns, "scoring") if unschedulable(p)], "the batch replica unschedulable", describe=stack.describe(ns))
    assert not batch.status.nominated_node_name
    online_pods = stack.pods(ns, "chat")
    assert len(online_pods) == 4 and all(running(p) and not p.metadata.deletion_timestamp for p in online_pods)
    assert batch.spec.priority < online_pods[0].spec.priority


def test_autoscaler_service_account_scales_its_deployment_and_nothing_else(controlplane: ControlPlane, stack: Stack) -> None:
    ns, pool = f"inf-{stack.sid}", f"l4-{stack.sid}"
    doc = {
        "platform": {"namespace": ns},
        "pools": {pool: pool_args(gpus_per_node=1, sharing={"strategy": "time-slicing", "replicas_per_gpu": 4})},
        "services": {"chat": service_args(pool, ns, gpu_fraction=0.25,
                                      autoscale={"metric": "concurrency", "target": 2, "min_replicas": 1, "max_replicas": 4})},
    }  # fmt: skip
    stack.add_pool_nodes(doc, pool, 1)
    objects = render_stack(doc)
    stack.apply(objects)
    (sa,) = [o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount" and "autoscaler" in o["metadata"]["name"]]

    with token_client(controlplane, stack.core, ns, sa) as as_sa:
        sa_apps, sa_core = client.AppsV1Api(as_sa), client.CoreV1Api(as_sa)
        scale(sa_apps, "chat", ns, 3)
        wait_until(lambda: stack.apps.read_namespaced_deployment("chat", ns).status.ready_replicas == 3, "3 ready replicas", describe=stack.describe(ns))
        # What its discovery reads: the replicas' EndpointSlices (3 ready addresses), not the pods. The
        # EndpointSlice controller catches up with the Deployment's ready count a moment later, so poll.
        sa_discovery = client.DiscoveryV1Api(as_sa)
        addresses = lambda: sum(len(s.endpoints or []) for s in sa_discovery.list_namespaced_endpoint_slice(  # noqa: E731
            ns, label_selector="kubernetes.io/service-name=chat-replicas").items)
        wait_until(lambda: addresses() == 3, "3 addresses in the replicas' EndpointSlices", describe=stack.describe(ns))
        scale(sa_apps, "chat", ns, 1)
        wait_until(lambda: len(stack.pods(ns, "chat")) == 1, "scaled down to 1 replica", describe=stack.describe(ns))

        forbidden = {
            "scale the gateway": lambda: scale(sa_apps, "chat-gateway", ns, 5),
            "patch the Deployment itself": lambda: sa_apps.patch_namespaced_deployment("chat", ns, {"metadata": {"labels": {"x": "y"}}}),
            "read Secrets": lambda: sa_core.list_namespaced_secret(ns),
            "list pods (the code never does)": lambda: sa_core.list_namespaced_pod(ns),
            "read endpoints (the code never does)": lambda: sa_core.list_namespaced_endpoints(ns),
            "delete a pod": lambda: sa_core.delete_namespaced_pod(stack.pods(ns, "chat")[0].metadata.name, ns),
            "list nodes": lambda: sa_core.list_node(),
            "list Deployments cluster-wide": lambda: sa_apps.list_deployment_for_all_namespaces(),
        }
        for what, call in forbidden.items():
            with pytest.raises(ApiException) as denied:
                call()
            assert denied.value.status == 403, what
    gateway = stack.apps.read_namespaced_deployment("chat-gateway", ns)
    assert gateway.spec.replicas != 5


def test_tenant_quota_rejects_pods_over_the_tenant_gpu_quota(stack: Stack) -> None:
    ns, tenant, pool = f"inf-{stack.sid}", f"tn-{stack.sid}", f"a-{stack.sid}"
    doc = {
        "platform": {"namespace": ns, "tenants": [{"name": tenant, "gpu_quota": 2}]},
        "pools": {pool: pool_args(gpus_per_node=4, max_nodes=1)},
        "services": {"ranker": service_args(pool, tenant, gpus=1, replicas=3)},
    }
    stack.add_pool_nodes(doc, pool, 1)
    stack.apply(render_stack(doc))

    # The node has 4 free GPUs; the quota, not capacity, stops the third replica.
    def replica_failure() -> str | None:
        for rs in stack.apps.list_namespaced_replica_set(tenant, label_selector=f"{SERVICE_LABEL}=ranker,{REPLICA}").items:
            for c in rs.status.conditions or []:
                if c.type == "ReplicaFailure" and c.status == "True":
                    return c.message
        return None

    message = wait_until(replica_failure, "the ReplicaSet reporting a quota failure", describe=stack.describe(tenant))
    assert "exceeded quota" in message and "requests.nvidia.com/gpu" in message
    wait_until(lambda: sum(map(running, stack.pods(tenant, "ranker"))) == 2, "2 replicas running", describe=stack.describe(tenant))
    assert len(stack.pods(tenant, "ranker")) == 2
