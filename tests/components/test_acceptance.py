"""The declarative layer's acceptance checks, under Pulumi's own mocks."""

from __future__ import annotations

from typing import Any

import pytest

import infra_inference as ii
from infra_inference.components.gate import Withheld
from tests.support.mocks import Recorder, Run, run_program

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SHARED = {"strategy": "time-slicing", "replicas_per_gpu": 4}


def pool_args(**over: Any) -> dict[str, Any]:
    return {"cloud": "existing", "cluster": "dev", "gpu_type": "l4", "max_nodes": 2, "sharing": SHARED, **over}


def containers(run: Run, name: str) -> list[dict[str, Any]]:
    spec = run.one(DEPLOYMENT, name).inputs["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def test_quarter_gpu_on_time_sliced_pool_requests_exactly_one_slot_on_the_pools_nodes() -> None:
    def program() -> dict[str, Any]:
        pool = ii.GpuPool("gpu", pool_args())
        ii.InferenceService("chat", {"pool": pool, "gpu_fraction": 0.25, "model": {"uri": "file:///m"}})
        return {"selector": pool.node_selector, "tolerations": pool.tolerations, "resource": pool.gpu_resource,
                "slots": pool.slots_per_node, "max": pool.max_slots}

    run = run_program(program)
    pod = run.one(DEPLOYMENT, "chat-deployment").inputs["spec"]["template"]["spec"]
    server = pod["containers"][0]
    resource = run.outputs["resource"]
    assert resource == "nvidia.com/gpu"
    assert server["resources"]["requests"][resource] == "1"
    assert server["resources"]["limits"][resource] == "1"
    assert pod["nodeSelector"] == run.outputs["selector"]
    assert pod["tolerations"] == run.outputs["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"} in pod[
        "tolerations"]
    assert (run.outputs["slots"], run.outputs["max"]) == (4, 8)
    env = {e["name"]: e["value"] for e in server["env"]}
    assert env["INFRA_INFERENCE_GPU_MEMORY_FRACTION"] == "0.25"


def test_fraction_on_unshared_pool_raises_spec_error_naming_gpu_fraction_before_any_resource() -> None:
    created: list[str] = []

    def program() -> None:
        pool = ii.GpuPool("gpu", pool_args(sharing={"strategy": "none"}))
        created.append("pool")
        ii.InferenceService("chat", {"pool": pool, "gpu_fraction": 0.25, "model": {"uri": "file:///m"}})
        created.append("service")

    engine = Recorder()
    with pytest.raises(Withheld) as err:
        run_program(program, engine)
    assert isinstance(err.value.failure, ii.SpecError) and err.value.failure.paths == ["gpu_fraction"]
    assert "gpu_fraction: 0.25 of a GPU" in str(err.value)  # what the program's run reports
    assert created == ["pool"]
    # The pool was declared fine, but nothing of it reached the engine: `up --skip-preview` creates nothing.
    assert engine.resources == []


def test_a_spec_error_the_program_catches_holds_nothing_back() -> None:
    def program() -> None:
        pool = ii.GpuPool("gpu", pool_args(sharing={"strategy": "none"}))
        try:
            ii.InferenceService("chat", {"pool": pool, "gpu_fraction": 0.25, "model": {"uri": "file:///m"}})
        except ii.SpecError:  # a program may fall back to another variant
            ii.InferenceService("chat", {"pool": pool, "gpus": 1, "model": {"uri": "file:///m"}})

    run = run_program(program)
    assert run.one(DEPLOYMENT, "chat-deployment").inputs["spec"]["template"]["spec"]["containers"][0]["resources"][
        "limits"]["nvidia.com/gpu"] == "1"
    assert run.of_type("kubernetes:apps/v1:DaemonSet")  # the pool's device plugin


def test_standby_placeholders_sit_below_everything_and_hold_the_slots_asked() -> None:
    def program() -> None:
        ii.InferencePlatform("platform", {})
        pool = ii.GpuPool("gpu", pool_args(max_nodes=3))
        ii.StandbyPool("warm", {"pool": pool, "instances": 2, "slots_per_instance": 3})

    run = run_program(program)
    classes = {r.inputs["metadata"]["name"]: r.inputs for r in run.of_type("kubernetes:scheduling.k8s.io/v1:PriorityClass")}
    standby = classes["inference-standby"]
    assert -10 <= standby["value"] <= -1
    assert standby["preemptionPolicy"] == "Never"
    assert classes["inference-online"]["value"] > classes["inference-batch"]["value"] \
        > classes["training"]["value"] > standby["value"]
    balloons = run.one(DEPLOYMENT, "warm-balloons-deployment").inputs["spec"]
    assert balloons["replicas"] == 2
    pod = balloons["template"]["spec"]
    assert pod["priorityClassName"] == "inference-standby"
    assert pod["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "3"
    assert pod["nodeSelector"] == {"infra-inference.dev/pool": "gpu"}


def test_standby_defaults_to_one_scaling_step_of_the_pools_services() -> None:
    def program() -> dict[str, Any]:
        pool = ii.GpuPool("gpu", pool_args(max_nodes=4))
        # step 3 x 2 slots = 6 slots = 2 placeholders of one 4-slot node each.
        chat = ii.InferenceService("chat", {"pool": pool, "gpu_fraction": 0.5, "model": {"uri": "file:///m"},
                                            "autoscale": {"step": 3, "max_replicas": 6}})
        warm = ii.StandbyPool("warm", {"pool": pool, "services": [chat]})
        return {"instances": warm.instances, "slots": warm.slots_per_instance}

    assert run_program(program).outputs == {"instances": 2, "slots": 4}


def test_standby_above_pool_capacity_is_rejected() -> None:
    def program() -> None:
        pool = ii.GpuPool("gpu", pool_args(max_nodes=1))
        ii.StandbyPool("warm", {"pool": pool, "instances": 2})

    with pytest.raises(Withheld) as err:  # the pool declared before it is held back with it
        run_program(program)
    assert err.value.failure.paths == ["instances"]


def test_scale_to_zero_with_gpu_utilization_names_scale_to_zero_after_s() -> None:
    with pytest.raises(ii.SpecError) as err:
        run_program(lambda: ii.AutoscalePolicy("p", {"deployment": "d", "metric": "gpu-utilization",
                                                     "min_replicas": 0, "scale_to_zero_after_s": 300}) and None)
    assert "scale_to_zero_after_s" in err.value.paths


def test_keda_on_a_gateway_metric_without_a_service_names_metric() -> None:
    with pytest.raises(ii.SpecError) as err:
        run_program(lambda: ii.AutoscalePolicy("p", {"deployment": "d", "metric": "throughput", "target": 10,
                                                     "engine": "keda"}) and None)
    assert err.value.paths == ["metric"]


def test_hpa_engine_on_cpu_utilization_carries_the_windows_in_behavior() -> None:
    run = run_program(lambda: ii.AutoscalePolicy("api", {
        "deployment": "api", "metric": "cpu-utilization", "target": 60, "engine": "hpa",
        "scale_up_window_s": 15, "scale_down_window_s": 120, "max_replicas": 5}) and None)
    [hpa] = run.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    spec = hpa.inputs["spec"]
    assert spec["scaleTargetRef"]["name"] == "api"
    assert spec["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 15
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 120
    assert spec["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}


def test_native_autoscaler_role_touches_only_its_own_deployment_scale() -> None:
    def program() -> None:
        pool = ii.GpuPool("gpu", pool_args())
        ii.InferenceService("chat", {"pool": pool, "gpu_fraction": 0.25, "model": {"uri": "file:///m"},
                                     "autoscale": {"max_replicas": 8}})

    run = run_program(program)
    assert not run.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    role = run.one("kubernetes:rbac.authorization.k8s.io/v1:Role", "chat-autoscaler-role").inputs
    assert role["metadata"]["namespace"] == "inference"
    scale = [r for r in role["rules"] if "deployments/scale" in r["resources"]]
    assert scale == [{"apiGroups": ["apps"], "resources": ["deployments/scale"], "resourceNames": ["chat"],
                      "verbs": ["get", "patch", "update"]}]
    for rule in role["rules"]:
        assert not set(rule["verbs"]) & {"create", "delete", "deletecollection", "*"}
        assert "secrets" not in rule["resources"]
    reads = {res for r in role["rules"] if "resourceNames" not in r for res in r["resources"]}
    assert reads == {"endpointslices"}
    # The inline autoscale's objects are the service's own children (no nested component to keep in step).
    assert run.parents["chat-autoscaler-role"] == "chat"


def test_every_container_is_hardened_with_requests_and_limits() -> None:
    def program() -> None:
        ii.InferencePlatform("platform", {"tenants": [{"name": "team", "gpu_quota": 2}]})
        pool = ii.GpuPool("gpu", pool_args())
        ii.InferenceService("chat", {"pool": pool, "gpu_fraction": 0.25, "model": {"uri": "file:///m"},
                                     "autoscale": {"max_replicas": 8}})
        ii.StandbyPool("warm", {"pool": pool, "instances": 1, "warm_models": ["s3://m"], "prepull_images": ["x"]})

    run = run_program(program)
    checked = 0
    for r in run.resources:
        spec = r.inputs.get("spec", {})
        pod = spec.get("template", {}).get("spec") if isinstance(spec, dict) else None
        if not pod:
            continue
        for c in pod.get("initContainers", []) + pod["containers"]:
            checked += 1
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, c["name"]
            assert sc["readOnlyRootFilesystem"] is True, c["name"]
            assert "ALL" in sc["capabilities"]["drop"], c["name"]
            assert c["resources"]["requests"] and c["resources"]["limits"], c["name"]
            # Documented exceptions: the device plugin (kubelet socket) and the cache chown init container.
            if c["name"] not in ("nvidia-device-plugin", "cache-owner"):
                assert sc["runAsNonRoot"] is True, c["name"]
    assert checked >= 8


def test_outputs_have_the_contract_names() -> None:
    def program() -> dict[str, Any]:
        svc = ii.InferenceService("cpu-svc", {"model": {"uri": "file:///m"}, "namespace": "apps"})
        return {"url": svc.url, "ns": svc.namespace, "dep": svc.deployment_name, "gw": svc.gateway_name}

    assert run_program(program).outputs == {"url": "http://cpu-svc-gateway.apps.svc.cluster.local", "ns": "apps",
                                            "dep": "cpu-svc", "gw": "cpu-svc-gateway"}


def test_changing_one_field_changes_one_child_and_keeps_every_name() -> None:
    def program(concurrency: int) -> Run:
        def body() -> None:
            pool = ii.GpuPool("gpu", pool_args())
            ii.InferenceService("chat", {"pool": pool, "gpu_fraction": 0.25, "model": {"uri": "file:///m"},
                                         "runtime": {"max_concurrency": concurrency}, "replicas": 2})
        return run_program(body)

    # Registration order is asynchronous, so compare by (type, name).
    before, after = ({(r.type, r.name): r.inputs for r in run.resources} for run in (program(8), program(16)))
    assert before.keys() == after.keys()
    changed = {key[1] for key, inputs in before.items() if after[key] != inputs}
    # The replica pods read max_concurrency; the gateway config holds it per backend, and the
    # gateway's pod template carries that config's checksum, so its pods restart to read it.
    assert changed == {"chat-deployment", "chat-gateway-configmap", "chat-gateway-deployment"}


def test_gke_pool_builds_a_node_pool_with_sharing_and_streaming() -> None:
    run = run_program(lambda: ii.GpuPool("l4", {
        "cloud": "gke", "cluster": "c", "location": "us-central1", "zones": ["us-central1-a"], "gpu_type": "l4",
        "max_nodes": 3, "spot": True, "image_streaming": True, "sharing": SHARED}) and None)
    [np] = run.of_type("gcp:container/nodePool:NodePool")
    cfg = np.inputs["nodeConfig"]
    assert cfg["machineType"] == "g2-standard-8"
    [acc] = cfg["guestAccelerators"]
    assert acc["type"] == "nvidia-l4" and acc["count"] == 1
    assert acc["gpuSharingConfig"] == {"gpuSharingStrategy": "TIME_SHARING", "maxSharedClientsPerGpu": 4}
    assert acc["gpuDriverInstallationConfig"] == {"gpuDriverVersion": "LATEST"}
    assert cfg["gcfsConfig"] == {"enabled": True} and cfg["spot"] is True
    assert np.inputs["autoscaling"]["totalMaxNodeCount"] == 3
    assert np.inputs["nodeLocations"] == ["us-central1-a"]
    assert not run.of_type("kubernetes:apps/v1:DaemonSet")  # GKE brings its own device plugin
    # Pods reach the GKE metadata server (their own Workload Identity), never the node's credentials,
    # and the node's own scopes are GKE's narrow defaults, not cloud-platform.
    assert cfg["workloadMetadataConfig"] == {"mode": "GKE_METADATA"}
    assert "https://www.googleapis.com/auth/cloud-platform" not in cfg["oauthScopes"]
    assert "https://www.googleapis.com/auth/logging.write" in cfg["oauthScopes"]


def test_gke_pool_runs_as_the_given_node_service_account() -> None:
    import pulumi

    account = "gpu-nodes@proj.iam.gserviceaccount.com"
    run = run_program(lambda: ii.GpuPool("l4", {
        "cloud": "gke", "cluster": "c", "location": "us-central1", "gpu_type": "l4",
        "node_service_account": pulumi.Output.from_input(account)}) and None)
    [np] = run.of_type("gcp:container/nodePool:NodePool")
    assert np.inputs["nodeConfig"]["serviceAccount"] == account


def test_eks_pool_builds_a_gpu_node_group_and_checks_output_args_in_apply() -> None:
    import pulumi

    def program() -> None:
        ii.GpuPool("a10g", {"cloud": "eks", "cluster": pulumi.Output.from_input("prod"), "location": "us-east-1",
                            "gpu_type": "a10g", "max_nodes": 4, "node_role_arn": "arn:aws:iam::1:role/n",
                            "subnet_ids": pulumi.Output.from_input(["subnet-1"])})

    run = run_program(program)
    [ng] = run.of_type("aws:eks/nodeGroup:NodeGroup")
    assert ng.inputs["instanceTypes"] == ["g5.xlarge"]
    assert ng.inputs["amiType"] == "AL2023_x86_64_NVIDIA"
    assert ng.inputs["clusterName"] == "prod" and ng.inputs["subnetIds"] == ["subnet-1"]
    assert ng.inputs["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    # IMDSv2 only, one hop: pods (a hop beyond the node) cannot take the node role's credentials.
    [lt] = run.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert lt.inputs["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required",
                                            "httpPutResponseHopLimit": 1}
    assert ng.inputs["launchTemplate"]["id"] == f"{lt.name}-id"  # the mocks' id for it
    assert run.parents[lt.name] == run.parents[ng.name]


def test_bad_output_value_fails_inside_apply() -> None:
    import pulumi

    def program() -> None:
        ii.GpuPool("a10g", {"cloud": "eks", "cluster": "prod", "location": "us-east-1", "gpu_type": "a10g",
                            "node_role_arn": "arn", "subnet_ids": pulumi.Output.from_input([])})

    # Pulumi wraps errors raised while it resolves inputs; our message is kept whole.
    with pytest.raises(ValueError, match=r"subnet_ids: required for cloud 'eks'"):
        run_program(program)


def test_output_in_a_shaping_field_is_a_clear_error() -> None:
    import pulumi

    with pytest.raises(ii.SpecError) as err:
        run_program(lambda: ii.GpuPool("p", pool_args(max_nodes=pulumi.Output.from_input(2))) and None)
    assert err.value.paths == ["max_nodes"] and "plain value" in str(err.value)


def test_workloads_are_created_after_the_service_accounts_and_config_they_mount() -> None:
    def program() -> None:
        pool = ii.GpuPool("gpu", pool_args())
        ii.InferenceService("chat", {"pool": pool, "gpu_fraction": 0.25, "model": {"uri": "file:///m"},
                                     "autoscale": {"max_replicas": 8}})

    for _ in range(3):  # registration is concurrent; the order must hold every time
        order = [r.name for r in run_program(program).resources]
        assert order.index("chat-deployment") > order.index("chat-serviceaccount")
        assert order.index("chat-gateway-deployment") > order.index("chat-gateway-configmap")
        assert order.index("chat-autoscaler-deployment") > order.index("chat-autoscaler-rolebinding")
