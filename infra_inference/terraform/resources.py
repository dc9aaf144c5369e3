"""The five resources and the pool-settings data source: Terraform values in, planning functions, objects out.

Each resource plans with the same `plan/` function as its Pulumi
component and `infra-inference render`, and renders with the same manifest
function; nothing here decides what an object contains.

References between resources carry what the dependent needs to plan before
anything exists: a pool's `ref` is its name and arguments, a service's `ref`
its name, arguments and pool's ref. A change to the pool therefore changes
`ref`, and every service on it is planned again (its tolerations or GPU request
may follow), which a bare id would hide.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra_inference.errors import SpecError, SpecProblem
from infra_inference.render.clouds import eks_node_group, gke_node_pool
from infra_inference.render.common import Obj
from infra_inference.plan.components import (
    PoolPlan, ServicePlan, plan_platform, plan_policy, plan_pool, plan_service, plan_service_policy, plan_standby,
)
from infra_inference.plan.service import service_url
from infra_inference.render.autoscale import autoscale_objects
from infra_inference.render.platform import PRIORITY_CLASS, platform_objects
from infra_inference.render.pool import node_selector, pool_objects, tolerations
from infra_inference.render.service import service_objects
from infra_inference.render.standby import standby_objects
from infra_inference.specs.autoscale import AutoscalePolicySpec
from infra_inference.specs.base import Spec
from infra_inference.specs.platform import PlatformSpec
from infra_inference.specs.pool import DEFERRABLE, GpuPoolSpec
from infra_inference.specs.service import InferenceServiceSpec
from infra_inference.specs.standby import StandbyPoolSpec
from infra_inference.terraform.schema import Attr, Nested, Schema, object_of, output, spec_attributes
from infra_inference.terraform.cluster import digest, key
from infra_inference.wire.names import gateway_name

PREFIX = "infra_inference_"


@dataclass(frozen=True)
class Planned:
    """What a resource's arguments give: its id, its objects, and the values of its computed attributes."""

    id: str
    objects: list[Obj]
    values: dict[str, Any]

    @property
    def object_digests(self) -> dict[str, str]:
        return {key(o): digest(o) for o in self.objects}


@dataclass(frozen=True)
class ResourceKind:
    name: str
    schema: Schema
    plan: Callable[[dict[str, Any]], Planned]
    import_args: Callable[[str], dict[str, Any]]
    spec: type[Spec]
    # Arguments that usually come from other resources, unknown until those are planned.
    references: tuple[str, ...] = ()

    def check_spec(self, known: dict[str, Any], unknown: set[str]) -> None:
        """The spec's own rules while references are still unknown (`terraform validate`).

        Runs only when every unknown argument is a reference; the cloud references of a pool
        stand in as placeholders, as they do in the Pulumi component.
        """
        if not unknown <= set(self.references):
            return
        fields = self.spec.model_fields
        args = {k: v for k, v in known.items() if k in fields}
        args |= {k: DEFERRABLE[k] for k in unknown if k in fields and k in DEFERRABLE}
        self.spec.parse(args)

    @property
    def type_name(self) -> str:
        return PREFIX + self.name


def without_nulls(value: Any) -> Any:
    """Terraform sends every attribute, unset ones as null; specs want them absent so defaults apply."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def _name(args: dict[str, Any]) -> str:
    """Pops `name` (absent only in a state imported by id whose arguments are not set yet)."""
    if "name" not in args:
        raise SpecError([SpecProblem("name", "required field is missing")])
    return str(args.pop("name"))


def _ref(value: object, attr: str, kind: str) -> dict[str, Any]:
    try:
        ref = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        ref = None
    if not isinstance(ref, dict) or ref.get("kind") != kind:
        raise SpecError([SpecProblem(attr, f"expects the ref of an {PREFIX}{kind} (e.g. "
                                     f"{PREFIX}{kind}.<name>.ref), got {value!r}")])
    return ref


def _pool_from_ref(value: object, attr: str = "pool") -> PoolPlan:
    ref = _ref(value, attr, "gpu_pool")
    try:
        return plan_pool(ref["name"], ref["args"])
    except SpecError as err:
        raise SpecError([SpecProblem(attr, f"the referenced pool is invalid: {p}") for p in err.problems]) from None


def _service_from_ref(value: object, attr: str) -> ServicePlan:
    ref = _ref(value, attr, "service")
    pool = _pool_from_ref(json.dumps(ref["pool"]), attr) if ref.get("pool") else None
    try:
        return plan_service(ref["name"], ref["args"], pool)
    except SpecError as err:
        raise SpecError([SpecProblem(attr, f"the referenced service is invalid: {p}") for p in err.problems]) from None


def _resolved(spec: Spec, schema_attrs: tuple[Attr, ...]) -> dict[str, Any]:
    """The spec's value of each computed argument (`namespace` -> "inference" when unset)."""
    return {a.name: getattr(spec, a.name) for a in schema_attrs if a.computed and a.name in type(spec).model_fields}


def _by_name(import_id: str) -> dict[str, Any]:
    return {"name": import_id}


def _by_namespaced_name(import_id: str) -> dict[str, Any]:
    namespace, _, name = import_id.rpartition("/")
    return {"name": name, **({"namespace": namespace} if namespace else {})}


NAME = Attr("name", "Name of the component: prefix of every object it creates.", type="string", required=True)
COMMON_OUTPUTS = (
    output("id", "Import id: the name, or namespace/name for namespaced components.", type="string"),
    output("objects", "Kubernetes objects this resource manages (apiVersion/kind/namespace/name) and a digest of "
           "each as rendered; an object deleted or changed outside Terraform shows here in the next plan.",
           type=["map", "string"]),
)


def _schema(description: str, *attrs: Attr) -> Schema:
    return Schema(description, (*attrs, *COMMON_OUTPUTS))


# --- infra_inference_platform ------------------------------------------------------------------

_PLATFORM_ARGS = spec_attributes(PlatformSpec)


def _plan_platform(args: dict[str, Any]) -> Planned:
    spec = plan_platform(args)
    return Planned(spec.namespace, platform_objects(spec),
                   {**_resolved(spec, _PLATFORM_ARGS), "priority_classes": dict(PRIORITY_CLASS)})


PLATFORM = ResourceKind("platform", _schema(
    "What every cluster needs once: PriorityClasses (online > batch > training > standby), tenant namespaces "
    "with GPU quotas and default-deny NetworkPolicies, optionally the NVIDIA device plugin and DCGM exporter.",
    *_PLATFORM_ARGS,
    output("priority_classes", "PriorityClass name by role: online, batch, training, standby.", type=["map", "string"]),
), _plan_platform, lambda i: {"namespace": i}, PlatformSpec)


# --- infra_inference_gpu_pool ------------------------------------------------------------------

_POOL_ARGS = spec_attributes(GpuPoolSpec)


def _plan_gpu_pool(args: dict[str, Any]) -> Planned:
    name = _name(args)
    plan = plan_pool(name, args)
    spec = plan.spec
    ref_args = {k: (DEFERRABLE[k] if k in DEFERRABLE else v) for k, v in args.items()}
    return Planned(name, pool_objects(plan), {
        **_resolved(spec, _POOL_ARGS),
        "node_selector": node_selector(name),
        "tolerations": tolerations(spec),
        "gpu_resource": spec.gpu_resource,
        "slots_per_node": spec.slots_per_node,
        "max_slots": spec.max_slots,
        "ref": json.dumps({"kind": "gpu_pool", "name": name, "args": ref_args}, sort_keys=True),
    })


GPU_POOL = ResourceKind("gpu_pool", _schema(
    "GPU nodes and what makes their GPUs schedulable as slots. On cloud \"existing\" (and \"eks\") the NVIDIA "
    "device plugin with this pool's sharing configuration, pinned to the pool's nodes; GKE brings its own. "
    "The GKE node pool or EKS node group itself is yours (google_container_node_pool, aws_eks_node_group): "
    "data source infra_inference_gpu_pool_settings gives its settings.",
    NAME, *_POOL_ARGS,
    output("node_selector", "Node selector that lands a pod on this pool.", type=["map", "string"]),
    output("tolerations", "Tolerations for the pool's taints.", nested=Nested("list", object_of(
        key="Taint key.", operator="Equal.", value="Taint value.", effect="Taint effect.").attributes)),
    output("gpu_resource", "Extended resource a pod requests, e.g. nvidia.com/gpu or nvidia.com/mig-1g.10gb.",
           type="string"),
    output("slots_per_node", "Schedulable GPU slots per node after sharing.", type="number"),
    output("max_slots", "Slots at max_nodes.", type="number"),
    output("ref", "What a service or standby pool on this pool needs (its name and arguments): "
           "pass it as their `pool`.", type="string"),
), _plan_gpu_pool, _by_name, GpuPoolSpec, tuple(DEFERRABLE))


# --- infra_inference_service -------------------------------------------------------------------

_SERVICE_ARGS = spec_attributes(InferenceServiceSpec)
POOL_ARG = Attr("pool", "The GPU pool: infra_inference_gpu_pool.<name>.ref. Omit for a CPU-only service.",
                type="string", optional=True)


def _plan_service(args: dict[str, Any]) -> Planned:
    pool_ref = args.pop("pool", None)
    pool = _pool_from_ref(pool_ref) if pool_ref is not None else None
    name = _name(args)
    plan = plan_service(name, args, pool)
    objects = service_objects(plan)
    policy = plan_service_policy(plan)
    if policy is not None:
        objects += autoscale_objects(policy)
    spec = plan.spec
    ref = {"kind": "service", "name": name, "args": args, "pool": json.loads(pool_ref) if pool_ref else None}
    return Planned(f"{spec.namespace}/{name}", objects, {
        **_resolved(spec, _SERVICE_ARGS),
        "url": service_url(spec),
        "deployment_name": plan.deployments[0],
        "gateway_name": gateway_name(name),
        "ref": json.dumps(ref, sort_keys=True),
    })


SERVICE = ResourceKind("service", _schema(
    "A model served behind a gateway, on a GPU pool or on CPU: replica Deployment(s) with hardened pods, their "
    "headless Service, the gateway and its Service, PDBs, and with `autoscale` the scaling objects; "
    "a Job in mode \"batch\".",
    *_SERVICE_ARGS[:1], POOL_ARG, *_SERVICE_ARGS[1:],
    output("url", "In-cluster URL of the gateway, the service's entry point.", type="string"),
    output("deployment_name", "Name of the (first) replica Deployment.", type="string"),
    output("gateway_name", "Name of the gateway Deployment and Service.", type="string"),
    output("ref", "What an autoscale policy or standby pool needs (name, arguments, pool): pass it as their "
           "`service` / `services`.", type="string"),
), _plan_service, _by_namespaced_name, InferenceServiceSpec, ("pool",))


# --- infra_inference_standby_pool --------------------------------------------------------------

_STANDBY_ARGS = tuple(
    Attr(a.name, a.description + " Computed when unset.", type=a.type, optional=True, computed=True)
    if a.name in ("instances", "slots_per_instance") else a
    for a in spec_attributes(StandbyPoolSpec))


def _plan_standby(args: dict[str, Any]) -> Planned:
    name = _name(args)
    pool = _pool_from_ref(args.pop("pool", None))  # None when imported by id: a SpecError naming pool
    services = [_service_from_ref(s, f"services[{i}]") for i, s in enumerate(args.pop("services", None) or [])]
    plan = plan_standby(name, args, pool, services)
    return Planned(f"{plan.namespace}/{name}", standby_objects(plan), {
        **_resolved(plan.spec, _STANDBY_ARGS), "instances": plan.instances,
        "slots_per_instance": plan.slots_per_instance,
    })


STANDBY_POOL = ResourceKind("standby_pool", _schema(
    "Warm GPU capacity: a Deployment of pause pods at inference-standby priority holding instances x "
    "slots_per_instance of the pool's GPU resource, and a DaemonSet that pre-pulls images and warms the "
    "model cache.",
    NAME,
    Attr("pool", "The GpuPool to keep warm: infra_inference_gpu_pool.<name>.ref.", type="string", required=True),
    Attr("services", "Services on the pool (their `ref`) whose scaling step sizes the default `instances`.",
         type=["list", "string"], optional=True),
    *_STANDBY_ARGS,
), _plan_standby, _by_namespaced_name, StandbyPoolSpec, ("pool", "services"))


# --- infra_inference_autoscale_policy ----------------------------------------------------------

_POLICY_ARGS = spec_attributes(AutoscalePolicySpec)


def _plan_policy(args: dict[str, Any]) -> Planned:
    name = _name(args)
    service_ref = args.pop("service", None)
    service = _service_from_ref(service_ref, "service") if service_ref is not None else None
    plan = plan_policy(name, args, service)
    spec = AutoscalePolicySpec.model_validate({**args, "namespace": plan.namespace})
    return Planned(f"{plan.namespace}/{name}", autoscale_objects(plan), {
        **_resolved(spec, _POLICY_ARGS), "deployments": list(plan.deployments),
    })


AUTOSCALE_POLICY = ResourceKind("autoscale_policy", _schema(
    "How a service (or any Deployment) scales. native: ServiceAccount, a Role limited to the scale of the "
    "service's Deployments, RoleBinding, policy ConfigMap and the autoscaler Deployment; hpa: an autoscaling/v2 "
    "HorizontalPodAutoscaler; keda: a ScaledObject.",
    NAME,
    Attr("service", "The service to scale: infra_inference_service.<name>.ref (one of service or deployment).",
         type="string", optional=True),
    *_POLICY_ARGS,
    output("deployments", "Deployments this policy scales.", type=["list", "string"]),
), _plan_policy, _by_namespaced_name, AutoscalePolicySpec, ("service",))

RESOURCES = {k.type_name: k for k in (PLATFORM, GPU_POOL, SERVICE, STANDBY_POOL, AUTOSCALE_POLICY)}


# --- data source infra_inference_gpu_pool_settings ----------------------------------------------

_SETTINGS_ARGS = tuple(a for a in spec_attributes(GpuPoolSpec, top=False) if a.name not in DEFERRABLE)


def gpu_pool_settings(args: dict[str, Any]) -> dict[str, Any]:
    """The cloud node pool settings of a pool; `cluster` and the EKS role/subnets are the user's own."""
    name = _name(args)
    # Placeholders for what the cloud requires and the user's cloud resource sets itself.
    required = ("cluster", "node_role_arn", "subnet_ids") if args.get("cloud") == "eks" else ("cluster",)
    spec = plan_pool(name, {**{k: DEFERRABLE[k] for k in required}, **args}).spec
    out: dict[str, Any] = {"machine_type": spec.resolved_machine_type, "gke": None, "eks": None}
    if spec.cloud == "gke":
        pool = gke_node_pool(name, spec)
        cfg = pool["node_config"]
        [acc] = cfg["guest_accelerator"]
        sharing = acc["gpu_sharing_config"] or {}
        out |= {"labels": cfg["labels"], "taints": cfg["taint"], "gke": {
            "accelerator_type": acc["type"], "accelerator_count": acc["count"],
            "gpu_sharing_strategy": sharing.get("gpu_sharing_strategy"),
            "max_shared_clients_per_gpu": sharing.get("max_shared_clients_per_gpu"),
            "gpu_partition_size": acc["gpu_partition_size"],
            "gpu_driver_version": acc["gpu_driver_installation_config"]["gpu_driver_version"],
            "node_locations": pool["node_locations"],
            "total_min_node_count": pool["autoscaling"]["total_min_node_count"],
            "total_max_node_count": pool["autoscaling"]["total_max_node_count"],
            "location_policy": pool["autoscaling"]["location_policy"],
            "image_streaming": bool(cfg["gcfs_config"]), "oauth_scopes": cfg["oauth_scopes"],
            "workload_metadata_mode": cfg["workload_metadata_config"]["mode"]}}
    elif spec.cloud == "eks":
        group = eks_node_group(name, spec)
        out |= {"labels": group["labels"], "taints": group["taint"], "eks": {
            "instance_types": group["instance_types"], "ami_type": group["ami_type"],
            "capacity_type": group["capacity_type"], **group["scaling_config"],
            "metadata_options": group["metadata_options"]}}
    else:
        raise SpecError([SpecProblem("cloud", "settings are for cloud node pools (gke or eks); an \"existing\" "
                                     "pool's nodes are yours: label them infra-inference.dev/pool=<name>")])
    return out


def _computed(name: str, description: str, type: Any = None, nested: Nested | None = None) -> Attr:
    return output(name, description, type=type, nested=nested)


GPU_POOL_SETTINGS = Schema(
    "The settings of a GKE node pool or EKS node group for a GpuPool, computed by the same code as the Pulumi "
    "GpuPool: plug them into google_container_node_pool or aws_eks_node_group.",
    (NAME, *_SETTINGS_ARGS,
     _computed("machine_type", "Machine (GKE) or instance (EKS) type: the given one or the default for the GPU.",
               type="string"),
     _computed("labels", "Node labels: the pool label, nvidia.com/gpu.present and your labels.",
               type=["map", "string"]),
     _computed("taints", "Node taints with the cloud's effect names (NO_SCHEDULE, ...).", nested=Nested(
         "list", object_of(key="Taint key.", value="Taint value.", effect="NO_SCHEDULE, PREFER_NO_SCHEDULE or "
                           "NO_EXECUTE.").attributes)),
     _computed("gke", "google_container_node_pool settings; null unless cloud is gke.", nested=Nested("single", (
         Attr("accelerator_type", "guest_accelerator.type.", type="string", computed=True),
         Attr("accelerator_count", "guest_accelerator.count.", type="number", computed=True),
         Attr("gpu_sharing_strategy", "gpu_sharing_config.gpu_sharing_strategy (TIME_SHARING or MPS); null "
              "without sharing.", type="string", computed=True),
         Attr("max_shared_clients_per_gpu", "gpu_sharing_config.max_shared_clients_per_gpu.", type="number",
              computed=True),
         Attr("gpu_partition_size", "guest_accelerator.gpu_partition_size (MIG); null without MIG.",
              type="string", computed=True),
         Attr("gpu_driver_version", "gpu_driver_installation_config.gpu_driver_version.", type="string",
              computed=True),
         Attr("node_locations", "node_locations: the pool's zones; null for the cloud's choice.",
              type=["list", "string"], computed=True),
         Attr("total_min_node_count", "autoscaling.total_min_node_count.", type="number", computed=True),
         Attr("total_max_node_count", "autoscaling.total_max_node_count.", type="number", computed=True),
         Attr("location_policy", "autoscaling.location_policy.", type="string", computed=True),
         Attr("image_streaming", "node_config.gcfs_config.enabled.", type="bool", computed=True),
         Attr("oauth_scopes", "node_config.oauth_scopes: GKE's narrow default scopes, not cloud-platform.",
              type=["list", "string"], computed=True),
         Attr("workload_metadata_mode", "node_config.workload_metadata_config.mode: GKE_METADATA, so pods never "
              "see the node's credentials.", type="string", computed=True),
     ))),
     _computed("eks", "aws_eks_node_group settings; null unless cloud is eks.", nested=Nested("single", (
         Attr("instance_types", "instance_types.", type=["list", "string"], computed=True),
         Attr("ami_type", "ami_type: the EKS-optimized NVIDIA AMI.", type="string", computed=True),
         Attr("capacity_type", "capacity_type: SPOT or ON_DEMAND.", type="string", computed=True),
         Attr("min_size", "scaling_config.min_size.", type="number", computed=True),
         Attr("max_size", "scaling_config.max_size.", type="number", computed=True),
         Attr("desired_size", "scaling_config.desired_size.", type="number", computed=True),
         Attr("metadata_options", "metadata_options of the aws_launch_template the node group runs with: IMDSv2 "
              "only, one hop, so pods cannot take the node role's credentials.", nested=Nested("single", (
                  Attr("http_endpoint", "enabled.", type="string", computed=True),
                  Attr("http_tokens", "required (IMDSv2).", type="string", computed=True),
                  Attr("http_put_response_hop_limit", "1.", type="number", computed=True),
              )), computed=True),
     )))),
)
DATA_SOURCES = {PREFIX + "gpu_pool_settings": (GPU_POOL_SETTINGS, gpu_pool_settings)}

PROVIDER = Schema(
    "Where the provider applies objects. Each setting falls back to the usual variables: kubeconfig_path to "
    "KUBE_CONFIG_PATH, KUBE_CONFIG_PATHS, KUBECONFIG, then ~/.kube/config; context to KUBE_CTX.",
    (Attr("kubeconfig_path", "Path of a kubeconfig file.", type="string", optional=True),
     Attr("kubeconfig", "A kubeconfig's content (YAML); wins over kubeconfig_path.", type="string", optional=True,
          sensitive=True),
     Attr("context", "Context of the kubeconfig to use. Default: its current context.", type="string",
          optional=True)),
)
