"""What a GpuPool puts in the cluster, and how pods find its nodes."""

from __future__ import annotations

from infra_inference.plan.components import PoolPlan
from infra_inference.render.common import Obj
from infra_inference.render.nvidia import device_plugin, device_plugin_config, mps_control_daemon
from infra_inference.specs.pool import POOL_LABEL, GpuPoolSpec


def node_labels(name: str, spec: GpuPoolSpec) -> dict[str, str]:
    """Labels the pool's nodes carry (set by the cloud node pool; by you on existing nodes)."""
    out = {POOL_LABEL: name, "nvidia.com/gpu.present": "true", **spec.labels}
    if spec.sharing.strategy == "mig" and spec.cloud != "gke":
        # The GPU operator's mig-manager partitions every GPU of a node carrying this label.
        out["nvidia.com/mig.config"] = f"all-{spec.sharing.mig_profile}"
    elif spec.gpu_operator:
        # The operator keeps its own device plugin off these nodes: the pool's serves its sharing config.
        out["nvidia.com/gpu.deploy.device-plugin"] = "false"
    return out


def node_selector(name: str) -> dict[str, str]:
    return {POOL_LABEL: name}


def tolerations(spec: GpuPoolSpec) -> list[Obj]:
    return [{"key": t.key, "operator": "Equal", "value": t.value, "effect": t.effect}
            for t in spec.effective_taints]


def pool_objects(plan: PoolPlan) -> list[Obj]:
    """The node software a pool's sharing needs, where no one else brings it.

    GKE installs and configures its own device plugin (and MPS daemon, and
    MIG partitions). On eks/existing, MIG is the GPU operator's (its
    mig-manager partitions, its device plugin serves the profiles; the spec
    requires `gpu_operator`); every other strategy gets the pool's own device
    plugin with its config, and MPS the control daemon besides.
    """
    name, spec = plan.name, plan.spec
    if spec.cloud == "gke" or spec.sharing.strategy == "mig":
        return []
    out = device_plugin(f"{name}-device-plugin", config=device_plugin_config(spec),
                        node_selector=node_selector(name), tolerations=tolerations(spec))
    if spec.sharing.strategy == "mps":
        out.append(mps_control_daemon(f"{name}-mps-control-daemon", node_selector=node_selector(name),
                                      tolerations=tolerations(spec)))
    return out
