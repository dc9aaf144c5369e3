"""The schema other languages see, inferred by Pulumi from our annotations."""

from __future__ import annotations

import json

from pulumi.provider.experimental.analyzer import Analyzer
from pulumi.provider.experimental.schema import generate_schema

from infra_inference.provider import COMPONENTS, PACKAGE, VERSION


def test_schema_has_every_component_with_its_contract_inputs_and_outputs() -> None:
    analyzer = Analyzer(PACKAGE)
    result = analyzer.analyze(COMPONENTS)
    schema = generate_schema(PACKAGE, VERSION, None, result["component_definitions"], result["type_definitions"],
                             list(result["dependencies"])).to_json()
    resources = json.loads(json.dumps(schema))["resources"]
    pool = resources["infra-inference:index:GpuPool"]
    assert pool["isComponent"] is True
    assert {"cloud", "cluster", "gpu_type", "sharing", "node_role_arn"} <= set(pool["inputProperties"]) or \
        {"cloud", "cluster", "gpuType", "sharing", "nodeRoleArn"} <= set(pool["inputProperties"])
    outputs = set(pool["properties"])
    assert outputs & {"gpu_resource", "gpuResource"} and outputs & {"slots_per_node", "slotsPerNode"}
    svc = resources["infra-inference:index:InferenceService"]["inputProperties"]
    assert "pool" in svc and "model" in svc and "autoscale" in svc
    assert "description" in svc["model"]
    assert set(resources) == {f"infra-inference:index:{c.__name__}" for c in COMPONENTS}
