"""Bring-your-own runtime: presets and explicit fields reach the replica Deployment and the autoscaler."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra_inference.render import render_stack
from infra_inference.specs.runtimes import PRESETS


def _objects(runtime: dict[str, Any], autoscale: dict[str, Any] | None = None,
             model: dict[str, Any] | None = None) -> dict[tuple[str, str], Any]:
    service = {"model": model or {"uri": "hf://Qwen/Qwen2.5-0.5B", "name": "qwen"}, "runtime": runtime,
               "autoscale": autoscale or {"max_replicas": 4}}
    return {(o["kind"], o["metadata"]["name"]): o for o in render_stack({"services": {"chat": service}})}


def _server(objects: dict[tuple[str, str], Any]) -> dict[str, Any]:
    return objects["Deployment", "chat"]["spec"]["template"]["spec"]["containers"][0]


def test_the_vllm_preset_renders_its_image_port_probes_and_arguments() -> None:
    objects = _objects({"preset": "vllm"})
    server = _server(objects)
    assert server["image"] == PRESETS["vllm"].image
    assert server["args"] == ["--model", "hf://Qwen/Qwen2.5-0.5B", "--served-model-name", "qwen", "--port", "8000"]
    assert server["ports"] == [{"name": "http-metrics", "containerPort": 8000}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"] == {"path": "/health", "port": 8000}
    assert not [e for e in server.get("env", []) if e["name"].startswith("INFRA_INFERENCE_")]
    gateway = json.loads(objects["ConfigMap", "chat-gateway"]["data"]["gateway.json"])
    assert gateway["backends"][0]["port"] == 8000
    assert objects["Service", "chat-replicas"]["spec"]["ports"][0]["port"] == 8000


def test_triton_exports_metrics_on_its_own_port_and_the_autoscaler_scrapes_there() -> None:
    objects = _objects({"preset": "triton"}, {"max_replicas": 4, "metric": "custom", "target": 4,
                                              "custom": {"replica_metric": "nv_inference_pending_request_count"}},
                       {"uri": "s3://models/repo", "format": "onnx"})
    server = _server(objects)
    assert {p["name"]: p["containerPort"] for p in server["ports"]} == {"http": 8000, "metrics": 8002}
    assert server["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert server["args"] == ["tritonserver", "--model-repository=s3://models/repo", "--http-port=8000"]
    policy = json.loads(objects["ConfigMap", "chat-autoscaler"]["data"]["policy.json"])
    assert (policy["replica_ports"], policy["replica_metrics_ports"], policy["replica_metrics_path"]) == (
        {"chat": 8000}, {"chat": 8002}, "/metrics")
    assert policy["custom"]["replica_metric"] == "nv_inference_pending_request_count"


def test_explicit_fields_win_over_the_preset() -> None:
    server = _server(_objects({"preset": "vllm", "image": "vllm/vllm-openai:v0.6.0", "port": 9000,
                               "args": ["--model", "{model_uri}", "--port", "{port}", "--max-num-seqs", "64"]}))
    assert server["image"] == "vllm/vllm-openai:v0.6.0"
    assert server["args"] == ["--model", "hf://Qwen/Qwen2.5-0.5B", "--port", "9000", "--max-num-seqs", "64"]
    assert server["livenessProbe"]["httpGet"] == {"path": "/health", "port": 9000}


@pytest.mark.parametrize(("custom", "query"), [
    ({"replica_metric": "vllm:num_requests_waiting"}, 'sum(vllm:num_requests_waiting{namespace="inference",pod=~"chat-[a-z0-9]+-[a-z0-9]+"})'),
    ({"query": "sum(x)"}, "sum(x)"),
])
def test_keda_scales_on_the_replica_metric_summed_over_pods(custom: dict[str, str], query: str) -> None:
    objects = _objects({"preset": "vllm"}, {"engine": "keda", "metric": "custom", "target": 4, "custom": custom})
    assert objects["ScaledObject", "chat-autoscaler"]["spec"]["triggers"][0]["metadata"]["query"] == query


def test_latency_can_target_time_to_first_token() -> None:
    objects = _objects({"preset": "vllm"}, {"engine": "keda", "metric": "latency", "target": 500,
                                            "latency_of": "first-token"})
    query = objects["ScaledObject", "chat-autoscaler"]["spec"]["triggers"][0]["metadata"]["query"]
    assert "infra_inference_time_to_first_token_seconds_bucket" in query


def test_a_config_change_rolls_exactly_the_pods_that_read_that_config() -> None:
    # The gateway and autoscaler read their ConfigMap's file once, at start; max_replicas reaches both
    # (the gateway's queue is max_queue x max_replicas), so both must get new pods, and nothing else changes.
    ours = {"uri": "s3://models/qwen", "name": "qwen"}  # our runtime reads no hf:// (a SpecError)
    before, after = _objects({}, {"max_replicas": 4}, ours), _objects({}, {"max_replicas": 6}, ours)
    changed = sorted(key for key in after if after[key] != before[key])
    assert changed == [("ConfigMap", "chat-autoscaler"), ("ConfigMap", "chat-gateway"),
                       ("Deployment", "chat-autoscaler"), ("Deployment", "chat-gateway")]
    for name in ("chat-autoscaler", "chat-gateway"):
        old, new = before["Deployment", name], after["Deployment", name]
        assert old["spec"]["template"]["metadata"]["annotations"] != new["spec"]["template"]["metadata"]["annotations"]
        for d in (old, new):  # the pod template's checksum is the whole change
            del d["spec"]["template"]["metadata"]["annotations"]
        assert old == new
