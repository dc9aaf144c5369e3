"""The render <-> runtime contract (wire/): what render/ writes, the runtime reads, and what it queries, the runtime exports."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from infra_inference.render import render_stack
from infra_inference.render.autoscale import keda_query
from infra_inference.runtime.autoscaler.cli import GATEWAY_KEY, discovery_services
from infra_inference.runtime.gateway import GatewayConfig
from infra_inference.runtime.metrics import prom
from infra_inference.runtime.server.settings import ServerSettings
from infra_inference.specs.autoscale import ScalingSpec
from infra_inference.wire import metrics
from infra_inference.wire.names import ENV_PREFIX, GATEWAY_ADMIN_PORT, GATEWAY_CONFIG, GATEWAY_PORT, POLICY_CONFIG
from infra_inference.wire.policy import AutoscalerConfig
from infra_inference.wire.replica import ReplicaEnv
from tests.runtime.gateway.support import backend, config, gateway_in_thread
from tests.runtime.gateway.test_gateway import infer
from tests.runtime.server.support import request, server_in_thread
from tests.test_docs import blocks

POOL = {"cloud": "existing", "cluster": "c", "gpu_type": "l4", "max_nodes": 2,
        "sharing": {"strategy": "time-slicing", "replicas_per_gpu": 4}}
# A canary on another port and batching: every optional part of the contract is exercised.
SERVICE = {"pool": "gpu", "gpu_fraction": 0.25, "namespace": "apps",
           "model": {"uri": "s3://models/chat", "format": "safetensors"},
           "runtime": {"max_concurrency": 6, "max_queue": 32, "timeout_s": 12.5, "port": 9000,
                       "batching": {"max_batch_size": 4, "max_wait_ms": 2.5}},
           "canary": {"traffic_percent": 10, "runtime": {"max_concurrency": 2, "max_queue": 8, "port": 9100}},
           "autoscale": {"metric": "concurrency", "min_replicas": 0, "max_replicas": 5, "scale_to_zero_after_s": 60}}


def objects() -> list[dict[str, Any]]:
    return render_stack({"pools": {"gpu": POOL}, "services": {"chat": SERVICE}})


def one(kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objects() if o["kind"] == kind and o["metadata"]["name"] == name)


def test_rendered_gateway_json_loads_into_gateway_config_and_names_real_services() -> None:
    cfg = GatewayConfig.model_validate_json(one("ConfigMap", "chat-gateway")["data"][GATEWAY_CONFIG])
    services = {o["metadata"]["name"]: o for o in objects() if o["kind"] == "Service"}
    assert [(b.deployment, b.port, b.weight) for b in cfg.backends] == [("chat", 9000, 90), ("chat-canary", 9100, 10)]
    for b in cfg.backends:
        assert services[b.service]["spec"]["ports"][0]["port"] == b.port  # the headless Service it watches
    assert cfg.port == GATEWAY_PORT == services["chat-gateway"]["spec"]["ports"][0]["targetPort"]
    assert cfg.admin_port == GATEWAY_ADMIN_PORT  # on the pods only: the Service's one port is the service port
    assert len(services["chat-gateway"]["spec"]["ports"]) == 1
    assert cfg.timeout_s == 12.5 and cfg.namespace == "apps"


def test_rendered_policy_json_carries_each_replica_port_to_the_autoscalers_discovery() -> None:
    cfg = AutoscalerConfig.model_validate_json(one("ConfigMap", "chat-autoscaler")["data"][POLICY_CONFIG])
    assert cfg.replica_ports == {"chat": 9000, "chat-canary": 9100}
    assert discovery_services(cfg) == {"chat-replicas": ("chat", 9000), "chat-canary-replicas": ("chat-canary", 9100),
                                       "chat-gateway": (GATEWAY_KEY, GATEWAY_ADMIN_PORT)}


@pytest.mark.parametrize("deployment", ["chat", "chat-canary"])
def test_rendered_replica_env_loads_into_server_settings(deployment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pod = one("Deployment", deployment)["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = ServerSettings()
    port = pod["containers"][0]["ports"][0]["containerPort"]
    assert settings.port == port and settings.model == "safetensors-mlp" and settings.model_uri == "s3://models/chat"
    assert settings.gpu_memory_fraction == 0.25 and str(settings.cache_dir) == env[f"{ENV_PREFIX}CACHE_DIR"]
    # The canary brings its own runtime: no batching, the default timeout.
    expected = {"chat": (6, 32, 4, 2.5, 12.5), "chat-canary": (2, 8, 1, 0.0, 30.0)}[deployment]
    assert (settings.max_concurrency, settings.max_queue, settings.max_batch_size, settings.max_wait_ms,
            settings.timeout_s) == expected
    # Every variable render writes is one the server reads (a renamed field fails here).
    assert {n.removeprefix(ENV_PREFIX).lower() for n in env if n.startswith(ENV_PREFIX)} <= set(ServerSettings.model_fields)


def test_every_replica_env_field_is_a_server_setting() -> None:
    assert set(ReplicaEnv.model_fields) <= set(ServerSettings.model_fields)


def queried_series() -> set[str]:
    """Every series the render layer's scaling objects read: KEDA queries and the HPA adapter's rules."""
    out = {m.series for m in metrics.HPA_PODS_METRICS.values()}
    for metric in ("concurrency", "throughput", "latency", "gpu-utilization"):
        query = keda_query(ScalingSpec(metric=metric, min_replicas=1), "apps", "chat", "chat")
        out |= set(re.findall(r"\b(?:infra_inference_\w+|DCGM_\w+)", query))
    return out


def test_every_series_render_queries_is_exported_by_a_running_server_and_gateway() -> None:
    with server_in_thread(echo_delay_ms=1) as (replica_port, _):
        cfg = config([backend("chat", endpoints=[f"127.0.0.1:{replica_port}"])])
        with gateway_in_thread(cfg) as (gateway_port, admin_port, _):
            assert infer(gateway_port).status == 200
            exported = set(prom.parse(request(admin_port, "GET", "/metrics").body.decode()))
            exported |= set(prom.parse(request(replica_port, "GET", "/metrics").body.decode()))
    external = {metrics.DCGM_GPU_UTIL}  # NVIDIA's dcgm-exporter, installed by InferencePlatform
    queried = queried_series()
    assert {metrics.REQUESTS_TOTAL, metrics.REQUEST_DURATION_BUCKET, metrics.INFLIGHT_REQUESTS} <= queried
    assert queried - external <= exported, f"queried, not exported: {sorted(queried - external - exported)}"


def test_hpa_pods_metric_names_are_the_ones_rendered() -> None:
    svc = {**SERVICE, "autoscale": {**SERVICE["autoscale"], "engine": "hpa", "min_replicas": 1,
                                    "scale_to_zero_after_s": 0}}
    svc.pop("canary")
    hpa = next(o for o in render_stack({"pools": {"gpu": POOL}, "services": {"chat": svc}})
               if o["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"] == {"name": metrics.HPA_PODS_METRICS["concurrency"].name}


def test_the_documented_adapter_rules_serve_exactly_the_hpa_pods_metrics() -> None:
    (code,) = [c for where, c in blocks("yaml", "prometheus-adapter") if where.startswith("autoscaling.md")]
    documented = {r["name"]["as"]: (r["seriesQuery"].split("{")[0], r["metricsQuery"])
                  for r in yaml.safe_load(code)["rules"]}
    assert documented == {m.name: (m.series, m.rule) for m in metrics.HPA_PODS_METRICS.values()}
