"""The schema other languages see, inferred by Pulumi from our annotations."""

from __future__ import annotations

import json
import typing

import pytest
from pulumi.provider.experimental.analyzer import Analyzer
from pulumi.provider.experimental.schema import generate_schema

from infra_inference.provider import COMPONENTS, PACKAGE, VERSION


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def schema() -> dict:
    analyzer = Analyzer(PACKAGE)
    result = analyzer.analyze(COMPONENTS)
    return json.loads(json.dumps(generate_schema(
        PACKAGE, VERSION, None, result["component_definitions"], result["type_definitions"],
        list(result["dependencies"])).to_json()))


def test_schema_has_every_component_with_its_contract_inputs_and_outputs() -> None:
    resources = schema()["resources"]
    assert set(resources) == {f"infra-inference:index:{c.__name__}" for c in COMPONENTS}
    pool = resources["infra-inference:index:GpuPool"]
    assert pool["isComponent"] is True
    # Pulumi's schema spells properties in camelCase; every language's SDK is generated from it.
    assert {"cloud", "cluster", "gpuType", "sharing", "nodeRoleArn"} <= set(pool["inputProperties"])
    assert {"gpuResource", "slotsPerNode", "maxSlots", "nodeSelector", "tolerations"} <= set(pool["properties"])
    svc = resources["infra-inference:index:InferenceService"]["inputProperties"]
    assert {"pool", "model", "autoscale", "gpuFraction", "cpuFallback"} <= set(svc)
    assert svc["model"]["description"] == "The model. Required."


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.__name__)
def test_schema_inputs_are_exactly_the_args_typeddict_in_camel_case(component: type) -> None:
    args = typing.get_type_hints(component.__init__)["args"]
    inputs = schema()["resources"][f"infra-inference:index:{component.__name__}"]["inputProperties"]
    assert set(inputs) == {camel(k) for k in args.__annotations__}
