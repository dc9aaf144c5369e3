"""The real `terraform` CLI and our provider against the local control plane.

init from the implied local mirror (no registry), plan, apply of the quickstart
(the objects `infra-inference render` gives for examples/quickstart/spec.yaml),
a one-field change planned as one in-place update (checked against a golden
`terraform plan -json`), drift restored, a bad attribute failing the plan with
nothing created, an interrupted apply re-run, destroy leaving nothing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from tests.integration.cluster_helpers import wait_until
from tests.support.controlplane import ControlPlane
from tests.support.terraform import Terraform, workdir_with

from infra_inference.render import render_stack
from infra_inference.render.nvidia import NODE_SOFTWARE_NAMESPACE
from infra_inference.terraform.cluster import Cluster, key

pytestmark = pytest.mark.controlplane

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden") / "terraform_plan_max_replicas.jsonl"
# Set to regenerate the golden file after an intended change of the plan.
UPDATE_GOLDEN = os.environ.get("INFRA_INFERENCE_UPDATE_GOLDEN") == "1"


def exists(api: client.ApiClient, k: str) -> bool:
    """Whether the object of state key `k` (apiVersion/kind/namespace/name) is in the cluster."""
    return Cluster(api).get(k) is not None


def state_objects(tf: Terraform, address: str) -> dict[str, str]:
    state = json.loads(tf.run("show", "-json").stdout)
    for r in state.get("values", {}).get("root_module", {}).get("resources", []):
        if r["address"] == address:
            return r["values"]["objects"]
    return {}


def planned_changes(out: str) -> list[dict[str, Any]]:
    return [json.loads(line)["change"] for line in out.splitlines()
            if line.startswith("{") and json.loads(line).get("type") == "planned_change"]


def normalised(out: str) -> list[str]:
    """The plan's messages without their timestamps, in a stable order (refreshes run in parallel)."""
    lines = []
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("type") == "version":
            continue  # names the terraform and protocol versions of this machine
        lines.append(json.dumps({k: v for k, v in msg.items() if k != "@timestamp"}, sort_keys=True))
    return sorted(lines)


def test_quickstart_lifecycle(controlplane: ControlPlane, api: client.ApiClient, terraform_home: Path,
                              tmp_path: Path) -> None:
    tf = workdir_with(tmp_path, terraform_home, "quickstart")
    assert (tmp_path / ".terraform.lock.hcl").read_text().count("infra-inference/infra-inference") == 1
    kube = ["-var", f"kubeconfig_path={controlplane.kubeconfig}"]
    rendered = render_stack(yaml.safe_load((ROOT / "examples" / "quickstart" / "spec.yaml").read_text()))
    expected = {key(o) for o in rendered}
    try:
        plan = tf.run("plan", *kube)
        assert "Plan: 4 to add, 0 to change, 0 to destroy." in plan.stdout
        tf.run("apply", "-auto-approve", "-input=false", *kube)

        # What Terraform created is what the render path gives, and the cluster holds exactly that.
        recorded: set[str] = set()
        for address in ("infra_inference_platform.platform", "infra_inference_gpu_pool.gpu",
                        "infra_inference_service.chat", "infra_inference_standby_pool.warm"):
            recorded |= set(state_objects(tf, address))
        assert recorded == expected
        for o in rendered:
            assert Cluster(api).drift(o) is None, f"{key(o)} differs from what the render path gives"
        live = client.AppsV1Api(api).read_namespaced_deployment("chat-gateway", "inference")
        assert any(m.manager == "infra-inference" and m.operation == "Apply" for m in live.metadata.managed_fields)
        assert tf.run("plan", "-detailed-exitcode", *kube, check=False).returncode == 0  # converged

        # One field: one in-place update of the service, nothing replaced; the plan a reviewer reads.
        change = tf.run("plan", "-json", "-var", "max_replicas=6", *kube, check=False)
        assert change.returncode == 0, change.stderr
        assert [(c["resource"]["addr"], c["action"]) for c in planned_changes(change.stdout)] == \
            [("infra_inference_service.chat", "update")]
        if UPDATE_GOLDEN:
            GOLDEN.parent.mkdir(exist_ok=True)
            GOLDEN.write_text("".join(line + "\n" for line in normalised(change.stdout)))
        assert normalised(change.stdout) == GOLDEN.read_text().splitlines()
        shown = tf.run("plan", "-var", "max_replicas=6", *kube).stdout
        assert "~ max_replicas" in shown and "8 -> 6" in shown and "Plan: 0 to add, 1 to change, 0 to destroy." in shown
        tf.run("apply", "-auto-approve", "-input=false", "-var", "max_replicas=6", *kube)
        cm = client.CoreV1Api(api).read_namespaced_config_map("chat-autoscaler", "inference")
        assert json.loads(cm.data["policy.json"])["max_replicas"] == 6

        # Drift: an object deleted behind Terraform's back shows in the plan and comes back on apply.
        client.CoreV1Api(api).delete_namespaced_service("chat-gateway", "inference")
        wait_until(lambda: not exists(api, "v1/Service/inference/chat-gateway"), "chat-gateway Service gone")
        drift = tf.run("plan", "-detailed-exitcode", "-var", "max_replicas=6", *kube, check=False)
        assert drift.returncode == 2, drift.stdout + drift.stderr
        assert '"v1/Service/inference/chat-gateway"' in drift.stdout
        assert "Plan: 0 to add, 1 to change, 0 to destroy." in drift.stdout
        tf.run("apply", "-auto-approve", "-input=false", "-var", "max_replicas=6", *kube)
        assert exists(api, "v1/Service/inference/chat-gateway")
    finally:
        destroyed = tf.run("destroy", "-auto-approve", "-input=false", *kube, check=False)
    left = [k for k in expected if exists(api, k) and not k.startswith("v1/Namespace/")]
    assert left == [], destroyed.stdout + destroyed.stderr
    wait_until(lambda: not exists(api, "v1/Namespace/inference"), "namespace inference deleted")


# The provider block both configurations below start with (format fields: kubeconfig).
PROVIDER = """
terraform {{
  required_providers {{
    infra = {{ source = "infra-inference/infra-inference" }}
  }}
}}
provider "infra" {{
  kubeconfig_path = "{kubeconfig}"
}}
"""

BAD_SERVICE = PROVIDER + """\
resource "infra_inference_gpu_pool" "gpu" {{
  name     = "gpu"
  cloud    = "existing"
  cluster  = "dev"
  gpu_type = "l4"
  sharing  = {{ strategy = "time-slicing", replicas_per_gpu = 4 }}
}}
resource "infra_inference_service" "chat" {{
  name         = "chat"
  namespace    = "{namespace}"
  pool         = infra_inference_gpu_pool.gpu.ref
  gpu_fraction = {fraction}
  model        = {{ uri = "https://models.example.com/echo.safetensors" }}
}}
"""


def test_invalid_attribute_fails_the_plan_naming_it_and_creates_nothing(
        controlplane: ControlPlane, api: client.ApiClient, terraform_home: Path, tmp_path: Path,
        namespace: str) -> None:
    tf = workdir_with(tmp_path, terraform_home, **{"main.tf": BAD_SERVICE.format(
        kubeconfig=controlplane.kubeconfig, namespace=namespace, fraction=0.3)})
    out = tf.run("apply", "-auto-approve", "-input=false", check=False)
    assert out.returncode == 1
    # The SpecError's words, at the attribute, with Terraform's pointer into the file.
    assert "Error: gpu_fraction: 0.3 of a GPU is 1.2 slots on a pool with 4 slot(s) per GPU" in out.stderr
    assert "with infra_inference_service.chat" in out.stderr
    assert re.search(r"on main\.tf line \d+, in resource \"infra_inference_service\" \"chat\":", out.stderr)
    assert json.loads(tf.run("show", "-json").stdout).get("values") is None  # no state: nothing applied
    assert not exists(api, f"apps/v1/DaemonSet/{NODE_SOFTWARE_NAMESPACE}/gpu-device-plugin")
    assert client.AppsV1Api(api).list_namespaced_deployment(namespace).items == []


def test_interrupted_apply_is_rerun_to_completion_and_destroy_after_a_partial_apply(
        controlplane: ControlPlane, api: client.ApiClient, terraform_home: Path, tmp_path: Path,
        namespace: str) -> None:
    tf = workdir_with(tmp_path, terraform_home, **{"main.tf": BAD_SERVICE.format(
        kubeconfig=controlplane.kubeconfig, namespace=namespace, fraction=0.25)})
    apps = client.AppsV1Api(api)
    # A Deployment `chat` someone else made with another selector: immutable, so applying ours fails
    # after the supporting objects (ServiceAccount, ConfigMap, Services) went in.
    blocker = {"metadata": {"name": "chat"}, "spec": {
        "selector": {"matchLabels": {"app": "other"}}, "replicas": 0,
        "template": {"metadata": {"labels": {"app": "other"}},
                     "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}}
    apps.create_namespaced_deployment(namespace, blocker)
    failed = tf.run("apply", "-auto-approve", "-input=false", check=False)
    assert failed.returncode == 1 and "field is immutable" in failed.stderr
    partial = state_objects(tf, "infra_inference_service.chat")
    assert f"v1/ServiceAccount/{namespace}/chat" in partial
    assert f"apps/v1/Deployment/{namespace}/chat" not in partial
    assert all(exists(api, k) for k in partial)

    apps.delete_namespaced_deployment("chat", namespace)
    wait_until(lambda: not exists(api, f"apps/v1/Deployment/{namespace}/chat"), "the blocking Deployment gone")
    tf.run("apply", "-auto-approve", "-input=false")  # the re-run finishes the job
    complete = state_objects(tf, "infra_inference_service.chat")
    assert f"apps/v1/Deployment/{namespace}/chat" in complete and set(partial) <= set(complete)
    assert all(exists(api, k) for k in complete)

    tf.run("destroy", "-auto-approve", "-input=false")
    assert [k for k in complete if exists(api, k)] == []


CPU_SERVICE = PROVIDER + """\
import {{
  to = infra_inference_service.chat
  id = "{namespace}/chat"
}}
variable "replicas" {{
  default = 1
}}
resource "infra_inference_service" "chat" {{
  name      = "chat"
  namespace = "{namespace}"
  replicas  = var.replicas
  model     = {{ uri = "https://models.example.com/echo.safetensors" }}
}}
"""


def test_import_by_id_adopts_objects_applied_by_another_manager_and_update_prunes(
        controlplane: ControlPlane, api: client.ApiClient, terraform_home: Path, tmp_path: Path,
        namespace: str) -> None:
    from infra_inference.plan.components import plan_service
    from infra_inference.render.service import service_objects

    args = {"namespace": namespace, "replicas": 1, "model": {"uri": "https://models.example.com/echo.safetensors"}}
    objects = service_objects(plan_service("chat", args, None))
    for o in objects:
        controlplane.apply(o, field_manager="kubectl")  # e.g. applied from `infra-inference render` output
    tf = workdir_with(tmp_path, terraform_home, **{"main.tf": CPU_SERVICE.format(
        kubeconfig=controlplane.kubeconfig, namespace=namespace)})
    plan = tf.run("plan").stdout
    assert "Plan: 1 to import, 0 to add, 1 to change, 0 to destroy." in plan
    tf.run("apply", "-auto-approve", "-input=false")
    assert tf.run("plan", "-detailed-exitcode", check=False).returncode == 0
    assert set(state_objects(tf, "infra_inference_service.chat")) == {key(o) for o in objects}
    live = client.AppsV1Api(api).read_namespaced_deployment("chat", namespace)
    assert any(m.manager == "infra-inference" and m.operation == "Apply" for m in live.metadata.managed_fields)

    # Two replicas render a PodDisruptionBudget; back to one, the apply deletes it (prune).
    pdb = f"policy/v1/PodDisruptionBudget/{namespace}/chat"
    tf.run("apply", "-auto-approve", "-input=false", "-var", "replicas=2")
    assert exists(api, pdb) and pdb in state_objects(tf, "infra_inference_service.chat")
    tf.run("apply", "-auto-approve", "-input=false", "-var", "replicas=1")
    assert not exists(api, pdb) and pdb not in state_objects(tf, "infra_inference_service.chat")

    tf.run("destroy", "-auto-approve", "-input=false")
    assert [key(o) for o in objects if exists(api, key(o))] == []


def test_a_job_whose_pod_template_changed_is_replaced_by_the_real_apiserver_s_rules(
        api: client.ApiClient, namespace: str) -> None:
    """A batch service's new input is a new pod template, which the apiserver refuses in place (422, immutable):
    the provider replaces the Job, and a refresh in between reports drift instead of failing every plan."""
    def job(input_uri: str) -> dict[str, Any]:
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "score", "namespace": namespace},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
                    "name": "server", "image": "registry.k8s.io/pause:3.10", "args": ["--input", input_uri]}]}}}}

    cluster = Cluster(api)
    cluster.apply(job("s3://b/in"))
    assert cluster.drift(job("s3://b/in2")) == "changed"
    cluster.apply(job("s3://b/in2"))
    live = cluster.get(key(job("s3://b/in2")))
    assert live is not None and live["spec"]["template"]["spec"]["containers"][0]["args"] == ["--input", "s3://b/in2"]
    assert cluster.drift(job("s3://b/in2")) is None
