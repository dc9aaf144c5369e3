"""Building blocks every rendered object shares: metadata, labels, hardened containers."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel

from infra_inference.specs.image import ImageSpec, PullPolicy

Obj = dict[str, Any]

PART_OF = "infra-inference"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_SERVICE = "infra-inference.dev/service"
LABEL_VARIANT = "infra-inference.dev/variant"
LABEL_REVISION = "infra-inference.dev/revision"
ANNOTATION_CONFIG_SHA256 = "infra-inference.dev/config-sha256"

# The runtime image's non-root user (docker/Dockerfile.*); the pause image's is 65535.
RUNTIME_UID = 10001
PAUSE_UID = 65535
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"

# Node-local model cache: one directory per namespace (a tenant's trust boundary), shared by the
# namespace's replicas and warm-up DaemonSet on the node, never mounted into another namespace's pods.
MODEL_CACHE_HOST_PATH = "/var/cache/infra-inference/models"
MODEL_CACHE_MOUNT = "/var/cache/infra-inference/models"


def labels(name: str, component: str, **extra: str) -> dict[str, str]:
    return {LABEL_NAME: name, LABEL_COMPONENT: component, LABEL_PART_OF: PART_OF, **extra}


def by_name(name: str) -> dict[str, str]:
    """The selector of an object's own pods (its `labels(name, ...)` carry it)."""
    return {LABEL_NAME: name}


def meta(name: str, namespace: str | None, lbls: dict[str, str], **annotations: str) -> Obj:
    out: Obj = {"name": name, "labels": dict(lbls)}
    if namespace is not None:
        out["namespace"] = namespace
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def obj(api_version: str, kind: str, metadata: Obj, **body: Any) -> Obj:
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}


def hardened(uid: int = RUNTIME_UID) -> Obj:
    """Container securityContext every container of ours runs with."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(cpu: str, memory: str, extended: dict[str, int] | None = None) -> Obj:
    """Requests equal limits: Guaranteed QoS, so a replica is the last to be evicted on pressure."""
    amounts: Obj = {"cpu": cpu, "memory": memory}
    for resource, count in (extended or {}).items():
        amounts[resource] = str(count)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def container(name: str, image: str | ImageSpec, *, args: list[str] | None = None, command: list[str] | None = None,
              cpu: str = "100m", memory: str = "128Mi", uid: int = RUNTIME_UID,
              pull_policy: PullPolicy = "IfNotPresent", **extra: Any) -> Obj:
    """A hardened container; an ImageSpec brings its own reference and pull policy."""
    if isinstance(image, ImageSpec):
        image, pull_policy = image.ref, image.image_pull_policy
    out: Obj = {"name": name, "image": image, "imagePullPolicy": pull_policy}
    if command is not None:
        out["command"] = command
    if args is not None:
        out["args"] = args
    out.update(extra)
    out["resources"] = extra.get("resources") or resources(cpu, memory)
    out["securityContext"] = hardened(uid)
    return out


def pod_spec(containers: list[Obj], **extra: Any) -> Obj:
    return {"automountServiceAccountToken": False, "containers": containers, **extra}


def scratch_volume(name: str = "tmp") -> Obj:
    """A writable /tmp for a read-only root filesystem."""
    return {"name": name, "emptyDir": {"sizeLimit": "1Gi"}}


def env_list(values: dict[str, str], secrets: dict[str, tuple[str, str]] | None = None) -> list[Obj]:
    """Plain values, and `secrets` ({variable: (Secret, key)}) as secretKeyRefs: the value never enters the spec."""
    out: list[Obj] = [{"name": k, "value": v} for k, v in values.items()]
    out += [{"name": k, "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}
            for k, (name, key) in (secrets or {}).items()]
    return sorted(out, key=lambda e: e["name"])


def cache_owner_init(image: ImageSpec) -> Obj:
    """Init container that hands the node's model-cache hostPath to the runtime user.

    A hostPath directory is created root-owned, and fsGroup does not apply to
    hostPath, so without this the non-root server could not write its cache.
    It is the one container of ours that runs as root, with CAP_CHOWN only.
    """
    c = container("cache-owner", image, command=["chown", f"{RUNTIME_UID}:{RUNTIME_UID}", MODEL_CACHE_MOUNT],
                  cpu="10m", memory="32Mi", volumeMounts=[{"name": "model-cache", "mountPath": MODEL_CACHE_MOUNT}])
    c["securityContext"] = {**c["securityContext"], "runAsNonRoot": False, "runAsUser": 0, "runAsGroup": 0,
                            "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}
    return c


def model_cache_volume(namespace: str) -> Obj:
    """The namespace's own cache directory on the node.

    Every replica runs as the same UID, and fsGroup does not apply to
    hostPath, so file permissions cannot keep tenants apart on a shared
    directory: a tenant's code could rewrite another tenant's weights. A
    directory per namespace can: a pod sees only what it mounts.
    """
    return {"name": "model-cache", "hostPath": {"path": f"{MODEL_CACHE_HOST_PATH}/{namespace}",
                                                "type": "DirectoryOrCreate"}}


def role_and_binding(name: str, namespace: str, lbls: dict[str, str], rules: list[Obj]) -> list[Obj]:
    """A Role with `rules`, bound to the ServiceAccount of the same name."""
    return [
        obj("rbac.authorization.k8s.io/v1", "Role", meta(name, namespace, lbls), rules=rules),
        obj("rbac.authorization.k8s.io/v1", "RoleBinding", meta(name, namespace, lbls),
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            subjects=[{"kind": "ServiceAccount", "name": name, "namespace": namespace}]),
    ]


def config_json(config: BaseModel) -> str:
    """A runtime config file (wire/) as its ConfigMap holds it: the fields render/ set, sorted."""
    return json.dumps(config.model_dump(mode="json", exclude_unset=True), indent=2, sort_keys=True)


def config_checksum(config_map: Obj) -> dict[str, str]:
    """Pod-template annotations that roll a workload when its ConfigMap's data changes.

    The gateway and the autoscaler read their config file once, at start: the
    kubelet rewriting the mounted file (within a minute of an update) changes
    nothing in a running process. A new checksum is a new pod template, so the
    Deployment rolls pods that read the new file (the `checksum/config` pattern).
    """
    data = json.dumps(config_map["data"], sort_keys=True).encode()
    return {ANNOTATION_CONFIG_SHA256: hashlib.sha256(data).hexdigest()}
