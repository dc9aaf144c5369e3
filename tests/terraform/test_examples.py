"""examples/terraform with the real CLI, offline: formatted, valid, and the GKE settings equal the Pulumi pool's."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

import infra_inference as ii
from infra_inference.terraform.resources import DATA_SOURCES
from tests.support.mocks import run_program
from tests.support.terraform import EXAMPLES, terraform_or_skip, workdir_with

SETTINGS = DATA_SOURCES["infra_inference_gpu_pool_settings"][0]
GKE = EXAMPLES / "gke-l4-pool"


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
def test_example_is_formatted(example: str) -> None:
    out = subprocess.run([terraform_or_skip(), "fmt", "-check", "-diff", "-recursive", str(EXAMPLES / example)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout


def test_quickstart_validates_offline(terraform_home: Path, tmp_path: Path) -> None:
    tf = workdir_with(tmp_path, terraform_home, "quickstart")
    assert "The configuration is valid." in tf.run("validate").stdout


def test_gke_example_reads_only_attributes_the_data_source_has() -> None:
    # (google's provider cannot be installed offline, so `terraform validate` cannot check gke.tf.)
    text = (GKE / "gke.tf").read_text()
    direct = re.findall(r"data\.infra_inference_gpu_pool_settings\.l4\.(\w+)", text)
    via_local = re.findall(r"local\.gke\.(\w+)", text)
    gke = SETTINGS.attribute("gke").nested
    assert gke is not None and direct and via_local
    assert set(direct) <= {a.name for a in SETTINGS.attributes}
    assert set(via_local) <= {a.name for a in gke.attributes}


def pulumi_node_pool(pool: dict[str, Any]) -> dict[str, Any]:
    run = run_program(lambda: ii.GpuPool(pool["name"], {k: v for k, v in pool.items() if k != "name"}) and None)
    [np] = run.of_type("gcp:container/nodePool:NodePool")
    return np.inputs


def test_gke_settings_are_what_the_pulumi_gpu_pool_creates(terraform_home: Path, tmp_path: Path) -> None:
    versions = ('terraform {\n  required_providers {\n    infra = { source = "infra-inference/infra-inference" }\n'
                '  }\n}\nvariable "region" { default = "us-central1" }\nvariable "cluster" { default = "prod" }\n')
    tf = workdir_with(tmp_path, terraform_home, **{"versions.tf": versions, "pool.tf": (GKE / "pool.tf").read_text()})
    tf.run("plan", "-out=plan.bin", "-input=false")
    shown = json.loads(tf.run("show", "-json", "plan.bin").stdout)
    [data] = [r["values"] for r in shown["prior_state"]["values"]["root_module"]["resources"]
              if r["type"] == "infra_inference_gpu_pool_settings"]

    pool = {"name": "l4", "cloud": "gke", "cluster": "prod", "location": "us-central1",
            "zones": ["us-central1-a", "us-central1-b"], "gpu_type": "l4", "max_nodes": 3, "spot": True,
            "image_streaming": True, "sharing": {"strategy": "time-slicing", "replicas_per_gpu": 4}}
    np = pulumi_node_pool(pool)
    cfg = np["nodeConfig"]
    [acc] = cfg["guestAccelerators"]
    gke = data["gke"]
    assert data["machine_type"] == cfg["machineType"] == "g2-standard-8"
    assert data["labels"] == cfg["labels"]
    assert data["taints"] == cfg["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert (gke["accelerator_type"], gke["accelerator_count"]) == (acc["type"], acc["count"]) == ("nvidia-l4", 1)
    assert {"gpuSharingStrategy": gke["gpu_sharing_strategy"], "maxSharedClientsPerGpu":
            gke["max_shared_clients_per_gpu"]} == acc["gpuSharingConfig"]
    assert gke["gpu_driver_version"] == acc["gpuDriverInstallationConfig"]["gpuDriverVersion"]
    assert gke["node_locations"] == np["nodeLocations"]
    assert (gke["total_min_node_count"], gke["total_max_node_count"], gke["location_policy"]) == (
        np["autoscaling"]["totalMinNodeCount"], np["autoscaling"]["totalMaxNodeCount"],
        np["autoscaling"]["locationPolicy"])
    assert gke["image_streaming"] is cfg["gcfsConfig"]["enabled"] is True
    assert gke["oauth_scopes"] == cfg["oauthScopes"] and data["eks"] is None
    assert gke["workload_metadata_mode"] == cfg["workloadMetadataConfig"]["mode"] == "GKE_METADATA"


def hcl_blocks() -> list[tuple[str, str]]:
    docs = Path(__file__).resolve().parents[2] / "sdk-docs"
    return [(f"{p.name}#{i}", m.group(1)) for p in sorted(docs.glob("*.md"))
            for i, m in enumerate(re.finditer(r"^```hcl\n(.*?)^```", p.read_text(), re.S | re.M))]


@pytest.mark.parametrize(("where", "code"), hcl_blocks(), ids=lambda v: v if "#" in str(v) else "")
def test_hcl_block_in_docs_is_valid_formatted_hcl(where: str, code: str) -> None:
    out = subprocess.run([terraform_or_skip(), "fmt", "-"], input=code, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr  # parses
    assert out.stdout == code, f"{where} is not as `terraform fmt` writes it"


def test_eks_settings_are_what_the_pulumi_gpu_pool_creates() -> None:
    from tf.gen import tfplugin_pb2 as pb
    from tf.utils import read_dynamic_value, to_dynamic_value

    from infra_inference.terraform.protocol import Provider

    pool = {"cloud": "eks", "location": "us-east-1", "gpu_type": "a10g", "max_nodes": 4, "spot": True}
    req = pb.ReadDataSource.Request(type_name="infra_inference_gpu_pool_settings",
                                    config=to_dynamic_value({"name": "a10g", **pool}))
    data = read_dynamic_value(Provider().ReadDataSource(req, None).state)
    run = run_program(lambda: ii.GpuPool("a10g", {**pool, "cluster": "prod", "node_role_arn": "arn:aws:iam::1:role/n",
                                                  "subnet_ids": ["subnet-1"]}) and None)
    [ng] = run.of_type("aws:eks/nodeGroup:NodeGroup")
    [lt] = run.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    eks = data["eks"]
    assert (eks["instance_types"], eks["ami_type"], eks["capacity_type"]) == (
        ng.inputs["instanceTypes"], ng.inputs["amiType"], ng.inputs["capacityType"]) == (
        ["g5.xlarge"], "AL2023_x86_64_NVIDIA", "SPOT")
    assert (eks["min_size"], eks["max_size"]) == (ng.inputs["scalingConfig"]["minSize"],
                                                  ng.inputs["scalingConfig"]["maxSize"])
    assert data["labels"] == ng.inputs["labels"] and data["taints"] == ng.inputs["taints"]
    options = lt.inputs["metadataOptions"]
    assert eks["metadata_options"] == {"http_endpoint": options["httpEndpoint"], "http_tokens": options["httpTokens"],
                                       "http_put_response_hop_limit": options["httpPutResponseHopLimit"]}
    assert data["gke"] is None
