"""Rendered objects -> typed pulumi_kubernetes resources, so previews show real kinds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra_inference.render.common import Obj

# kind -> (resource class, top-level fields besides metadata as (object key, python kwarg)).
_KINDS: dict[str, tuple[Callable[..., pulumi.CustomResource], tuple[tuple[str, str], ...]]] = {
    "Namespace": (k8s.core.v1.Namespace, ()),
    "ServiceAccount": (k8s.core.v1.ServiceAccount, (("automountServiceAccountToken",
                                                      "automount_service_account_token"),)),
    "ConfigMap": (k8s.core.v1.ConfigMap, (("data", "data"),)),
    "Service": (k8s.core.v1.Service, (("spec", "spec"),)),
    "ResourceQuota": (k8s.core.v1.ResourceQuota, (("spec", "spec"),)),
    "Deployment": (k8s.apps.v1.Deployment, (("spec", "spec"),)),
    "DaemonSet": (k8s.apps.v1.DaemonSet, (("spec", "spec"),)),
    "Job": (k8s.batch.v1.Job, (("spec", "spec"),)),
    "PodDisruptionBudget": (k8s.policy.v1.PodDisruptionBudget, (("spec", "spec"),)),
    "NetworkPolicy": (k8s.networking.v1.NetworkPolicy, (("spec", "spec"),)),
    "HorizontalPodAutoscaler": (k8s.autoscaling.v2.HorizontalPodAutoscaler, (("spec", "spec"),)),
    "Role": (k8s.rbac.v1.Role, (("rules", "rules"),)),
    "RoleBinding": (k8s.rbac.v1.RoleBinding, (("roleRef", "role_ref"), ("subjects", "subjects"))),
    "PriorityClass": (k8s.scheduling.v1.PriorityClass, (("value", "value"), ("globalDefault", "global_default"),
                                                         ("preemptionPolicy", "preemption_policy"),
                                                         ("description", "description"))),
}


def child_name(owner: str, o: Obj) -> str:
    """Stable Pulumi name: `chat` + Deployment `chat-gateway` -> `chat-gateway-deployment`.

    Derived from kind and object name only, so changing a field updates one
    child in place instead of renaming (and replacing) others.
    """
    obj_name = o["metadata"]["name"]
    suffix = obj_name[len(owner) + 1:] if obj_name.startswith(owner + "-") else ("" if obj_name == owner else obj_name)
    return "-".join(p for p in (owner, suffix, o["kind"].lower()) if p)


# Pods of these kinds name ServiceAccounts, ConfigMaps and PriorityClasses created beside them.
WORKLOADS = {"Deployment", "DaemonSet", "Job"}


def create(owner: str, objects: list[Obj], opts: pulumi.ResourceOptions,
           depends_on: list[pulumi.Resource] | None = None) -> dict[str, pulumi.CustomResource]:
    """One typed resource per object, all children of `opts.parent`; keyed by child name.

    Workloads wait for the other objects of the batch: Pulumi creates in
    parallel, and a ReplicaSet whose ServiceAccount does not exist yet fails
    its pods ("serviceaccount not found") and only recovers on backoff.
    """
    out: dict[str, pulumi.CustomResource] = {}
    supporting = [o for o in objects if o["kind"] not in WORKLOADS]
    workloads = [o for o in objects if o["kind"] in WORKLOADS]
    for batch, after in ((supporting, list(depends_on or [])), (workloads, None)):
        deps = after if after is not None else [*(depends_on or []), *out.values()]
        for o in batch:
            out[child_name(owner, o)] = _resource(owner, o, pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=deps)))
    return out


def _resource(owner: str, o: Obj, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    name = child_name(owner, o)
    if o["kind"] in _KINDS:
        cls, fields = _KINDS[o["kind"]]
        kwargs: dict[str, Any] = {py: o[key] for key, py in fields if key in o}
        return cls(name, metadata=o["metadata"], opts=opts, **kwargs)
    # CRDs (KEDA's ScaledObject): the generic custom resource
    return k8s.apiextensions.CustomResource(name, api_version=o["apiVersion"], kind=o["kind"],
                                            metadata=o["metadata"], spec=o.get("spec"), opts=opts)
