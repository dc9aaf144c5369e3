"""Warm standby: placeholder pods that hold GPU slots, and the image/model pre-pull DaemonSet."""

from __future__ import annotations

from infra_inference.plan.components import StandbyPlan
from infra_inference.render.common import (
    MODEL_CACHE_MOUNT, PAUSE_IMAGE, PAUSE_UID, Obj, by_name, cache_owner_init, container, labels, meta,
    model_cache_volume, obj, pod_spec, resources, scratch_volume,
)
from infra_inference.render.platform import PRIORITY_CLASS
from infra_inference.render.pool import node_selector, tolerations
from infra_inference.specs.pool import POOL_LABEL, GpuPoolSpec
from infra_inference.specs.image import ImageSpec


def balloons(name: str, namespace: str, pool_name: str, pool: GpuPoolSpec, instances: int,
             slots_per_instance: int) -> Obj:
    """`instances` pause pods, each holding `slots_per_instance` GPU slots at standby priority.

    A real inference pod preempts one at once (its slots are free the moment
    the pause container exits); the evicted placeholder goes Pending, and that
    pending pod is what makes the cloud autoscaler add the next node.
    """
    lbls = labels(name, "standby", **{POOL_LABEL: pool_name})
    pause = container("placeholder", PAUSE_IMAGE, uid=PAUSE_UID,
                      resources=resources("10m", "16Mi", {pool.gpu_resource: slots_per_instance}))
    return obj("apps/v1", "Deployment", meta(name, namespace, lbls), spec={
        "replicas": instances,
        "selector": {"matchLabels": by_name(name)},
        "template": {"metadata": {"labels": lbls}, "spec": pod_spec(
            [pause],
            priorityClassName=PRIORITY_CLASS["standby"],
            # Nothing to drain: give the slots back the instant they are wanted.
            terminationGracePeriodSeconds=0,
            nodeSelector=node_selector(pool_name),
            tolerations=tolerations(pool),
        )},
    })


def prepull(name: str, namespace: str, pool_name: str, pool: GpuPoolSpec, images: list[str],
            models: list[str], runtime_image: ImageSpec, cache_max_bytes: int) -> Obj:
    """A DaemonSet whose init containers pull `images` and fetch `models` into the node cache, kept under
    `cache_max_bytes` as the replicas keep it.

    Each image's init container runs `sh -c true`, so pulled images must have a
    shell (ours, vLLM and Triton do). Models land in the node cache directory
    of `namespace`, which the replicas of that namespace read (see
    `model_cache_volume`).
    """
    lbls = labels(name, "prepull", **{POOL_LABEL: pool_name})
    init: list[Obj] = []
    for i, image in enumerate(images):
        init.append(container(f"pull-{i}", image, command=["sh", "-c", "true"], cpu="10m", memory="32Mi"))
    volumes: list[Obj] = [scratch_volume()]
    if models:
        fetch = container("warm-models", runtime_image,
                          args=["fetch", "--cache-dir", MODEL_CACHE_MOUNT, "--max-bytes", str(cache_max_bytes), *models],
                          cpu="500m", memory="1Gi",
                          volumeMounts=[{"name": "model-cache", "mountPath": MODEL_CACHE_MOUNT},
                                        {"name": "tmp", "mountPath": "/tmp"}])
        init += [cache_owner_init(runtime_image), fetch]
        volumes.append(model_cache_volume(namespace))
    pause = container("done", PAUSE_IMAGE, uid=PAUSE_UID, cpu="10m", memory="16Mi")
    return obj("apps/v1", "DaemonSet", meta(name, namespace, lbls), spec={
        "selector": {"matchLabels": by_name(name)},
        "template": {"metadata": {"labels": lbls}, "spec": pod_spec(
            [pause], initContainers=init, volumes=volumes,
            nodeSelector=node_selector(pool_name), tolerations=tolerations(pool),
        )},
    })


def standby_objects(plan: StandbyPlan) -> list[Obj]:
    name, namespace, pool_name, pool = plan.name, plan.namespace, plan.pool.name, plan.pool.spec
    out = [balloons(f"{name}-balloons", namespace, pool_name, pool, plan.instances, plan.slots_per_instance)]
    if plan.spec.prepull_images or plan.spec.warm_models:
        out.append(prepull(f"{name}-prepull", namespace, pool_name, pool, plan.spec.prepull_images,
                           plan.spec.warm_models, plan.spec.runtime_image, plan.spec.model_cache_max_bytes))
    return out
