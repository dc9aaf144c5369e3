"""The provider's RPCs in process: schemas from the specs, every SpecError as a diagnostic at its attribute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tf.gen import tfplugin_pb2 as pb
from tf.utils import read_dynamic_value, to_dynamic_value

from infra_inference.errors import SpecError, SpecProblem
from infra_inference.plan.components import plan_pool, plan_service
from infra_inference.specs.pool import GpuPoolSpec
from infra_inference.specs.service import InferenceServiceSpec
from infra_inference.terraform.docs import markdown
from infra_inference.terraform.protocol import Provider
from infra_inference.terraform.resources import RESOURCES
from tests.specs.test_validation import MODEL, POOL, POOL_CASES

DOCS = Path(__file__).resolve().parents[2] / "sdk-docs" / "terraform.md"


def plan(type_name: str, config: dict[str, Any]) -> tuple[dict[str, Any] | None, list[SpecProblem]]:
    """PlanResourceChange for a create, as Terraform sends it: the planned state or the problems."""
    req = pb.PlanResourceChange.Request(type_name=type_name, prior_state=to_dynamic_value(None),
                                        proposed_new_state=to_dynamic_value(config), config=to_dynamic_value(config))
    resp = Provider().PlanResourceChange(req, None)
    return read_dynamic_value(resp.planned_state), problems_of(list(resp.diagnostics))


def problems_of(diagnostics: list[pb.Diagnostic]) -> list[SpecProblem]:
    """The problems back from diagnostics, each path rebuilt from its protocol steps."""
    out = []
    for d in diagnostics:
        parts = []
        for s in d.attribute.steps:
            which = s.WhichOneof("selector")
            if which == "attribute_name":
                parts.append(("." if parts else "") + s.attribute_name)
            elif which == "element_key_int":
                parts.append(f"[{s.element_key_int}]")
            else:
                parts.append("." + s.element_key_string)
        out.append(SpecProblem("".join(parts), d.detail))
    return out


def expected(fn: Any) -> list[SpecProblem]:
    with pytest.raises(SpecError) as err:
        fn()
    return list(err.value.problems)


def pool_ref(pool: dict[str, Any]) -> str:
    state, problems = plan("infra_inference_gpu_pool", {"name": "p", **pool})
    assert state is not None, problems
    return state["ref"]


def test_schema_attributes_are_the_spec_fields() -> None:
    for type_name, model in (("infra_inference_gpu_pool", GpuPoolSpec),
                             ("infra_inference_service", InferenceServiceSpec)):
        names = {a.name for a in RESOURCES[type_name].schema.attributes}
        assert set(model.model_fields) <= names


def test_defaults_are_planned_and_documented() -> None:
    state, _ = plan("infra_inference_service", {"name": "s", "model": MODEL})
    assert state is not None
    assert (state["namespace"], state["cpu"], state["memory"], state["mode"]) == ("inference", "1", "4Gi", "online")
    assert state["url"] == "http://s-gateway.inference.svc.cluster.local"
    row = "| `runtime.max_concurrency` | number | optional | Requests in the model at once per replica. Default: 8. |"
    assert row in markdown()


@pytest.mark.parametrize(("override", "path"), [c for c in POOL_CASES if c[1] != "colour"])
def test_pool_rule_is_a_diagnostic_at_its_attribute(override: dict[str, Any], path: str) -> None:
    # (An unknown attribute never reaches the provider: Terraform rejects it against the schema.)
    args = {**POOL, **override}
    state, problems = plan("infra_inference_gpu_pool", {"name": "p", **args})
    assert state is None
    assert problems == expected(lambda: plan_pool("p", args))
    assert path in [p.path for p in problems]


SERVICE_CASES = [
    ({"sharing": {"strategy": "none"}}, {"gpu_fraction": 0.25}),
    ({}, {"gpu_fraction": 0.3}),
    ({}, {"gpus": 1}),
    ({}, {"gpu_fraction": 0.25, "autoscale": {"min_replicas": 3, "max_replicas": 2}}),
    ({}, {"gpu_fraction": 0.25, "autoscale": {"max_replicas": 9}}),
    ({}, {"gpu_fraction": 0.25, "canary": {"model": MODEL, "traffic_percent": 120}}),
    ({}, {"gpu_fraction": 0.25, "variants": {"a": {"model": MODEL, "weight": 60},
                                             "b": {"model": {**MODEL, "format": "onnx"}, "weight": 30}}}),
    ({}, {"gpu_fraction": 0.25, "runtime": {"env": {"INFRA_INFERENCE_PORT": "1"}}}),
    ({}, {"gpu_fraction": 0.25, "mode": "batch"}),
]


@pytest.mark.parametrize(("pool_over", "args"), SERVICE_CASES)
def test_service_rule_is_the_same_problem_at_the_same_path(pool_over: dict[str, Any], args: dict[str, Any]) -> None:
    pool = {**POOL, **pool_over}
    state, problems = plan("infra_inference_service", {"name": "s", "model": MODEL, "pool": pool_ref(pool), **args})
    assert state is None
    assert problems == expected(lambda: plan_service("s", {"model": MODEL, **args}, plan_pool("p", pool)))


def test_a_pool_id_where_a_ref_belongs_is_named() -> None:
    _, problems = plan("infra_inference_service", {"name": "s", "model": MODEL, "pool": "gpu", "gpu_fraction": 0.25})
    assert [p.path for p in problems] == ["pool"] and "infra_inference_gpu_pool.<name>.ref" in problems[0].message


def test_sdk_docs_terraform_md_is_generated_from_the_schema() -> None:
    assert DOCS.read_text() == markdown(), "regenerate: infra-inference terraform docs > sdk-docs/terraform.md"


def test_platform_standby_and_policy_rules_are_the_same_problems() -> None:
    from infra_inference.plan.components import plan_platform, plan_policy, plan_standby

    tenants = {"tenants": [{"name": "a", "gpu_quota": 1}, {"name": "a", "gpu_quota": 2}]}
    _, problems = plan("infra_inference_platform", tenants)
    assert problems == expected(lambda: plan_platform(tenants)) and problems[0].path == "tenants[1].name"

    ref = pool_ref(POOL)  # 2 nodes x 4 slots
    _, problems = plan("infra_inference_standby_pool", {"name": "w", "pool": ref, "instances": 3})
    assert problems == expected(lambda: plan_standby("w", {"instances": 3}, plan_pool("p", POOL), []))

    policy = {"deployment": "legacy", "metric": "cpu-utilization", "target": 120, "min_replicas": 0}
    _, problems = plan("infra_inference_autoscale_policy", {"name": "legacy", **policy})
    assert problems == expected(lambda: plan_policy("legacy", policy, None))
    assert {p.path for p in problems} == {"target", "min_replicas"}

    keda = {"deployment": "legacy", "metric": "concurrency", "engine": "keda"}
    _, problems = plan("infra_inference_autoscale_policy", {"name": "legacy", **keda})
    assert problems == expected(lambda: plan_policy("legacy", keda, None))
    assert [p.path for p in problems] == ["metric"]


def test_platform_prometheus_namespaces_unset_is_monitoring_and_empty_is_no_rule() -> None:
    tenants = [{"name": "t", "gpu_quota": 1}]
    rule = "networking.k8s.io/v1/NetworkPolicy/t/allow-prometheus"
    for value, rendered in ((None, True), ([], False), (["observability"], True)):
        state, problems = plan("infra_inference_platform", {"tenants": tenants, "prometheus_namespaces": value})
        assert state is not None and (rule in state["objects"]) is rendered, (value, problems)


def test_standby_default_size_follows_the_services_given() -> None:
    ref = pool_ref(POOL)
    service, _ = plan("infra_inference_service", {"name": "s", "model": MODEL, "pool": ref, "gpu_fraction": 0.5,
                                                  "autoscale": {"step": 3, "max_replicas": 4}})
    assert service is not None
    standby, problems = plan("infra_inference_standby_pool", {"name": "w", "pool": ref, "services": [service["ref"]]})
    # A step of 3 replicas x 2 slots on 4-slot (one node) placeholders: ceil(6 / 4) = 2 placeholders.
    assert standby is not None and (standby["instances"], standby["slots_per_instance"]) == (2, 4), problems


def test_validate_checks_the_spec_while_the_pool_ref_is_unknown() -> None:
    from tf.types import Unknown

    config = {"name": "s", "model": MODEL, "pool": Unknown, "gpu_fraction": 0.25,
              "canary": {"model": MODEL, "traffic_percent": 120}}
    req = pb.ValidateResourceConfig.Request(type_name="infra_inference_service", config=to_dynamic_value(config))
    problems = problems_of(list(Provider().ValidateResourceConfig(req, None).diagnostics))
    assert [p.path for p in problems] == ["canary.traffic_percent"]
    config["canary"] = None  # valid on its own; the pool-dependent rules wait for the plan
    req = pb.ValidateResourceConfig.Request(type_name="infra_inference_service", config=to_dynamic_value(config))
    assert list(Provider().ValidateResourceConfig(req, None).diagnostics) == []
