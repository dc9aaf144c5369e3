"""The real Pulumi engine plans, creates, updates and deletes our components on the local control plane.

The CLI and the Kubernetes and YAML plugins come from ``tools/pulumi`` (built
on first use when Go is installed; without Go these tests skip with the
reason). State lives in a temporary ``file://`` backend; nothing is
downloaded. Python programs run as Automation API inline programs (the engine
drives this process's language runtime); the YAML program reaches our
components through the `pulumi-resource-infra-inference` plugin.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from pulumi import automation as auto

from tests.support.controlplane import ControlPlane, gpu_pool_nodes
from infra_inference.render.common import ANNOTATION_CONFIG_SHA256, LABEL_NAME, config_checksum
from infra_inference.render.stack import render_stack
from infra_inference.specs.pool import POOL_LABEL
from tests.integration.cluster_helpers import wait_until
from tests.support.examples import EXAMPLES_DIR
from tests.support.pulumi_engine import ToolsUnavailable, engine_env, find_tools

pytestmark = pytest.mark.controlplane

QUICKSTART = EXAMPLES_DIR / "quickstart"
GOLDEN = Path(__file__).parent / "golden" / "quickstart-max-replicas.preview.json"
NAMESPACE = "inference"  # the quickstart's
K8S = "kubernetes:"


@pytest.fixture(scope="module")
def tools() -> Path:
    try:
        return find_tools(build=os.environ.get("INFRA_INFERENCE_PULUMI_BUILD", "1") != "0")
    except ToolsUnavailable as e:
        pytest.skip(f"Pulumi engine unavailable: {e}")


@pytest.fixture
def env(tools: Path, tmp_path: Path, controlplane: ControlPlane) -> dict[str, str]:
    return engine_env(tools, tmp_path, controlplane.kubeconfig)


@pytest.fixture
def gpu_nodes(controlplane: ControlPlane) -> Iterator[None]:
    """Two kwok nodes shaped like the quickstart's pool `gpu` (L4, 4 time-sliced slots), so every pod gets Ready."""
    names = controlplane.add_nodes(gpu_pool_nodes("qs-gpu", nodes=2, gpu_slots=4, labels={POOL_LABEL: "gpu"}))
    yield
    controlplane.delete_nodes(names)


def quickstart(edit: Callable[[str], str] = lambda src: src) -> Callable[[], None]:
    """The quickstart's own __main__.py as an inline program, after `edit` (a user's change to the file)."""
    source = edit((QUICKSTART / "__main__.py").read_text())
    return lambda: exec(compile(source, str(QUICKSTART / "__main__.py"), "exec"), {"__name__": "__main__"})


def python_stack(tools: Path, env: dict[str, str], work: Path, program: Callable[[], None]) -> auto.Stack:
    work.mkdir(parents=True, exist_ok=True)
    opts = auto.LocalWorkspaceOptions(
        work_dir=str(work), pulumi_home=env["PULUMI_HOME"], env_vars=env,
        pulumi_command=auto.PulumiCommand(root=str(tools.parent)), secrets_provider="passphrase",
        project_settings=auto.ProjectSettings(name="quickstart", runtime="python",
                                              backend=auto.ProjectBackend(url=env["PULUMI_BACKEND_URL"])))
    stack = auto.create_stack("dev", project_name="quickstart", program=program, opts=opts)
    # Update ConfigMaps in place: by default the provider replaces one on any data change.
    stack.set_config("kubernetes:enableConfigMapMutable", auto.ConfigValue("true"))
    return stack


class Steps:
    """The engine's resource steps of one operation, from its event stream."""

    def __init__(self) -> None:
        self.events: list[auto.events.StepEventMetadata] = []

    def __call__(self, event: auto.events.EngineEvent) -> None:
        if event.resource_pre_event is not None:
            self.events.append(event.resource_pre_event.metadata)

    def ops(self, kind_prefix: str = K8S) -> dict[str, str]:
        """URN -> op for the resources of that type prefix (other than `same`)."""
        return {m.urn: m.op.value for m in self.events if m.type.startswith(kind_prefix) and m.op.value != "same"}

    def k8s_objects(self) -> list[dict[str, Any]]:
        return [_ints(dict(m.new.inputs)) for m in self.events
                if m.type.startswith(K8S) and not m.type.startswith("pulumi:providers") and m.new is not None]


def _ints(value: Any) -> Any:
    """Numbers cross the engine as doubles; 2.0 was 2 in the program."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


# Fields the Kubernetes provider leaves out of its planned inputs when they are
# false, the API's default (what the apiserver stores is the same either way).
FALSE_DEFAULTS = {("PriorityClass", "globalDefault"), ("Service", "spec.publishNotReadyAddresses")}


def as_planned(o: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(o))
    for kind, path in FALSE_DEFAULTS:
        *parents, leaf = path.split(".")
        holder = out if out["kind"] == kind else None
        for p in parents:
            holder = holder.get(p) if holder is not None else None
        if holder is not None and holder.get(leaf) is False:
            del holder[leaf]
    return out


def _key(o: dict[str, Any]) -> tuple[str, str, str]:
    return o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]


def ours_in_namespace(api: client.ApiClient, ns: str) -> list[str]:
    """Objects the quickstart creates in `ns` that still exist (namespaced kinds it renders)."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    found = [f"Deployment/{d.metadata.name}" for d in apps.list_namespaced_deployment(ns).items]
    found += [f"DaemonSet/{d.metadata.name}" for d in apps.list_namespaced_daemon_set(ns).items]
    found += [f"Service/{s.metadata.name}" for s in core.list_namespaced_service(ns).items]
    found += [f"ConfigMap/{c.metadata.name}" for c in core.list_namespaced_config_map(ns).items
              if c.metadata.name != "kube-root-ca.crt"]
    found += [f"ServiceAccount/{s.metadata.name}" for s in core.list_namespaced_service_account(ns).items
              if s.metadata.name != "default"]
    return found


def diff_digest(preview_json: str) -> dict[str, Any]:
    """What a reviewer reads in `pulumi preview --diff --json`, without ids, timestamps and stack paths."""
    doc = json.loads(preview_json)
    steps = [{"op": s["op"], "resource": s["urn"].split("::", 2)[2],
              "diffReasons": sorted(s.get("diffReasons") or []),
              "detailedDiff": s.get("detailedDiff") or {}}
             for s in doc["steps"] if s["op"] != "same"]
    # The engine lists steps as they run, concurrently: order them by child name (ConfigMap, then the
    # Deployment it rolls).
    steps.sort(key=lambda step: step["resource"].rsplit("::", 1)[1])
    # Unchanged resources are not part of the change (their count moves with every new object we render).
    return {"steps": steps, "changeSummary": {op: n for op, n in doc["changeSummary"].items() if op != "same"}}


def test_quickstart_preview_up_one_field_update_and_destroy(
        tools: Path, env: dict[str, str], tmp_path: Path, api: client.ApiClient, gpu_nodes: None) -> None:
    stack = python_stack(tools, env, tmp_path / "py", quickstart())
    try:
        lifecycle(stack, api)
    except BaseException:
        stack.destroy()  # leave the shared control plane as we found it
        raise


def lifecycle(stack: auto.Stack, api: client.ApiClient) -> None:
    expected = render_stack(yaml.safe_load((QUICKSTART / "spec.yaml").read_text()))

    # preview: exactly the objects `infra-inference render` gives, nothing else.
    planned = Steps()
    preview = stack.preview(on_event=planned)
    assert sorted(planned.k8s_objects(), key=_key) == sorted(map(as_planned, expected), key=_key)
    assert set(planned.ops().values()) == {"create"}
    assert preview.change_summary.get("create") == len(expected) + 5  # + the stack, the provider, 3 components

    # up: the apiserver has every object (the engine waited for each Deployment's rollout).
    up = stack.up(on_event=Steps())
    assert up.summary.result == "succeeded", up.stderr
    apps = client.AppsV1Api(api)
    for o in (o for o in expected if o["kind"] == "Deployment"):
        got = apps.read_namespaced_deployment(o["metadata"]["name"], o["metadata"]["namespace"])
        assert got.spec.template.spec.priority_class_name == o["spec"]["template"]["spec"].get("priorityClassName")

    # One field changed in the program: the objects it reaches are updated, nothing replaced or created.
    # max_replicas bounds the autoscaler's policy and sizes the gateway's queue (max_queue x max_replicas);
    # each of the two Deployments carries its config's checksum on its pod template, so it rolls.
    stack.workspace.program = quickstart(lambda src: src.replace('"max_replicas": 8', '"max_replicas": 6'))
    changed = Steps()
    diff = stack.preview(on_event=changed, diff=True, json=True)
    assert {urn.rsplit("::", 1)[1]: op for urn, op in changed.ops().items()} == {
        "chat-autoscaler-configmap": "update", "chat-gateway-configmap": "update",
        "chat-autoscaler-deployment": "update", "chat-gateway-deployment": "update"}
    if os.environ.get("INFRA_INFERENCE_UPDATE_GOLDEN"):  # after a deliberate change of what a diff shows
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(diff_digest(diff.stdout), indent=2) + "\n")
    assert diff_digest(diff.stdout) == json.loads(GOLDEN.read_text())

    up = stack.up(on_event=Steps())
    assert up.summary.result == "succeeded", up.stderr
    assert up.summary.resource_changes == {"update": 4, "same": up.summary.resource_changes["same"]}
    policy = client.CoreV1Api(api).read_namespaced_config_map("chat-autoscaler", NAMESPACE)
    assert json.loads(policy.data["policy.json"])["max_replicas"] == 6
    # The running pods were replaced by ones that started with the new config (the engine waited for
    # the rollouts): every gateway and autoscaler pod carries the new config's checksum.
    for name in ("chat-autoscaler", "chat-gateway"):
        config = client.CoreV1Api(api).read_namespaced_config_map(name, NAMESPACE)
        wanted = config_checksum({"data": config.data})[ANNOTATION_CONFIG_SHA256]
        pods = client.CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector=f"{LABEL_NAME}={name}").items
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        assert live and {p.metadata.annotations[ANNOTATION_CONFIG_SHA256] for p in live} == {wanted}, name

    # destroy: nothing of ours is left (the namespace itself goes too).
    destroyed = stack.destroy()
    assert destroyed.summary.result == "succeeded", destroyed.stderr
    wait_until(lambda: not client.CoreV1Api(api).list_namespace(field_selector=f"metadata.name={NAMESPACE}").items
               or not ours_in_namespace(api, NAMESPACE), f"nothing of the quickstart left in {NAMESPACE}")
    assert not client.SchedulingV1Api(api).list_priority_class(
        label_selector="app.kubernetes.io/part-of=infra-inference,app.kubernetes.io/component=priority").items


def test_spec_error_fails_preview_and_up_naming_the_field_and_creates_nothing(
        tools: Path, env: dict[str, str], tmp_path: Path, api: client.ApiClient) -> None:
    # 0.3 of an L4 is not a whole number of the pool's quarter-GPU slots. The service is declared
    # after the platform and the pool, which are valid.
    stack = python_stack(tools, env, tmp_path / "bad", quickstart(
        lambda src: src.replace('"gpu_fraction": 0.25', '"gpu_fraction": 0.3')))
    with pytest.raises(auto.errors.CommandError) as failed:
        stack.preview()
    assert "gpu_fraction" in str(failed.value)
    # The Automation API's up() runs `pulumi up --skip-preview`: no preview stops it first, and the
    # engine applies each resource as its registration arrives. The components' gate held the
    # platform's and the pool's registrations until the program had run, then failed them.
    with pytest.raises(auto.errors.CommandError) as failed:
        stack.up()
    assert "gpu_fraction: 0.3 of a GPU" in str(failed.value)
    recorded = stack.export_stack().deployment.get("resources") or []
    assert [r["type"] for r in recorded] in ([], ["pulumi:pulumi:Stack"])  # not one of ours
    ours = "app.kubernetes.io/part-of=infra-inference"
    assert not client.CoreV1Api(api).list_config_map_for_all_namespaces(label_selector=ours).items
    assert not client.SchedulingV1Api(api).list_priority_class(label_selector=ours).items


def test_yaml_program_declares_pool_and_service_through_the_provider(
        env: dict[str, str], tmp_path: Path, api: client.ApiClient, gpu_nodes: None) -> None:
    work = tmp_path / "yaml"
    shutil.copytree(EXAMPLES_DIR / "yaml-quickstart", work)

    def pulumi(*args: str) -> str:
        done = subprocess.run(["pulumi", *args], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"pulumi {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    pulumi("stack", "init", "dev")
    try:
        pulumi("up", "--yes", "--skip-preview")
    except BaseException:
        subprocess.run(["pulumi", "destroy", "--yes", "--skip-preview"], cwd=work, env=env, capture_output=True)
        raise
    # The service's replicas landed on the pool passed by reference: its node selector came from the pool.
    chat = client.AppsV1Api(api).read_namespaced_deployment("chat", NAMESPACE)
    assert chat.spec.template.spec.node_selector == {POOL_LABEL: "gpu"}
    outputs = json.loads(pulumi("stack", "output", "--json"))
    assert outputs["url"].startswith("http://chat-gateway.")
    pulumi("destroy", "--yes", "--skip-preview")
    wait_until(lambda: not client.CoreV1Api(api).list_namespace(field_selector=f"metadata.name={NAMESPACE}").items
               or not ours_in_namespace(api, NAMESPACE), f"nothing of the YAML quickstart left in {NAMESPACE}")
