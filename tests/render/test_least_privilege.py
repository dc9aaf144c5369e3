"""What a tenant's objects may do and what they reveal: RBAC rules, secrets by reference only."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate

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
