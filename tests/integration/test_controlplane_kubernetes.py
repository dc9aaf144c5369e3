"""What the real Kubernetes control plane does with GPU pods, on kwok nodes.

Plain Kubernetes objects written inline: these pin down the cluster behaviour
our rendered objects rely on (extended-resource packing, the GPU taint,
priority and preemption, ResourceQuota on GPUs, ServiceAccount tokens and
RBAC).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from tests.integration.cluster_helpers import POOL_LABEL, gpu_pod, running, token_client, unschedulable, wait_until
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support.controlplane import ControlPlane

pytestmark = pytest.mark.controlplane


@pytest.fixture
def priority_class(api: client.ApiClient) -> Iterator[Callable[..., str]]:
    """Factory for cluster-scoped PriorityClasses, deleted after the test."""
    sched = client.SchedulingV1Api(api)
    made: list[str] = []

    def make(value: int, *, preemption_policy: str = "PreemptLowerPriority") -> str:
        name = f"pc-{uuid.uuid4().hex[:8]}"
        sched.create_priority_class({"metadata": {"name": name}, "value": value, "preemptionPolicy": preemption_policy})
        made.append(name)
        return name

    yield make
    for name in made:
        sched.delete_priority_class(name)


def _pods(core: client.CoreV1Api, ns: str, selector: str = "") -> list[client.V1Pod]:
    return core.list_namespaced_pod(ns, label_selector=selector).items


def test_default_cluster_has_gpu_nodes_across_two_zones(api: client.ApiClient) -> None:
    nodes = client.CoreV1Api(api).list_node(label_selector=f"{POOL_LABEL}=default").items
    assert sorted(n.metadata.name for n in nodes) == ["gpu-0", "gpu-1", "gpu-2"]
    assert {n.metadata.labels["topology.kubernetes.io/zone"] for n in nodes} == {"zone-a", "zone-b"}
    for node in nodes:
        assert node.status.allocatable["nvidia.com/gpu"] == "4"
        assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [("nvidia.com/gpu", "present", "NoSchedule")]
        assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def test_pod_without_the_gpu_toleration_stays_off_gpu_nodes(api: client.ApiClient, namespace: str, gpu_pool) -> None:
    pool = gpu_pool(nodes=1)
    core = client.CoreV1Api(api)
    pod = gpu_pod("no-toleration", pool=pool)
    pod["spec"]["tolerations"] = []
    core.create_namespaced_pod(namespace, pod)

    message = wait_until(lambda: unschedulable(core.read_namespaced_pod("no-toleration", namespace)), "Unschedulable")
    assert "untolerated taint" in message
    # The same pod with the toleration fits the same node.
    core.create_namespaced_pod(namespace, gpu_pod("tolerating", pool=pool))
    wait_until(lambda: running(core.read_namespaced_pod("tolerating", namespace)), "the tolerating pod running")
    assert not core.read_namespaced_pod("no-toleration", namespace).spec.node_name


def test_scheduler_packs_gpu_pods_up_to_capacity_and_leaves_the_rest_pending(api: client.ApiClient, namespace: str, gpu_pool) -> None:
    # 2 nodes x 4 slots = 8 slots; 10 single-slot pods: 8 run, 4 per node, 2 wait.
    pool = gpu_pool(nodes=2, gpu_slots=4)
    core = client.CoreV1Api(api)
    for i in range(10):
        core.create_namespaced_pod(namespace, gpu_pod(f"w-{i}", pool=pool, labels={"app": "w"}))

    def settled() -> list[client.V1Pod] | None:
        pods = _pods(core, namespace, "app=w")
        done = sum(running(p) for p in pods) == 8 and sum(bool(unschedulable(p)) for p in pods) == 2
        return pods if done else None

    pods = wait_until(settled, "8 running and 2 unschedulable pods")
    per_node: dict[str, int] = {}
    for p in pods:
        if p.spec.node_name:
            per_node[p.spec.node_name] = per_node.get(p.spec.node_name, 0) + 1
    assert per_node == {f"{pool}-0": 4, f"{pool}-1": 4}
    pending = [p for p in pods if not p.spec.node_name]
    assert [p.status.phase for p in pending] == ["Pending", "Pending"]
    assert all("Insufficient nvidia.com/gpu" in unschedulable(p) for p in pending)


def test_higher_priority_pod_preempts_lower_priority_pods(api: client.ApiClient, namespace: str, gpu_pool, priority_class) -> None:
    pool = gpu_pool(nodes=1, gpu_slots=4)
    low, high = priority_class(100), priority_class(1000)
    core = client.CoreV1Api(api)
    for i in range(4):
        core.create_namespaced_pod(namespace, gpu_pod(f"low-{i}", pool=pool, priority_class=low, labels={"tier": "low"}))
    wait_until(lambda: sum(running(p) for p in _pods(core, namespace, "tier=low")) == 4, "4 low-priority pods running")

    core.create_namespaced_pod(namespace, gpu_pod("high", pool=pool, gpus=2, priority_class=high))

    wait_until(lambda: running(core.read_namespaced_pod("high", namespace)), "the high-priority pod running")
    # The scheduler evicts the fewest victims that make room: 2 of the 4.
    survivors = wait_until(lambda: (ps := _pods(core, namespace, "tier=low")) and len(ps) == 2 and ps, "2 victims gone")
    assert all(running(p) for p in survivors)


def test_priority_class_with_preemption_policy_never_does_not_preempt(
    api: client.ApiClient, namespace: str, gpu_pool, priority_class
) -> None:
    pool = gpu_pool(nodes=1, gpu_slots=4)
    low, never = priority_class(100), priority_class(1000, preemption_policy="Never")
    core = client.CoreV1Api(api)
    for i in range(4):
        core.create_namespaced_pod(namespace, gpu_pod(f"low-{i}", pool=pool, priority_class=low, labels={"tier": "low"}))
    wait_until(lambda: sum(running(p) for p in _pods(core, namespace, "tier=low")) == 4, "4 low-priority pods running")

    core.create_namespaced_pod(namespace, gpu_pod("polite", pool=pool, priority_class=never))

    # Preemption is decided in the same scheduling cycle that reports
    # Unschedulable, so once the condition is there the answer is final.
    message = wait_until(lambda: unschedulable(core.read_namespaced_pod("polite", namespace)), "polite pod Unschedulable")
    assert "Insufficient nvidia.com/gpu" in message
    polite = core.read_namespaced_pod("polite", namespace)
    assert not polite.status.nominated_node_name
    lows = _pods(core, namespace, "tier=low")
    assert len(lows) == 4 and all(running(p) and not p.metadata.deletion_timestamp for p in lows)


def test_resource_quota_rejects_a_pod_over_the_gpu_quota(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "gpus"}, "spec": {"hard": {"requests.nvidia.com/gpu": "2"}}}
    )
    # Admission refuses pods while the quota controller has not computed status.
    wait_until(lambda: core.read_namespaced_resource_quota("gpus", namespace).status.hard, "quota status")

    core.create_namespaced_pod(namespace, gpu_pod("fits", pool="default", gpus=2))
    with pytest.raises(ApiException) as rejected:
        core.create_namespaced_pod(namespace, gpu_pod("over", pool="default", gpus=1))

    assert rejected.value.status == 403
    assert "exceeded quota: gpus" in rejected.value.body
    assert "requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=2, limited: requests.nvidia.com/gpu=2" in rejected.value.body
    assert [p.metadata.name for p in _pods(core, namespace)] == ["fits"]


def _deployment(name: str, replicas: int) -> dict:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}], "terminationGracePeriodSeconds": 0},
            },
        },
    }


def test_service_account_token_scales_its_own_deployment_and_gets_403_elsewhere(
    controlplane: ControlPlane, api: client.ApiClient, namespace: str
) -> None:
    core, apps, rbac = client.CoreV1Api(api), client.AppsV1Api(api), client.RbacAuthorizationV1Api(api)
    for name in ("mine", "other"):
        apps.create_namespaced_deployment(namespace, _deployment(name, 1))
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "scaler"}})
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "scaler"},
        "rules": [
            {"apiGroups": ["apps"], "resources": ["deployments/scale"], "resourceNames": ["mine"], "verbs": ["get", "patch", "update"]},
            {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["mine"], "verbs": ["get"]},
        ],
    })  # fmt: skip
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "scaler"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "scaler"},
        "subjects": [{"kind": "ServiceAccount", "name": "scaler", "namespace": namespace}],
    })  # fmt: skip

    with token_client(controlplane, core, namespace, "scaler") as as_sa:
        review = client.AuthenticationV1Api(as_sa).create_self_subject_review({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:scaler"
        sa_apps = client.AppsV1Api(as_sa)

        sa_apps.patch_namespaced_deployment_scale("mine", namespace, {"spec": {"replicas": 3}})
        # The Deployment controller makes the pods, the scheduler binds them,
        # kwok reports them ready.
        wait_until(lambda: apps.read_namespaced_deployment("mine", namespace).status.ready_replicas == 3, "3 ready replicas")
        sa_apps.patch_namespaced_deployment_scale("mine", namespace, {"spec": {"replicas": 1}})
        wait_until(lambda: len(_pods(core, namespace, "app=mine")) == 1, "scale down to 1 pod")
        assert sa_apps.read_namespaced_deployment_scale("mine", namespace).spec.replicas == 1

        forbidden = [
            lambda: sa_apps.patch_namespaced_deployment_scale("other", namespace, {"spec": {"replicas": 5}}),
            lambda: sa_apps.read_namespaced_deployment("other", namespace),
            lambda: client.CoreV1Api(as_sa).list_namespaced_secret(namespace),
            lambda: client.CoreV1Api(as_sa).list_node(),
            lambda: sa_apps.list_deployment_for_all_namespaces(),
        ]
        for call in forbidden:
            with pytest.raises(ApiException) as denied:
                call()
            assert denied.value.status == 403
    assert apps.read_namespaced_deployment("other", namespace).spec.replicas == 1
