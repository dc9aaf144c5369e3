"""Every validation rule of DESIGN.md and the issue: a clear SpecError naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra_inference.decide.packing import slots_per_replica
from infra_inference.errors import SpecError
from infra_inference.plan.components import plan_policy, plan_pool, plan_service
from infra_inference.specs.pool import GpuPoolSpec
from infra_inference.specs.service import InferenceServiceSpec

POOL = {"cloud": "existing", "cluster": "c", "gpu_type": "l4", "max_nodes": 2,
        "sharing": {"strategy": "time-slicing", "replicas_per_gpu": 4}}
MODEL = {"uri": "file:///m"}


def paths_of(fn: Any) -> list[str]:
    with pytest.raises(SpecError) as err:
        fn()
    return err.value.paths


POOL_CASES = [
    ({"min_nodes": 3, "max_nodes": 2}, "min_nodes"),
    ({"cloud": "gke", "location": "us-central1", "zones": ["europe-west4-a"]}, "zones[0]"),
    ({"cloud": "eks", "location": "us-east-1", "zones": ["us-west-2a"], "node_role_arn": "a", "subnet_ids": ["s"]},
     "zones[0]"),
    ({"cloud": "gke", "location": "us-central1", "gpus_per_node": 3}, "gpus_per_node"),
    ({"cloud": "eks", "location": "us-east-1", "machine_type": "g5.xlarge", "gpu_type": "a10g", "gpus_per_node": 4,
      "node_role_arn": "a", "subnet_ids": ["s"]}, "gpus_per_node"),
    ({"cloud": "eks", "location": "us-east-1"}, "node_role_arn"),
    ({"cloud": "gke", "location": "us-central1", "gpu_type": "a10g"}, "gpu_type"),
    ({"sharing": {"strategy": "time-slicing", "replicas_per_gpu": 1}}, "sharing.replicas_per_gpu"),
    ({"sharing": {"strategy": "time-slicing", "replicas_per_gpu": 49}}, "sharing.replicas_per_gpu"),
    ({"gpu_type": "a100-40gb", "gpus_per_node": 8, "sharing": {"strategy": "mig", "mig_profile": "1g.10gb"}},
     "sharing.mig_profile"),
    ({"gpu_type": "h100-80gb", "gpus_per_node": 8, "sharing": {"strategy": "mig", "mig_profile": "1g.5gb"}},
     "sharing.mig_profile"),
    ({"sharing": {"strategy": "mig", "mig_profile": "1g.10gb"}}, "sharing.strategy"),
    ({"gpu_type": "b200"}, "gpu_type"),
    ({"colour": "blue"}, "colour"),
]


@pytest.mark.parametrize(("override", "path"), POOL_CASES)
def test_pool_rule_names_its_field(override: dict[str, Any], path: str) -> None:
    assert path in paths_of(lambda: plan_pool("p", {**POOL, **override}))


@pytest.mark.parametrize(("gpu", "profile", "slots"), [("a100-40gb", "1g.5gb", 7), ("a100-80gb", "1g.10gb", 7),
                                                        ("h100-80gb", "3g.40gb", 2)])
def test_mig_profiles_valid_for_their_gpu_give_their_instance_count(gpu: str, profile: str, slots: int) -> None:
    pool = plan_pool("p", {**POOL, "gpu_type": gpu, "sharing": {"strategy": "mig", "mig_profile": profile},
                           "gpu_operator": True})
    assert pool.spec.slots_per_gpu == slots
    assert pool.spec.gpu_resource == f"nvidia.com/mig-{profile}"


def test_all_problems_of_a_spec_are_reported_at_once() -> None:
    bad = {**POOL, "min_nodes": 5, "max_nodes": 2, "sharing": {"strategy": "mps", "replicas_per_gpu": 99}}
    assert set(paths_of(lambda: plan_pool("p", bad))) == {"min_nodes", "sharing.replicas_per_gpu"}


def svc(pool_over: dict[str, Any] | None = None, **args: Any) -> Any:
    pool = plan_pool("p", {**POOL, **(pool_over or {})})
    return lambda: plan_service("s", {"model": MODEL, **args}, pool)


SERVICE_CASES = [
    (svc({"sharing": {"strategy": "none"}}, gpu_fraction=0.25), "gpu_fraction"),
    (svc(gpu_fraction=0.3), "gpu_fraction"),
    (svc(gpu_fraction=1.5), "gpu_fraction"),
    (svc(gpu_fraction=0), "gpu_fraction"),
    (svc(gpus=1), "gpus"),
    (svc({"sharing": {"strategy": "none"}}, gpus=2), "gpus"),  # one L4 per node
    (svc(gpu_fraction=0.25, autoscale={"min_replicas": 3, "max_replicas": 2}), "autoscale.min_replicas"),
    (svc(gpu_fraction=0.25, autoscale={"step": 5, "max_replicas": 4}), "autoscale.step"),
    (svc(gpu_fraction=0.25, autoscale={"metric": "latency", "target": 100, "min_replicas": 0,
                                       "scale_to_zero_after_s": 60, "max_replicas": 4}),
     "autoscale.scale_to_zero_after_s"),
    (svc(gpu_fraction=0.25, autoscale={"max_replicas": 9}), "autoscale.max_replicas"),  # 9 > 8 slots
    (svc(gpu_fraction=0.25, canary={"model": MODEL, "traffic_percent": 120}), "canary.traffic_percent"),
    (svc(gpu_fraction=0.25, variants={"a": {"model": MODEL, "weight": 60}, "b": {"model": MODEL, "weight": 30}}),
     "variants"),
    (svc(gpu_fraction=0.25, replicas=2, autoscale={"max_replicas": 4}), "replicas"),
    (svc(gpu_fraction=0.25, mode="batch"), "batch"),
    (svc(gpu_fraction=0.25, runtime={"env": {"INFRA_INFERENCE_PORT": "1"}}), "runtime.env.INFRA_INFERENCE_PORT"),
    (svc(gpu_fraction=0.25, autoscale={"engine": "hpa", "max_replicas": 4},
         canary={"model": MODEL, "traffic_percent": 5}), "autoscale.engine"),
]


@pytest.mark.parametrize(("build", "path"), SERVICE_CASES)
def test_service_rule_names_its_field(build: Any, path: str) -> None:
    assert path in paths_of(build)


def test_gpu_utilization_metric_on_cpu_only_service_is_rejected() -> None:
    build = lambda: plan_service("s", {"model": MODEL, "autoscale": {"metric": "gpu-utilization"}}, None)  # noqa: E731
    assert paths_of(build) == ["autoscale.metric"]


def test_standalone_policy_needs_exactly_one_target() -> None:
    assert paths_of(lambda: plan_policy("p", {"metric": "concurrency"}, None)) == ["deployment"]


@pytest.mark.parametrize("metric", ["concurrency", "throughput", "latency"])
def test_keda_on_a_gateway_metric_needs_a_gateway(metric: str) -> None:
    """A bare Deployment has no gateway: KEDA's query would select series nothing exports."""
    args = {"deployment": "legacy", "engine": "keda", "metric": metric, "target": 5}
    with pytest.raises(SpecError) as err:
        plan_policy("p", args, None)
    assert err.value.paths == ["metric"]
    assert "gpu-utilization, cpu-utilization or custom" in str(err.value)
    # The same metric with a gateway in front, and a replica-side metric without one, are fine.
    plan_policy("p", {k: v for k, v in args.items() if k != "deployment"}, plan_service("s", {"model": MODEL}, None))
    plan_policy("p", {**args, "metric": "custom", "custom": {"replica_metric": "vllm:num_requests_waiting"}}, None)


@pytest.mark.parametrize("metric", ["concurrency", "gpu-utilization", "cpu-utilization"])
def test_native_on_an_existing_deployment_needs_a_custom_query(metric: str) -> None:
    """The native autoscaler reads a gateway and the replicas' Service; a bare Deployment has neither, and the
    defaults ({"deployment": "api"}) would plan an autoscaler that never reads a value."""
    with pytest.raises(SpecError) as err:
        plan_policy("p", {"deployment": "legacy", "metric": metric, "target": 50}, None)
    assert err.value.paths == ["engine"]
    assert "use engine hpa or keda, a custom query" in str(err.value)
    with pytest.raises(SpecError):
        plan_policy("p", {"deployment": "legacy", "metric": "custom", "target": 5,
                          "custom": {"replica_metric": "vllm:num_requests_waiting"}}, None)
    # A Prometheus query needs neither; the same metric on an engine that reads Prometheus is fine.
    plan_policy("p", {"deployment": "legacy", "metric": "custom", "target": 5, "custom": {"query": "sum(up)"}}, None)
    plan_policy("p", {"deployment": "legacy", "metric": metric, "target": 50, "engine": "hpa"}, None)


@given(replicas=st.integers(2, 48), gpus=st.integers(1, 8), k=st.integers(1, 48))
def test_fraction_k_over_n_takes_exactly_k_slots_or_is_rejected(replicas: int, gpus: int, k: int) -> None:
    pool = GpuPoolSpec.parse({**POOL, "gpus_per_node": gpus,
                              "sharing": {"strategy": "time-slicing", "replicas_per_gpu": replicas}})
    fraction = k / replicas
    if fraction > 1:
        return
    spec = InferenceServiceSpec.parse({"name": "s", "model": MODEL, "gpu_fraction": fraction})
    slots, problems = slots_per_replica(spec, pool)
    assert (slots, problems) == (k, []) if k <= pool.slots_per_node else problems


@given(fraction=st.floats(0.001, 1.0), replicas=st.integers(2, 48))
def test_granted_slots_never_exceed_the_fraction_asked(fraction: float, replicas: int) -> None:
    pool = GpuPoolSpec.parse({**POOL, "sharing": {"strategy": "time-slicing", "replicas_per_gpu": replicas}})
    spec = InferenceServiceSpec.parse({"name": "s", "model": MODEL, "gpu_fraction": fraction})
    slots, problems = slots_per_replica(spec, pool)
    if not problems:
        assert abs(slots / replicas - fraction) <= 1e-3 / replicas + 1e-9
        assert 1 <= slots <= pool.slots_per_node


def test_format_the_builtin_runtime_cannot_serve_needs_a_runtime_image() -> None:
    onnx = {"uri": "s3://m", "format": "onnx"}
    assert paths_of(lambda: plan_service("s", {"model": onnx}, None)) == ["model.format"]
    plan_service("s", {"model": onnx, "runtime": {"preset": "triton", "image": "nvcr.io/nvidia/tritonserver:24.08-py3"}},
                 None)


def test_a_foreign_image_must_say_what_it_speaks_and_runs() -> None:
    runtime = {"image": "nvcr.io/nvidia/tritonserver:24.08-py3", "batching": {"max_batch_size": 4, "max_wait_ms": 1}}
    assert sorted(paths_of(lambda: plan_service("s", {"model": MODEL, "runtime": runtime}, None))) == [
        "runtime.args", "runtime.batching", "runtime.protocol"]
    plan_service("s", {"model": MODEL, "runtime": {"image": "my/server:1", "protocol": "raw", "args": [],
                                                   "port": 9000, "readiness_path": "/ready"}}, None)


@pytest.mark.parametrize(("runtime", "path"), [
    ({"preset": "vllm", "args": ["--model", "{model}"]}, "runtime.args[1]"),
    ({"preset": "vllm", "readiness_path": "health"}, "runtime.readiness_path"),
    ({"preset": "vllm", "port": 80}, "runtime.port"),
    ({"protocol": "raw"}, "runtime.protocol"),
    ({"preset": "sglang"}, "runtime.preset"),
])
def test_bad_runtime_contract_fields_are_named(runtime: dict, path: str) -> None:
    assert paths_of(lambda: plan_service("s", {"model": MODEL, "runtime": runtime}, None)) == [path]


def test_a_preset_refuses_a_format_its_server_cannot_load() -> None:
    onnx = {"uri": "s3://m", "format": "onnx"}
    assert paths_of(lambda: plan_service("s", {"model": onnx, "runtime": {"preset": "vllm"}}, None)) == [
        "model.format"]


def test_quantities_written_as_numbers_are_the_kubernetes_quantities() -> None:
    """`cpu: 2` in YAML is a number; Kubernetes reads it as "2", and so does the spec (not "a valid string")."""
    spec = plan_service("s", {"model": MODEL, "cpu": 2, "memory": "1Gi"}, None).spec
    assert (spec.cpu, plan_service("s", {"model": MODEL, "cpu": 0.5}, None).spec.cpu) == ("2", "0.5")
    with pytest.raises(SpecError) as err:
        plan_service("s", {"model": MODEL, "cpu": True}, None)
    assert err.value.paths == ["cpu"]
