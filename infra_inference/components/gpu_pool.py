"""GpuPool: GPU nodes (GKE node pool, EKS node group, or nodes you run) and their sharing."""


from typing import Any, TypedDict

import pulumi

from infra_inference.components import gate, kube
from infra_inference.components.clouds import eks, gke
from infra_inference.components.inputs import split, validated
from infra_inference.components.references import engine_outputs
from infra_inference.plan.components import PoolPlan, plan_pool
from infra_inference.render.pool import node_selector, pool_objects, tolerations
from infra_inference.specs.pool import DEFERRABLE, PENDING, GpuPoolSpec


class SharingArgs(TypedDict, total=False):
    strategy: str
    """none (default: whole GPUs), time-slicing, mps or mig."""
    replicas_per_gpu: int
    """Slots per GPU for time-slicing and mps, 2..48."""
    mig_profile: str
    """MIG profile for mig: 1g.5gb.. on A100-40GB; 1g.10gb.. on A100-80GB and H100-80GB."""


class TaintArgs(TypedDict, total=False):
    key: str
    """Taint key. Required."""
    value: str
    """Taint value. Default empty."""
    effect: str
    """NoSchedule (default), PreferNoSchedule or NoExecute."""


class GpuPoolArgs(TypedDict, total=False):
    cloud: str
    """gke, eks or existing (nodes you already run, labelled infra-inference.dev/pool=<name>). Required."""
    cluster: pulumi.Input[str]
    """Name of the cluster the nodes join. Required. May be an Output."""
    location: str
    """GKE region or zone, or AWS region. Required for gke and eks."""
    zones: list[str]
    """Zones inside `location` for the nodes. Default: the cloud's choice."""
    gpu_type: str
    """t4, l4, a10g, a100-40gb, a100-80gb or h100-80gb. Required."""
    gpus_per_node: int
    """GPUs per node. Default 1."""
    machine_type: str
    """Machine/instance type. Default per cloud and GPU (l4: g2-standard-8 on GKE, a10g: g5.xlarge on EKS)."""
    min_nodes: int
    """Fewest nodes, total across zones. Default 0."""
    max_nodes: int
    """Most nodes, total across zones. Default 1."""
    spot: bool
    """Spot/preemptible capacity. Default false."""
    sharing: SharingArgs
    """How a GPU is split into slots. Default strategy none."""
    labels: dict[str, str]
    """Extra node labels."""
    taints: list[TaintArgs]
    """Node taints. Default nvidia.com/gpu=present:NoSchedule."""
    node_role_arn: pulumi.Input[str]
    """EKS only, required there: IAM role of the nodes. May be an Output."""
    subnet_ids: pulumi.Input[list[str]]
    """EKS only, required there: subnets of the nodes. May be an Output."""
    image_streaming: bool
    """GKE only: image streaming, so large serving images start before they are fully pulled. Default false."""
    gpu_operator: bool
    """eks/existing: NVIDIA's GPU operator runs on these nodes. Required for MIG (its mig-manager partitions the
    GPUs, its device plugin serves them); other strategies keep its device plugin off the pool's nodes. Default
    false."""
    node_service_account: pulumi.Input[str]
    """GKE only: email of the nodes' service account; give one with only the logging, monitoring and
    image-pull roles. Default the project's compute default account (with GKE's narrow default scopes).
    May be an Output."""


class GpuPool(pulumi.ComponentResource):
    """GPU nodes plus what makes their GPUs schedulable as slots.

    Creates a GKE `NodePool` or an EKS `NodeGroup` (nothing for cloud
    "existing"), and on eks/existing the NVIDIA device plugin with this pool's
    sharing config, pinned to the pool's nodes.
    """

    pulumi_type = "infra-inference:index:GpuPool"

    node_selector: pulumi.Output[dict[str, str]]
    """Node selector that lands a pod on this pool."""
    tolerations: pulumi.Output[list[dict[str, Any]]]
    """Tolerations for the pool's taints."""
    gpu_resource: pulumi.Output[str]
    """Extended resource a pod requests, e.g. nvidia.com/gpu or nvidia.com/mig-1g.10gb."""
    slots_per_node: pulumi.Output[int]
    """Schedulable GPU slots per node after sharing."""
    max_slots: pulumi.Output[int]
    """Slots at max_nodes."""
    spec: pulumi.Output[dict[str, Any]]
    """The validated arguments with defaults filled in (cluster, node_role_arn, subnet_ids and node_service_account,
    which may be Outputs, left out)."""

    def __init__(self, name: str, args: GpuPoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if opts is not None and opts.urn is not None:
            # A reference to a pool declared elsewhere (another language's program): plan from its outputs.
            super().__init__(self.pulumi_type, name, {}, opts)
            # The spec was checked when the pool was created; read it back (the cloud references it
            # leaves out are not needed to place services on the pool).
            self.plan = PoolPlan(name, GpuPoolSpec.model_validate({**engine_outputs(opts.urn)["spec"],
                                                                   "cluster": PENDING}))
            self._set_outputs()
            return
        subject = f"GpuPool {name!r}"
        with gate.validating():
            plain, deferred = split(dict(args), DEFERRABLE, subject)
            self.plan: PoolPlan = plan_pool(name, plain, subject)  # raises SpecError before anything exists
        super().__init__(self.pulumi_type, name, {}, gate.held(opts))
        spec = self.plan.spec
        arg = validated(plain, deferred, lambda full: GpuPoolSpec.parse(full, subject=subject))
        child = pulumi.ResourceOptions(parent=self)
        if spec.cloud == "gke":
            gke.node_pool(name, spec, arg, child)
        elif spec.cloud == "eks":
            eks.node_group(name, spec, arg, child)
        kube.create(name, pool_objects(self.plan), child)
        self.register_outputs(self._set_outputs())

    def _set_outputs(self) -> dict[str, pulumi.Output[Any]]:
        spec = self.plan.spec
        self.node_selector = pulumi.Output.from_input(node_selector(self.plan.name))
        self.tolerations = pulumi.Output.from_input(tolerations(spec))
        self.gpu_resource = pulumi.Output.from_input(spec.gpu_resource)
        self.slots_per_node = pulumi.Output.from_input(spec.slots_per_node)
        self.max_slots = pulumi.Output.from_input(spec.max_slots)
        self.spec = pulumi.Output.from_input(spec.model_dump(mode="json", exclude=set(DEFERRABLE)))
        return {"node_selector": self.node_selector, "tolerations": self.tolerations, "gpu_resource": self.gpu_resource,
                "slots_per_node": self.slots_per_node, "max_slots": self.max_slots, "spec": self.spec}
