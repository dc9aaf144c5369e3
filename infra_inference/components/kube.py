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


def create(owner: str, objects: list[Obj], opts: pulumi.ResourceOptions,
           depends_on: list[pulumi.Resource] | None = None) -> dict[str, pulumi.CustomResource]:
    """One typed resource per object, all children of `opts.parent`; keyed by child name."""
    out: dict[str, pulumi.CustomResource] = {}
    for o in objects:
        name = child_name(owner, o)
        child_opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=depends_on or []))
        if o["kind"] in _KINDS:
            cls, fields = _KINDS[o["kind"]]
            kwargs: dict[str, Any] = {py: o[key] for key, py in fields if key in o}
            out[name] = cls(name, metadata=o["metadata"], opts=child_opts, **kwargs)
        else:  # CRDs (KEDA's ScaledObject): the generic custom resource
            out[name] = k8s.apiextensions.CustomResource(
                name, api_version=o["apiVersion"], kind=o["kind"], metadata=o["metadata"], spec=o.get("spec"),
                opts=child_opts)
    return out
