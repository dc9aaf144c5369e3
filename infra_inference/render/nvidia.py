"""NVIDIA node software: the device plugin (with a pool's sharing config), MPS control daemon, DCGM exporter.

These are the documented exceptions to our container hardening: the device
plugin registers with the kubelet through a root-owned socket directory on the
host, and DCGM reads GPU counters through the driver, so both run as root. They
still drop every capability, forbid privilege escalation and keep a read-only
root filesystem. The MPS control daemon (MPS pools on eks/existing) is
privileged, as NVIDIA ships it: it mounts a tmpfs and sets GPU compute modes.
"""

from __future__ import annotations

from typing import Any

import yaml  # pure: serialises the plugin's config file

from infra_inference.render.common import Obj, by_name, labels, meta, obj, resources
from infra_inference.render.scrape import DCGM_EXPORTER, METRICS_PORT
from infra_inference.specs.pool import GPU_RESOURCE, GPU_TAINT, POOL_LABEL, GpuPoolSpec

DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"
DCGM_EXPORTER_IMAGE = "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.9-3.6.1-ubuntu22.04"
# The kubelet's pod-resources socket: which pod holds which device.
POD_RESOURCES = "/var/lib/kubelet/pod-resources"
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
    # MIG pools are served by the GPU operator's plugin (render/pool.py), never this config.
    config: dict[str, Any] = {"version": "v1", "flags": {"migStrategy": "none"}}
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
    env: list[Obj] = [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}]
    if config is not None and "mps" in config.get("sharing", {}):
        # The plugin health-checks the MPS control daemon through its pipe directory and /dev/shm.
        volumes += _mps_volumes()
        mounts += _MPS_MOUNTS
        env.append({"name": "MPS_ROOT", "value": MPS_ROOT})
    pod: Obj = {
        "priorityClassName": "system-node-critical",
        "automountServiceAccountToken": False,
        "tolerations": tolerations or [GPU_TOLERATION],
        "containers": [{
            "name": "nvidia-device-plugin", "image": DEVICE_PLUGIN_IMAGE, "args": args,
            "env": env,
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


# Where the MPS control daemon keeps its pipes and logs on the node, shared with the device plugin
# (which hands each MPS slot the pipe directory) and, through it, with every MPS client container.
MPS_ROOT = "/run/nvidia/mps"
_MPS_MOUNTS: list[Obj] = [{"name": "mps-root", "mountPath": "/mps"}, {"name": "mps-shm", "mountPath": "/dev/shm"}]


def _mps_volumes() -> list[Obj]:
    return [{"name": "mps-root", "hostPath": {"path": MPS_ROOT, "type": "DirectoryOrCreate"}},
            {"name": "mps-shm", "hostPath": {"path": f"{MPS_ROOT}/shm"}}]


def mps_control_daemon(name: str, *, node_selector: dict[str, str], tolerations: list[Obj]) -> Obj:
    """NVIDIA's MPS control daemon, one per node of an MPS pool (the device plugin's `mps-control-daemon`).

    The device plugin only advertises MPS slots; this daemon starts
    `nvidia-cuda-mps-control` for them, reading the same config (replicas per
    GPU). It is privileged, as NVIDIA ships it: it mounts a tmpfs at
    `<MPS_ROOT>/shm` (the init container) and sets the GPUs' compute mode.
    """
    lbls = labels(name, "mps-control-daemon")
    privileged: Obj = {"privileged": True}
    config_env = [{"name": "CONFIG_FILE", "value": "/config/config.yaml"},
                  {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
                  {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility"},
                  {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    config_name = name.removesuffix("-mps-control-daemon") + "-device-plugin"
    return obj("apps/v1", "DaemonSet", meta(name, NODE_SOFTWARE_NAMESPACE, lbls), spec={
        "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
        "updateStrategy": {"type": "RollingUpdate"},
        "template": {"metadata": {"labels": lbls}, "spec": {
            "priorityClassName": "system-node-critical",
            "automountServiceAccountToken": False,
            "nodeSelector": dict(node_selector),
            "tolerations": tolerations,
            "initContainers": [{
                "name": "mount-shm", "image": DEVICE_PLUGIN_IMAGE, "command": ["mps-control-daemon", "mount-shm"],
                "securityContext": privileged, "resources": resources("10m", "32Mi"),
                "volumeMounts": [{"name": "mps-root", "mountPath": "/mps", "mountPropagation": "Bidirectional"}],
            }],
            "containers": [{
                "name": "mps-control-daemon", "image": DEVICE_PLUGIN_IMAGE, "command": ["mps-control-daemon"],
                "env": config_env, "securityContext": privileged, "resources": resources("50m", "64Mi"),
                "volumeMounts": [*_MPS_MOUNTS, {"name": "config", "mountPath": "/config", "readOnly": True}],
            }],
            "volumes": [*_mps_volumes(), {"name": "config", "configMap": {"name": config_name}}],
        }},
    })


def dcgm_exporter(namespace: str) -> list[Obj]:
    name = DCGM_EXPORTER
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
                # Label each GPU's series with the pod using it (`namespace`, `pod`), from the kubelet's
                # pod-resources API: without it, a query for a service's pods selects nothing.
                "env": [{"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"}],
                "ports": [{"name": METRICS_PORT, "containerPort": port}],
                "resources": resources("100m", "256Mi"),
                "securityContext": _root_but_locked_down(),
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                                 {"name": "pod-resources", "mountPath": POD_RESOURCES, "readOnly": True}],
            }],
            "volumes": [{"name": "tmp", "emptyDir": {}},
                        {"name": "pod-resources", "hostPath": {"path": POD_RESOURCES, "type": "Directory"}}],
        }},
    })
    svc = obj("v1", "Service", meta(name, namespace, lbls), spec={
        "selector": by_name(name),
        "ports": [{"name": METRICS_PORT, "port": port, "targetPort": port}],
    })
    return [ds, svc]
