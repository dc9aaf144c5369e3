"""What a GpuPool puts in the cluster, and how pods find its nodes."""

from __future__ import annotations

from infra_inference.plan.components import PoolPlan
from infra_inference.render.common import Obj
from infra_inference.render.nvidia import device_plugin, device_plugin_config
from infra_inference.specs.pool import POOL_LABEL, GpuPoolSpec


def node_labels(name: str, spec: GpuPoolSpec) -> dict[str, str]:
    """Labels the pool's nodes carry (set by the cloud node pool; by you on existing nodes)."""
    out = {POOL_LABEL: name, "nvidia.com/gpu.present": "true", **spec.labels}
    if spec.sharing.strategy == "mig" and spec.cloud != "gke":
        # NVIDIA's MIG manager partitions every GPU of a node carrying this label.
        out["nvidia.com/mig.config"] = f"all-{spec.sharing.mig_profile}"
    return out


def node_selector(name: str) -> dict[str, str]:
    return {POOL_LABEL: name}


def tolerations(spec: GpuPoolSpec) -> list[Obj]:
    return [{"key": t.key, "operator": "Equal", "value": t.value, "effect": t.effect}
            for t in spec.effective_taints]


def pool_objects(plan: PoolPlan) -> list[Obj]:
    """GKE installs and configures its own device plugin; elsewhere the pool brings one with its config."""
    name, spec = plan.name, plan.spec
    if spec.cloud == "gke":
        return []
    return device_plugin(f"{name}-device-plugin", config=device_plugin_config(spec),
                         node_selector=node_selector(name), tolerations=tolerations(spec))
