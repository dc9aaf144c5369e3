"""What makes MPS and MIG real on eks/existing clusters: the node software each strategy needs, rendered or required."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import yaml

from infra_inference.render import render_stack
from tests.test_examples_and_schema import KUBERNETES_MINOR

POOL = {"cloud": "existing", "cluster": "c", "gpu_type": "a100-80gb", "max_nodes": 1}


def _objects(**pool: Any) -> dict[tuple[str, str], dict[str, Any]]:
    objects = render_stack({"pools": {"gpu": {**POOL, **pool}}})
    for o in objects:
        kubernetes_validate.validate(o, KUBERNETES_MINOR, strict=True)
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def test_mps_pool_brings_the_control_daemon_beside_its_device_plugin() -> None:
    objects = _objects(sharing={"strategy": "mps", "replicas_per_gpu": 4})
    plugin = objects[("DaemonSet", "gpu-device-plugin")]["spec"]["template"]["spec"]
    daemon = objects[("DaemonSet", "gpu-mps-control-daemon")]["spec"]["template"]["spec"]
    config = yaml.safe_load(objects[("ConfigMap", "gpu-device-plugin")]["data"]["config.yaml"])
    assert config["sharing"]["mps"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]
    # Both on the pool's nodes only, reading the same config, sharing the node's MPS pipe directory.
    assert plugin["nodeSelector"] == daemon["nodeSelector"] == {"infra-inference.dev/pool": "gpu"}
    [ctr] = daemon["containers"]
    assert ctr["command"] == ["mps-control-daemon"]
    assert {"name": "CONFIG_FILE", "value": "/config/config.yaml"} in ctr["env"]
    assert {"name": "config", "configMap": {"name": "gpu-device-plugin"}} in daemon["volumes"]
    mps_root = {v["name"]: v["hostPath"]["path"] for v in daemon["volumes"] if "hostPath" in v}
    assert mps_root == {v["name"]: v["hostPath"]["path"] for v in plugin["volumes"] if v["name"].startswith("mps")}
    assert {"name": "MPS_ROOT", "value": mps_root["mps-root"]} in plugin["containers"][0]["env"]
    assert daemon["initContainers"][0]["command"] == ["mps-control-daemon", "mount-shm"]


def test_time_slicing_pool_has_no_mps_daemon() -> None:
    objects = _objects(sharing={"strategy": "time-slicing", "replicas_per_gpu": 4})
    assert ("DaemonSet", "gpu-device-plugin") in objects
    assert ("DaemonSet", "gpu-mps-control-daemon") not in objects
    plugin = objects[("DaemonSet", "gpu-device-plugin")]["spec"]["template"]["spec"]
    assert not [v for v in plugin["volumes"] if v["name"].startswith("mps")]


def test_mig_pool_is_the_gpu_operators_partitioned_by_its_node_label() -> None:
    from infra_inference.plan.components import plan_pool
    from infra_inference.render.pool import node_labels

    objects = _objects(sharing={"strategy": "mig", "mig_profile": "1g.10gb"}, gpu_operator=True)
    assert not [k for k in objects if k[0] == "DaemonSet"]  # the operator's plugin serves nvidia.com/mig-1g.10gb
    plan = plan_pool("gpu", {**POOL, "sharing": {"strategy": "mig", "mig_profile": "1g.10gb"}, "gpu_operator": True})
    assert node_labels("gpu", plan.spec)["nvidia.com/mig.config"] == "all-1g.10gb"  # mig-manager's named config


def test_gpu_operator_keeps_its_device_plugin_off_a_time_sliced_pool() -> None:
    from infra_inference.plan.components import plan_pool
    from infra_inference.render.pool import node_labels

    args = {**POOL, "sharing": {"strategy": "time-slicing", "replicas_per_gpu": 2}, "gpu_operator": True}
    assert node_labels("gpu", plan_pool("gpu", args).spec)["nvidia.com/gpu.deploy.device-plugin"] == "false"
    assert ("DaemonSet", "gpu-device-plugin") in _objects(**{k: v for k, v in args.items() if k not in POOL})
