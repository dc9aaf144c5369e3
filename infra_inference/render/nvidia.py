"""NVIDIA node software: the device plugin (with a pool's sharing config) and DCGM exporter.

These two are the documented exceptions to our container hardening: the device
plugin registers with the kubelet through a root-owned socket directory on the
host, and DCGM reads GPU counters through the driver, so both run as root. They
still drop every capability, forbid privilege escalation and keep a read-only
root filesystem.
"""

from __future__ import annotations

from typing import Any

import yaml  # pure: serialises the plugin's config file

from infra_inference.render.common import Obj, by_name, labels, meta, obj, resources
from infra_inference.specs.pool import GPU_RESOURCE, GPU_TAINT, POOL_LABEL, GpuPoolSpec

DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"
DCGM_EXPORTER_IMAGE = "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04"
NODE_SOFTWARE_NAMESPACE = "kube-system"
# Node software runs on every GPU node, whatever the taint's value.
GPU_TOLERATION = {"key": GPU_TAINT["key"], "operator": "Exists", "effect": GPU_TAINT["effect"]}


def _root_but_locked_down() -> Obj:
    return {"runAsNonRoot": False, "runAsUser": 0, "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def device_plugin_config(pool: GpuPoolSpec) -> dict[str, Any]:
    """The device plugin's config file for a pool's sharing strategy."""
    s = pool.sharing
    config: dict[str, Any] = {"version": "v1", "flags": {"migStrategy": "mixed" if s.strategy == "mig" else "none"}}
    if s.strategy == "time-slicing":
        # Requests above one slot are allowed: gpu_fraction 0.5 on a x4 pool asks for 2.
        config["sharing"] = {"timeSlicing": {"renameByDefault": False, "failRequestsGreaterThanOne": False,
                                             "resources": [{"name": GPU_RESOURCE,
                                                            "replicas": s.replicas_per_gpu}]}}
    elif s.strategy == "mps":
        config["sharing"] = {"mps": {"resources": [{"name": GPU_RESOURCE, "replicas": s.replicas_per_gpu}]}}
    return config


def device_plugin(name: str, *, config: dict[str, Any] | None,
                  node_selector: dict[str, str] | None, tolerations: list[Obj] | None = None) -> list[Obj]:
    """A device-plugin DaemonSet (and its config ConfigMap when `config` is given).

    With no `node_selector` it runs on every GPU node that no GpuPool manages.
    """
    lbls = labels(name, "device-plugin")
    volumes: list[Obj] = [{"name": "device-plugins", "hostPath": {"path": "/var/lib/kubelet/device-plugins"}}]
    mounts: list[Obj] = [{"name": "device-plugins", "mountPath": "/var/lib/kubelet/device-plugins"}]
    args: list[str] = []
    out: list[Obj] = []
    if config is not None:
        out.append(obj("v1", "ConfigMap", meta(name, NODE_SOFTWARE_NAMESPACE, lbls),
                       data={"config.yaml": yaml.safe_dump(config, sort_keys=True)}))
        volumes.append({"name": "config", "configMap": {"name": name}})
        mounts.append({"name": "config", "mountPath": "/config", "readOnly": True})
        args = ["--config-file=/config/config.yaml"]
    pod: Obj = {
        "priorityClassName": "system-node-critical",
        "automountServiceAccountToken": False,
        "tolerations": tolerations or [GPU_TOLERATION],
        "containers": [{
            "name": "nvidia-device-plugin", "image": DEVICE_PLUGIN_IMAGE, "args": args,
            "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
            "volumeMounts": mounts, "resources": resources("50m", "64Mi"),
            "securityContext": _root_but_locked_down(),
        }],
        "volumes": volumes,
    }
    if node_selector:
        pod["nodeSelector"] = dict(node_selector)
    else:
        pod["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]},
                                  {"key": POOL_LABEL, "operator": "DoesNotExist"}]}]}}}
    out.append(obj("apps/v1", "DaemonSet", meta(name, NODE_SOFTWARE_NAMESPACE, lbls), spec={
        "selector": {"matchLabels": by_name(name)},
        "updateStrategy": {"type": "RollingUpdate"},
        "template": {"metadata": {"labels": lbls}, "spec": pod},
    }))
    return out


def dcgm_exporter(namespace: str) -> list[Obj]:
    name = "dcgm-exporter"
    lbls = labels(name, "gpu-metrics")
    port = 9400
    ds = obj("apps/v1", "DaemonSet", meta(name, namespace, lbls), spec={
        "selector": {"matchLabels": by_name(name)},
        "template": {"metadata": {"labels": lbls, "annotations": {"prometheus.io/scrape": "true",
                                                                   "prometheus.io/port": str(port)}},
                     "spec": {
            "automountServiceAccountToken": False,
            "tolerations": [GPU_TOLERATION],
            "nodeSelector": {"nvidia.com/gpu.present": "true"},
            "containers": [{
                "name": name, "image": DCGM_EXPORTER_IMAGE,
                "ports": [{"name": "metrics", "containerPort": port}],
                "resources": resources("100m", "256Mi"),
                "securityContext": _root_but_locked_down(),
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        }},
    })
    svc = obj("v1", "Service", meta(name, namespace, lbls), spec={
        "selector": by_name(name),
        "ports": [{"name": "metrics", "port": port, "targetPort": port}],
    })
    return [ds, svc]
