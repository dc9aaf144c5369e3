"""What an InferenceService puts in the cluster: replicas per variant, the gateway, a Job for batch."""

from __future__ import annotations

import json
import math

from infra_inference.render.common import (
    LABEL_SERVICE, LABEL_VARIANT, MODEL_CACHE_MOUNT, Obj, cache_owner_init, container, env_list, labels, meta,
    model_cache_volume, obj, pod_spec, resources, scratch_volume,
)
from infra_inference.render.platform import PRIORITY_CLASS
from infra_inference.plan.components import ServicePlan
from infra_inference.plan.service import Placement, Variant, variants
from infra_inference.render.pool import node_selector, tolerations
from infra_inference.specs.service import DEFAULT_IMAGE, InferenceServiceSpec

GATEWAY_PORT = 8080
GATEWAY_REPLICAS = 2  # two, so a gateway restart never takes the service's entry point away
CONFIG_DIR = "/etc/infra-inference"
# Readiness may take a model download: allow 10 minutes (120 x 5 s) before the kubelet gives up.
STARTUP_PERIOD_S = 5
STARTUP_FAILURES = 120
# Endpoint removal reaches gateways a few seconds after deletion; keep serving until it has.
PRESTOP_SLEEP_S = 5


def replica_env(spec: InferenceServiceSpec, v: Variant) -> dict[str, str]:
    rt = v.runtime
    env = {
        **rt.env,
        # The built-in runtime's implementation per format (specs.service.BUILTIN_FORMATS).
        "INFRA_INFERENCE_MODEL": v.model.uri if v.model.format == "python" else "safetensors-mlp",
        "INFRA_INFERENCE_MODEL_URI": "" if v.model.format == "python" else v.model.uri,
        "INFRA_INFERENCE_MODEL_NAME": spec.model_name,
        "INFRA_INFERENCE_PORT": str(rt.port),
        "INFRA_INFERENCE_MAX_CONCURRENCY": str(rt.max_concurrency),
        "INFRA_INFERENCE_MAX_QUEUE": str(rt.max_queue),
        "INFRA_INFERENCE_TIMEOUT_S": f"{rt.timeout_s:g}",
        "INFRA_INFERENCE_CACHE_DIR": MODEL_CACHE_MOUNT,
    }
    if rt.batching is not None:
        env["INFRA_INFERENCE_MAX_BATCH_SIZE"] = str(rt.batching.max_batch_size)
        env["INFRA_INFERENCE_MAX_WAIT_MS"] = f"{rt.batching.max_wait_ms:g}"
    if v.gpu and spec.gpu_fraction is not None and spec.gpu_fraction < 1:
        # Time-slicing shares memory too: cap the framework so neighbours on the GPU keep theirs.
        env["INFRA_INFERENCE_GPU_MEMORY_FRACTION"] = f"{spec.gpu_fraction:g}"
    return env


def _http_probe(path: str, port: int, **extra: int) -> Obj:
    return {"httpGet": {"path": path, "port": port}, **extra}


def replica_pod(spec: InferenceServiceSpec, v: Variant, placement: Placement, lbls: dict[str, str]) -> Obj:
    rt = v.runtime
    on_pool = v.gpu and placement.pool is not None
    extended = {placement.pool.gpu_resource: placement.slots} if on_pool and placement.pool else None
    server = container(
        "server", rt.image, args=["serve"],
        env=env_list(replica_env(spec, v)),
        ports=[{"name": "http", "containerPort": rt.port}],
        resources=resources(spec.cpu, spec.memory, extended),
        startupProbe=_http_probe("/healthz", rt.port, periodSeconds=STARTUP_PERIOD_S,
                                 failureThreshold=STARTUP_FAILURES),
        readinessProbe=_http_probe("/readyz", rt.port, periodSeconds=2, failureThreshold=1),
        livenessProbe=_http_probe("/healthz", rt.port, periodSeconds=10, failureThreshold=3),
        lifecycle={"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_S}}},
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}, {"name": "model-cache", "mountPath": MODEL_CACHE_MOUNT}],
    )
    extra: Obj = {
        "serviceAccountName": spec.name,
        "priorityClassName": PRIORITY_CLASS[spec.effective_priority],
        # Drain: the preStop wait, then every accepted request may take its full timeout.
        "terminationGracePeriodSeconds": PRESTOP_SLEEP_S + math.ceil(rt.timeout_s) + 5,
        "volumes": [scratch_volume()],
    }
    if on_pool and placement.pool is not None and placement.pool_name is not None:
        extra["nodeSelector"] = node_selector(placement.pool_name)
        extra["tolerations"] = tolerations(placement.pool)
        extra["initContainers"] = [cache_owner_init(DEFAULT_IMAGE)]
        extra["volumes"].append(model_cache_volume())
    else:
        extra["volumes"].append({"name": "model-cache", "emptyDir": {"sizeLimit": "20Gi"}})
    if spec.zones_spread:
        # ScheduleAnyway: when one zone is out of GPUs, a lopsided replica beats none.
        extra["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                               "whenUnsatisfiable": "ScheduleAnyway",
                                               "labelSelector": {"matchLabels": {LABEL_SERVICE: spec.name,
                                                                                 LABEL_VARIANT: v.key}}}]
    return {"metadata": {"labels": lbls}, "spec": pod_spec([server], **extra)}


def min_replicas(spec: InferenceServiceSpec) -> int:
    if spec.autoscale is not None:
        return spec.autoscale.min_replicas
    return 1 if spec.replicas is None else spec.replicas


def replica_objects(spec: InferenceServiceSpec, v: Variant, placement: Placement) -> list[Obj]:
    ns = spec.namespace
    lbls = labels(v.deployment, "replica", **{LABEL_SERVICE: spec.name, LABEL_VARIANT: v.key})
    if v.model.revision:
        lbls["infra-inference.dev/revision"] = v.model.revision
    select = {LABEL_SERVICE: spec.name, LABEL_VARIANT: v.key}
    dep_spec: Obj = {
        "selector": {"matchLabels": select},
        # Never below the current capacity during a rollout: surge first, then retire.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "template": replica_pod(spec, v, placement, lbls),
    }
    if spec.autoscale is None:
        dep_spec["replicas"] = (1 if spec.replicas is None else spec.replicas) if v.key != "cpu" else 0
    # With autoscaling, replicas is left out: the autoscaler owns it and `pulumi up` never resets it.
    out = [
        obj("apps/v1", "Deployment", meta(v.deployment, ns, lbls), spec=dep_spec),
        obj("v1", "Service", meta(f"{v.deployment}-replicas", ns, lbls), spec={
            # Headless: the gateway balances per replica from EndpointSlices, not through kube-proxy.
            "clusterIP": "None", "selector": select, "publishNotReadyAddresses": False,
            "ports": [{"name": "http", "port": v.runtime.port, "targetPort": v.runtime.port}],
        }),
    ]
    if min_replicas(spec) >= 2 and v.key != "cpu":
        out.append(obj("policy/v1", "PodDisruptionBudget", meta(v.deployment, ns, lbls),
                       spec={"maxUnavailable": 1, "selector": {"matchLabels": select}}))
    return out


def gateway_config(spec: InferenceServiceSpec, vs: list[Variant]) -> Obj:
    """What the gateway reads: its backends with weights, and its queue limits."""
    return {
        "service": spec.name,
        "namespace": spec.namespace,
        "model": spec.model_name,
        "port": GATEWAY_PORT,
        "timeout_s": spec.runtime.timeout_s,
        # The gateway queue absorbs a burst while replicas start: room for every replica's queue at max.
        "max_queue": spec.runtime.max_queue * max(1, spec.autoscale.max_replicas if spec.autoscale else 1),
        "sticky_header": "x-infra-inference-session",
        "backends": [{"variant": v.key, "deployment": v.deployment, "service": f"{v.deployment}-replicas",
                      "port": v.runtime.port, "weight": v.weight, "max_concurrency": v.runtime.max_concurrency,
                      "fallback": v.key == "cpu"} for v in vs],
    }


def gateway_objects(spec: InferenceServiceSpec, vs: list[Variant]) -> list[Obj]:
    ns = spec.namespace
    name = f"{spec.name}-gateway"
    lbls = labels(name, "gateway", **{LABEL_SERVICE: spec.name})
    select = {"app.kubernetes.io/name": name}
    gw = container("gateway", DEFAULT_IMAGE, args=["gateway", "--config", f"{CONFIG_DIR}/gateway.json"],
                   cpu="500m", memory="256Mi", ports=[{"name": "http", "containerPort": GATEWAY_PORT}],
                   readinessProbe=_http_probe("/readyz", GATEWAY_PORT, periodSeconds=2),
                   livenessProbe=_http_probe("/healthz", GATEWAY_PORT, periodSeconds=10),
                   volumeMounts=[{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                                 {"name": "tmp", "mountPath": "/tmp"}])
    return [
        obj("v1", "ServiceAccount", meta(name, ns, lbls), automountServiceAccountToken=True),
        # Discovery: the gateway watches its replicas' EndpointSlices, nothing else.
        obj("rbac.authorization.k8s.io/v1", "Role", meta(name, ns, lbls), rules=[
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]}]),
        obj("rbac.authorization.k8s.io/v1", "RoleBinding", meta(name, ns, lbls),
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            subjects=[{"kind": "ServiceAccount", "name": name, "namespace": ns}]),
        obj("v1", "ConfigMap", meta(name, ns, lbls),
            data={"gateway.json": json.dumps(gateway_config(spec, vs), indent=2, sort_keys=True)}),
        obj("apps/v1", "Deployment", meta(name, ns, lbls), spec={
            "replicas": GATEWAY_REPLICAS,
            "selector": {"matchLabels": select},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": lbls}, "spec": pod_spec(
                [gw], serviceAccountName=name, automountServiceAccountToken=True,
                priorityClassName=PRIORITY_CLASS[spec.effective_priority],
                terminationGracePeriodSeconds=PRESTOP_SLEEP_S + math.ceil(spec.runtime.timeout_s) + 5,
                volumes=[{"name": "config", "configMap": {"name": name}}, scratch_volume()],
            )},
        }),
        obj("v1", "Service", meta(name, ns, lbls), spec={
            "selector": select, "ports": [{"name": "http", "port": 80, "targetPort": GATEWAY_PORT}]}),
        obj("policy/v1", "PodDisruptionBudget", meta(name, ns, lbls),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": select}}),
    ]


def batch_job(spec: InferenceServiceSpec, placement: Placement) -> Obj:
    assert spec.batch is not None  # guaranteed by InferenceServiceSpec.cross_checks
    v = variants(spec)[0]
    lbls = labels(spec.name, "batch", **{LABEL_SERVICE: spec.name})
    pod = replica_pod(spec, v, placement, lbls)
    server = pod["spec"]["containers"][0]
    server["args"] = ["batch", "--input", spec.batch.input_uri, "--output", spec.batch.output_uri]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe", "lifecycle"):
        server.pop(probe)
    pod["spec"]["restartPolicy"] = "Never"
    return obj("batch/v1", "Job", meta(spec.name, spec.namespace, lbls), spec={
        "parallelism": spec.batch.parallelism, "backoffLimit": spec.batch.backoff_limit, "template": pod})


def service_objects(plan: ServicePlan) -> list[Obj]:
    """Every object of the service except its autoscaling ones (see render.autoscale)."""
    spec, placement = plan.spec, plan.placement
    ns = spec.namespace
    lbls = labels(spec.name, "replica", **{LABEL_SERVICE: spec.name})
    out = [obj("v1", "ServiceAccount", meta(spec.name, ns, lbls), automountServiceAccountToken=False)]
    if spec.mode == "batch":
        return [*out, batch_job(spec, placement)]
    vs = variants(spec)
    for v in vs:
        out += replica_objects(spec, v, placement)
    return out + gateway_objects(spec, vs)
