"""Pure render pieces whose numbers matter: device-plugin configs, HPA behavior, traffic weights."""

from __future__ import annotations

import json

import pytest
import yaml

from infra_inference.render import render_stack
from infra_inference.render.autoscale import behavior
from infra_inference.render.nvidia import device_plugin_config
from infra_inference.specs.autoscale import ScalingSpec
from infra_inference.specs.pool import GpuPoolSpec

BASE = {"cloud": "existing", "cluster": "c", "gpu_type": "a100-80gb", "max_nodes": 1}


@pytest.mark.parametrize(("sharing", "expected"), [
    ({"strategy": "time-slicing", "replicas_per_gpu": 4},
     {"timeSlicing": {"renameByDefault": False, "failRequestsGreaterThanOne": False,
                      "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}),
    ({"strategy": "mps", "replicas_per_gpu": 3}, {"mps": {"resources": [{"name": "nvidia.com/gpu", "replicas": 3}]}}),
    ({"strategy": "none"}, None),
])
def test_device_plugin_config_per_strategy(sharing: dict, expected: dict | None) -> None:
    config = device_plugin_config(GpuPoolSpec.parse({**BASE, "sharing": sharing}))
    assert config.get("sharing") == expected
    assert config["flags"]["migStrategy"] == "none"


def test_hpa_behavior_turns_rates_into_percent_policies() -> None:
    b = behavior(ScalingSpec(max_scale_up_rate=2, max_scale_down_rate=4, step=3, scale_down_window_s=90))
    assert b["scaleUp"]["policies"] == [{"type": "Percent", "value": 100, "periodSeconds": 15},
                                        {"type": "Pods", "value": 3, "periodSeconds": 15}]
    assert b["scaleDown"]["policies"] == [{"type": "Percent", "value": 75, "periodSeconds": 15}]
    assert b["scaleDown"]["stabilizationWindowSeconds"] == 90


def test_canary_and_cpu_fallback_weights_reach_the_gateway_config() -> None:
    objects = render_stack({"services": {"chat": {
        "model": {"uri": "m"}, "canary": {"model": {"uri": "m2"}, "traffic_percent": 10}}}})
    [cm] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "chat-gateway"]
    backends = json.loads(cm["data"]["gateway.json"])["backends"]
    assert [(b["deployment"], b["weight"]) for b in backends] == [("chat", 90), ("chat-canary", 10)]


def test_the_gateway_admin_port_is_on_the_pod_and_the_autoscaler_but_not_in_the_service() -> None:
    objects = render_stack({"services": {"chat": {"model": {"uri": "m"}, "autoscale": {"max_replicas": 4}}}})
    by_key = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    [gateway] = by_key["Deployment", "chat-gateway"]["spec"]["template"]["spec"]["containers"]
    assert {p["name"]: p["containerPort"] for p in gateway["ports"]} == {"http": 8080, "admin": 9090}
    assert gateway["readinessProbe"]["httpGet"]["port"] == gateway["livenessProbe"]["httpGet"]["port"] == 9090
    assert [p["targetPort"] for p in by_key["Service", "chat-gateway"]["spec"]["ports"]] == [8080]
    config = json.loads(by_key["ConfigMap", "chat-gateway"]["data"]["gateway.json"])
    assert (config["port"], config["admin_port"]) == (8080, 9090)
    policy = json.loads(by_key["ConfigMap", "chat-autoscaler"]["data"]["policy.json"])
    assert policy["gateway_url"] == "http://chat-gateway.inference.svc.cluster.local:9090"


def test_keda_engine_scales_to_zero_on_gateway_concurrency() -> None:
    objects = render_stack({"services": {"chat": {"model": {"uri": "m"}, "autoscale": {
        "engine": "keda", "min_replicas": 0, "scale_to_zero_after_s": 120, "max_replicas": 4}}}})
    [so] = [o for o in objects if o["kind"] == "ScaledObject"]
    assert so["spec"]["minReplicaCount"] == 0 and so["spec"]["cooldownPeriod"] == 120
    trigger = so["spec"]["triggers"][0]
    assert "infra_inference_inflight_requests" in trigger["metadata"]["query"]
    assert trigger["metadata"]["threshold"] == "5.6"  # 0.7 x default max_concurrency 8


def test_device_plugin_config_is_valid_yaml_in_its_configmap() -> None:
    objects = render_stack({"pools": {"gpu": {**BASE, "gpu_type": "l4",
                                              "sharing": {"strategy": "time-slicing", "replicas_per_gpu": 4}}}})
    [cm] = [o for o in objects if o["kind"] == "ConfigMap" and "config.yaml" in o["data"]]
    assert yaml.safe_load(cm["data"]["config.yaml"])["sharing"]["timeSlicing"]["resources"][0]["replicas"] == 4


def test_entries_without_a_namespace_land_in_the_platform_namespace_the_document_creates() -> None:
    objects = render_stack({"platform": {"namespace": "ml"},
                            "pools": {"gpu": {**BASE, "gpu_type": "l4", "max_nodes": 2,
                                              "sharing": {"strategy": "time-slicing", "replicas_per_gpu": 4}}},
                            "services": {"chat": {"pool": "gpu", "gpu_fraction": 0.25, "model": {"uri": "m"}},
                                         "other": {"model": {"uri": "m"}, "namespace": "elsewhere"}},
                            "standby": {"warm": {"pool": "gpu", "instances": 1}}})
    namespaced = {(o["kind"], o["metadata"]["name"]): o["metadata"].get("namespace") for o in objects}
    assert namespaced[("Deployment", "chat")] == "ml"
    assert namespaced[("Deployment", "warm-balloons")] == "ml"
    assert namespaced[("Deployment", "other")] == "elsewhere"


def test_fixed_replicas_with_cpu_fallback_get_an_autoscaler_for_the_fallback_alone() -> None:
    from infra_inference.wire.policy import AutoscalerConfig

    objects = render_stack({"pools": {"gpu": {**BASE, "gpu_type": "l4", "sharing": {
        "strategy": "time-slicing", "replicas_per_gpu": 4}}}, "services": {"chat": {
            "pool": "gpu", "gpu_fraction": 0.25, "replicas": 3, "cpu_fallback": True,
            "model": {"uri": "https://h/m.safetensors"}, "runtime": {"max_concurrency": 6}}}})
    deployments = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "Deployment"}
    assert deployments["chat"]["replicas"] == 3
    assert "replicas" not in deployments["chat-cpu"]  # the autoscaler owns it; `pulumi up` never resets it
    [cm] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "chat-autoscaler"]
    cfg = AutoscalerConfig.model_validate(json.loads(cm["data"]["policy.json"]))
    assert (cfg.policy.min_replicas, cfg.policy.max_replicas) == (3, 3)  # the GPU side stays fixed
    assert cfg.fallback is not None
    assert (cfg.fallback.deployment, cfg.fallback.max_replicas, cfg.fallback.slots_per_replica) == ("chat-cpu", 3, 6)


def test_replica_startup_probe_waits_for_the_model_and_the_gateway_drains_like_the_replicas() -> None:
    from tests.runtime.server import user_model
    from tests.runtime.server.support import ServerProcess, request

    objects = render_stack({"services": {"chat": {"model": {"uri": "m"}}}})
    pods = {o["metadata"]["name"]: o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Deployment"}
    [server] = pods["chat"]["containers"]
    [gateway] = pods["chat-gateway"]["containers"]
    assert gateway["lifecycle"] == server["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == 600  # the 10 minutes a download may take
    # The rendered path answers 503 while the model loads (the process is up and /healthz is 200).
    user_model.LOAD.clear()
    replica = ServerProcess("--model", "tests.runtime.server.user_model:SlowLoad")
    try:
        assert request(replica.port, "GET", server["livenessProbe"]["httpGet"]["path"]).status == 200
        assert request(replica.port, "GET", startup["httpGet"]["path"]).status == 503
    finally:
        replica.kill()
