"""The executable plugin serves the schema sdk-docs/ documents, and the Pulumi CLI can load it offline."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra_inference.provider import schema
from tests.support.pulumi_engine import REPO, ToolsUnavailable, engine_env, find_tools

DOCUMENTED = REPO / "sdk-docs" / "schema.json"
PLUGIN = Path(sys.executable).parent / "pulumi-resource-infra-inference"


def test_documented_schema_is_the_inferred_one() -> None:
    assert json.loads(DOCUMENTED.read_text()) == schema(), (
        "sdk-docs/schema.json drifted from the components; regenerate it: make sdk-schema")


def test_references_between_components_point_into_this_schema() -> None:
    served = schema()
    resources = served["resources"]
    assert resources["infra-inference:index:InferenceService"]["inputProperties"]["pool"]["$ref"] == \
        "#/resources/infra-inference:index:GpuPool"
    assert resources["infra-inference:index:StandbyPool"]["inputProperties"]["services"]["items"]["$ref"] == \
        "#/resources/infra-inference:index:InferenceService"
    assert resources["infra-inference:index:AutoscalePolicy"]["inputProperties"]["service"]["$ref"] == \
        "#/resources/infra-inference:index:InferenceService"
    assert not set(served["types"]) & set(resources)  # no component doubles as a plain object type
    assert "dependencies" not in served  # a package never depends on itself


def test_yaml_program_in_the_docs_is_the_example_the_engine_test_runs() -> None:
    doc = (REPO / "sdk-docs" / "multi-language.md").read_text()
    program = (REPO / "examples" / "yaml-quickstart" / "Pulumi.yaml").read_text()
    assert f"```yaml pulumi-program\n{program}```" in doc


def test_diff_in_the_docs_is_the_golden_file() -> None:
    doc = (REPO / "sdk-docs" / "preview-diffs.md").read_text()
    golden = (REPO / "tests" / "integration" / "golden" / "quickstart-max-replicas.preview.json").read_text()
    assert f"```json\n{golden}```" in doc


def test_plugin_serves_the_documented_schema(tmp_path: Path) -> None:
    """What the CLI reads from the running plugin is what it reads from sdk-docs/schema.json.

    The CLI normalizes a schema as it loads it (drops empty lists, item
    descriptions), so both sides go through `pulumi package get-schema`.
    """
    try:
        tools = find_tools()
    except ToolsUnavailable as e:
        pytest.skip(f"Pulumi CLI unavailable: {e}")
    assert shutil.which("pulumi-resource-infra-inference", path=str(PLUGIN.parent)), "console script not installed"
    env = engine_env(tools, tmp_path, tmp_path / "no-kubeconfig")

    def get_schema(source: Path) -> dict[str, object]:
        done = subprocess.run(["pulumi", "package", "get-schema", str(source)], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    served = get_schema(PLUGIN)
    assert served["name"] == "infra-inference" and len(served["resources"]) == 5
    assert served == get_schema(DOCUMENTED)
