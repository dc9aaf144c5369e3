"""What a tenant's objects may do and what they reveal: RBAC rules, secrets by reference only."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest

from infra_inference.render import render_stack
from tests.test_examples_and_schema import KUBERNETES_MINOR

MODEL = {"uri": "s3://models/chat.safetensors", "credentials_secret": "model-creds"}
RUNTIME = {"env": {"LOG_FORMAT": "json"}, "secret_env": {"HF_TOKEN": {"name": "hf", "key": "token"}}}


def _one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def test_autoscaler_role_grants_only_the_calls_its_code_makes() -> None:
    objects = render_stack({"services": {"chat": {"model": {"uri": "file:///m"}, "canary": {
        "model": {"uri": "file:///m2"}, "traffic_percent": 10}, "autoscale": {"max_replicas": 4}}}})
    rules = _one(objects, "Role", "chat-autoscaler")["rules"]
    grants = {(g, r, tuple(sorted(rule.get("resourceNames", [])))): tuple(rule["verbs"])
              for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    # KubernetesActuator: read_namespaced_deployment, patch_namespaced_deployment_scale; EndpointSliceDiscovery:
    # list/watch endpointslices. Nothing reads pods or endpoints.
    assert grants == {
        ("apps", "deployments/scale", ("chat", "chat-canary")): ("get", "patch", "update"),
        ("apps", "deployments", ("chat", "chat-canary")): ("get",),
        ("discovery.k8s.io", "endpointslices", ()): ("get", "list", "watch"),
    }


def test_secret_env_and_model_credentials_reach_the_pod_by_reference_only() -> None:
    objects = render_stack({"services": {"chat": {"model": MODEL, "runtime": RUNTIME,
                                                  "canary": {"model": {"uri": "s3://models/b"}, "traffic_percent": 5}}}})
    for o in objects:
        kubernetes_validate.validate(o, KUBERNETES_MINOR, strict=True)
    pod = _one(objects, "Deployment", "chat")["spec"]["template"]["spec"]
    server = pod["containers"][0]
    env = {e["name"]: e for e in server["env"]}
    assert env["HF_TOKEN"] == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}
    assert env["LOG_FORMAT"] == {"name": "LOG_FORMAT", "value": "json"}
    mount = env["INFRA_INFERENCE_MODEL_CREDENTIALS_DIR"]["value"]
    assert {"name": "model-credentials", "mountPath": mount, "readOnly": True} in server["volumeMounts"]
    assert {"name": "model-credentials", "secret": {"secretName": "model-creds", "defaultMode": 0o440}} in pod["volumes"]
    assert pod["securityContext"] == {"fsGroup": 10001}  # group-readable by the runtime user only
    # The canary's model has no credentials Secret: nothing mounted there.
    canary = _one(objects, "Deployment", "chat-canary")["spec"]["template"]["spec"]
    assert "model-credentials" not in json.dumps(canary)
    # No Secret object is rendered, and no value of one could be: the spec never holds it.
    assert not [o for o in objects if o["kind"] == "Secret"]


def _host_paths(o: dict[str, Any]) -> set[str]:
    pod = o["spec"]["template"]["spec"]
    return {v["hostPath"]["path"] for v in pod.get("volumes", []) if "hostPath" in v}


def test_each_namespace_gets_its_own_node_cache_directory() -> None:
    pool = {"cloud": "existing", "cluster": "c", "gpu_type": "l4", "max_nodes": 2,
            "sharing": {"strategy": "time-slicing", "replicas_per_gpu": 4}}
    svc = {"pool": "gpu", "gpu_fraction": 0.25, "model": {"uri": "https://h/m.safetensors"}}
    objects = render_stack({
        "platform": {"tenants": [{"name": "team-a", "gpu_quota": 4}, {"name": "team-b", "gpu_quota": 4}]},
        "pools": {"gpu": pool},
        "services": {"a": {**svc, "namespace": "team-a"}, "b": {**svc, "namespace": "team-b"}},
        "standby": {"warm": {"pool": "gpu", "namespace": "team-a", "warm_models": ["https://h/m.safetensors"]}},
    })
    paths = {(o["metadata"]["namespace"], o["metadata"]["name"]): _host_paths(o) for o in objects
             if o["kind"] in ("Deployment", "DaemonSet") and o["metadata"]["namespace"] != "kube-system"}
    root = "/var/cache/infra-inference/models"
    assert paths[("team-a", "a")] == paths[("team-a", "warm-prepull")] == {f"{root}/team-a"}
    assert paths[("team-b", "b")] == {f"{root}/team-b"}
    # Nothing else of a tenant's touches the node's disk.
    assert all(not p for (ns, name), p in paths.items() if name not in ("a", "b", "warm-prepull"))


CACHE_ROOT = "/var/cache/infra-inference/models"


def _cache_of(pod: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The pod's model-cache volume and the names of its init containers."""
    [volume] = [v for v in pod["volumes"] if v["name"] == "model-cache"]
    return volume, [c["name"] for c in pod.get("initContainers", [])]


@pytest.mark.parametrize(("model", "runtime", "node_cache"), [
    ({"uri": "https://h/m.safetensors"}, {}, True),
    ({"uri": "s3://b/m.safetensors"}, {}, True),
    ({"uri": "file:///models/m.safetensors"}, {}, False),  # read in place: nothing to keep
    ({"uri": "my_pkg.models:Echo", "format": "python"}, {}, False),  # a class, not weights
    ({"uri": "https://h/m.onnx", "format": "onnx"}, {"preset": "triton"}, False),  # Triton fetches by its own rules
])
def test_a_cpu_replica_that_downloads_weights_keeps_them_in_the_node_cache_and_no_other_touches_the_disk(
        model: dict[str, str], runtime: dict[str, str], node_cache: bool) -> None:
    objects = render_stack({"services": {"chat": {"model": model, "runtime": runtime, "cpu": "1", "memory": "2Gi"}}})
    pod = _one(objects, "Deployment", "chat")["spec"]["template"]["spec"]
    volume, init = _cache_of(pod)
    if node_cache:
        # A second replica on the node (or the restarted first) finds the weights there.
        assert volume["hostPath"] == {"path": f"{CACHE_ROOT}/inference", "type": "DirectoryOrCreate"}
        assert init == ["cache-owner"]
        server = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in server["env"]}
        assert {"name": "model-cache", "mountPath": env["INFRA_INFERENCE_CACHE_DIR"]} in server["volumeMounts"]
    else:
        assert "hostPath" not in volume and init == []


def test_the_cpu_fallback_of_a_gpu_service_shares_the_node_cache_off_the_pool() -> None:
    pool = {"cloud": "existing", "cluster": "c", "gpu_type": "l4", "max_nodes": 2,
            "sharing": {"strategy": "time-slicing", "replicas_per_gpu": 4}}
    objects = render_stack({"pools": {"gpu": pool}, "services": {"chat": {
        "pool": "gpu", "gpu_fraction": 0.25, "model": {"uri": "https://h/m.safetensors"}, "cpu_fallback": True,
        "autoscale": {"max_replicas": 2}}}})
    fallback = _one(objects, "Deployment", "chat-cpu")["spec"]["template"]["spec"]
    volume, init = _cache_of(fallback)
    assert "nodeSelector" not in fallback  # any node: the fallback is there for when the pool is full
    assert volume["hostPath"]["path"] == f"{CACHE_ROOT}/inference" and init == ["cache-owner"]


@pytest.mark.parametrize(("runtime", "bound"), [({}, 50 * 2**30), ({"model_cache_max_bytes": 2**30}, 2**30)])
def test_a_replica_that_fills_the_node_cache_is_given_its_bound(runtime: dict[str, int], bound: int) -> None:
    # Without a bound every new model and version stays on the node's disk until it fills (issue 15).
    objects = render_stack({"services": {"chat": {"model": {"uri": "https://h/m.safetensors"}, "runtime": runtime,
                                                  "cpu": "1", "memory": "2Gi"}}})
    server = _one(objects, "Deployment", "chat")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in server["env"]}
    assert env["INFRA_INFERENCE_MODEL_CACHE_MAX_BYTES"] == str(bound)
