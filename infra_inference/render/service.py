"""What an InferenceService puts in the cluster: replicas per variant, the gateway, a Job for batch."""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from infra_inference.plan.components import ServicePlan
from infra_inference.plan.service import Placement, Variant, variants
from infra_inference.render.common import (
    LABEL_REVISION, LABEL_SERVICE, LABEL_VARIANT, MODEL_CACHE_MOUNT, RUNTIME_UID, Obj, by_name, cache_owner_init,
    config_checksum, config_json, container, env_list, labels, meta, model_cache_volume, obj, pod_spec, resources,
    role_and_binding, scratch_volume,
)
from infra_inference.render.platform import PRIORITY_CLASS
from infra_inference.render.pool import node_selector, tolerations
from infra_inference.render.scrape import GATEWAY_METRICS_PORT, METRICS_PORT, SERVING_METRICS_PORT, scraped
from infra_inference.specs.service import OBJECT_STORE_SCHEMES, InferenceServiceSpec
from infra_inference.wire.gateway import BackendConfig, GatewayConfig
from infra_inference.wire.names import (CONFIG_DIR, GATEWAY_ADMIN_PORT, GATEWAY_CONFIG, GATEWAY_PORT, gateway_name,
                                        replicas_service)
from infra_inference.wire.replica import ReplicaEnv

GATEWAY_REPLICAS = 2  # two, so a gateway restart never takes the service's entry point away
# Loading may take a model download: allow 10 minutes (120 x 5 s) before the kubelet gives up.
# Our runtime's startup probe asks /startupz, which answers 200 only once the model has loaded
# (/healthz answers as soon as the process listens, so the allowance would never apply).
STARTUP_PATH = "/startupz"
STARTUP_PERIOD_S = 5
STARTUP_FAILURES = 120
# Endpoint removal reaches gateways a few seconds after deletion; keep serving until it has.
PRESTOP_SLEEP_S = 5
# After the last accepted request's timeout, time to flush its answer and exit.
EXIT_MARGIN_S = 5
# Where a model's credentials Secret is mounted (files, read-only; the server reads them per fetch).
CREDENTIALS_MOUNT = "/var/run/secrets/infra-inference/model"
BATCH_CREDENTIALS_MOUNT = "/var/run/secrets/infra-inference/batch"


def drain_grace_s(timeout_s: float) -> int:
    """terminationGracePeriodSeconds: the preStop wait, then every accepted request may take its full
    timeout (5 + 30 + 5 = 40 s at the default 30 s timeout)."""
    return PRESTOP_SLEEP_S + math.ceil(timeout_s) + EXIT_MARGIN_S


def replica_env(spec: InferenceServiceSpec, v: Variant) -> dict[str, str]:
    rt = v.runtime
    if not rt.builtin:
        return dict(rt.env)  # another server reads its own settings (args, its own variables)
    settings = ReplicaEnv(
        # The built-in runtime's implementation per format (specs.service.BUILTIN_FORMATS).
        model=v.model.uri if v.model.format == "python" else "safetensors-mlp",
        model_uri="" if v.model.format == "python" else v.model.uri,
        model_name=spec.model_name, service=spec.name, port=rt.port, max_concurrency=rt.max_concurrency,
        max_queue=rt.max_queue, timeout_s=rt.timeout_s, cache_dir=MODEL_CACHE_MOUNT,
        model_cache_max_bytes=rt.model_cache_max_bytes,
        model_credentials_dir=CREDENTIALS_MOUNT if v.model.credentials_secret else None,
        max_batch_size=rt.batching.max_batch_size if rt.batching else None,
        max_wait_ms=rt.batching.max_wait_ms if rt.batching else None,
        # Time-slicing shares memory too: cap the framework so neighbours on the GPU keep theirs.
        gpu_memory_fraction=spec.gpu_fraction if v.gpu and spec.gpu_fraction is not None and spec.gpu_fraction < 1
        else None,
    )
    return {**rt.env, **settings.env()}


def replica_args(spec: InferenceServiceSpec, v: Variant) -> list[str]:
    """The server container's arguments: our `serve`, or the runtime's own with the placeholders filled in."""
    rt = v.runtime
    if rt.args is None:
        return ["serve"]
    return [a.format(model_uri=v.model.uri, model_name=spec.model_name, port=rt.port) for a in rt.args]


def downloads_weights(v: Variant) -> bool:
    """Whether the replica's server fetches the variant's weights from an object store or HTTP origin.

    Our runtime does, into its cache directory, for every format but `python` (whose uri names a
    class); a local path or file:// is read in place, and another server fetches by its own rules.
    """
    return v.runtime.builtin and v.model.format != "python" and urlsplit(v.model.uri).scheme in OBJECT_STORE_SCHEMES


def mount_secret(pod: Obj, server: Obj, volume: str, secret: str, path: str) -> None:
    """`secret` as read-only files at `path`: mode 0440 with fsGroup, so the runtime user's group reads them."""
    pod["securityContext"] = {"fsGroup": RUNTIME_UID}
    pod["volumes"].append({"name": volume, "secret": {"secretName": secret, "defaultMode": 0o440}})
    server["volumeMounts"].append({"name": volume, "mountPath": path, "readOnly": True})


def _http_probe(path: str, port: int, **extra: int) -> Obj:
    return {"httpGet": {"path": path, "port": port}, **extra}


def replica_pod(spec: InferenceServiceSpec, v: Variant, placement: Placement, lbls: dict[str, str]) -> Obj:
    rt = v.runtime
    on_pool = v.gpu and placement.pool is not None
    extended = {placement.pool.gpu_resource: placement.slots} if on_pool and placement.pool else None
    if rt.scrape_port != rt.port:
        ports = [{"name": "http", "containerPort": rt.port}, {"name": METRICS_PORT, "containerPort": rt.scrape_port}]
    else:
        ports = [{"name": SERVING_METRICS_PORT, "containerPort": rt.port}]
    server = container(
        # Our image brings its pull policy; an image of the service's own pulls IfNotPresent unless told.
        "server", rt.image or spec.runtime_image, args=replica_args(spec, v),
        pull_policy=rt.image_pull_policy or "IfNotPresent",
        env=env_list(replica_env(spec, v), {k: (ref.name, ref.key) for k, ref in rt.secret_env.items()}),
        ports=ports,
        resources=resources(spec.cpu, spec.memory, extended),
        # A foreign server (vLLM loading weights) answers its liveness path only once loaded: the startup
        # probe's window is what allows for that. Ours answers /healthz at once, /startupz once loaded.
        startupProbe=_http_probe(STARTUP_PATH if rt.builtin else rt.liveness_path, rt.port,
                                 periodSeconds=STARTUP_PERIOD_S,
                                 failureThreshold=STARTUP_FAILURES),
        readinessProbe=_http_probe(rt.readiness_path, rt.port, periodSeconds=2, failureThreshold=1),
        livenessProbe=_http_probe(rt.liveness_path, rt.port, periodSeconds=10, failureThreshold=3),
        lifecycle={"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_S}}},
        volumeMounts=[{"name": "tmp", "mountPath": "/tmp"}, {"name": "model-cache", "mountPath": MODEL_CACHE_MOUNT}],
    )
    extra: Obj = {
        "serviceAccountName": spec.name,
        "priorityClassName": PRIORITY_CLASS[spec.effective_priority],
        "terminationGracePeriodSeconds": drain_grace_s(rt.timeout_s),
        "volumes": [scratch_volume()],
    }
    if on_pool and placement.pool is not None and placement.pool_name is not None:
        extra["nodeSelector"] = node_selector(placement.pool_name)
        extra["tolerations"] = tolerations(placement.pool)
    if on_pool or downloads_weights(v):
        # The node's cache: the next replica on this node (a scale-up, a restart, a CPU replica
        # beside the last one) reads the weights from disk instead of fetching them again.
        extra["initContainers"] = [cache_owner_init(spec.runtime_image)]
        extra["volumes"].append(model_cache_volume(spec.namespace))
    else:
        # Nothing to fetch: no hostPath, and no root init container to own one.
        extra["volumes"].append({"name": "model-cache", "emptyDir": {"sizeLimit": "20Gi"}})
    if v.model.credentials_secret:
        mount_secret(extra, server, "model-credentials", v.model.credentials_secret, CREDENTIALS_MOUNT)
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
        lbls[LABEL_REVISION] = v.model.revision
    select = {LABEL_SERVICE: spec.name, LABEL_VARIANT: v.key}
    dep_spec: Obj = {
        "selector": {"matchLabels": select},
        # Never below the current capacity during a rollout: surge first, then retire.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "template": scraped(replica_pod(spec, v, placement, lbls), v.runtime.scrape_port, v.runtime.metrics_path),
    }
    if spec.autoscale is None and v.key != "cpu":
        dep_spec["replicas"] = 1 if spec.replicas is None else spec.replicas
    # With autoscaling, and always for the CPU fallback (sized by the service's autoscaler, fixed
    # replicas or not), replicas is left out: the autoscaler owns it and `pulumi up` never resets it.
    out = [
        obj("apps/v1", "Deployment", meta(v.deployment, ns, lbls), spec=dep_spec),
        obj("v1", "Service", meta(replicas_service(v.deployment), ns, lbls), spec={
            # Headless: the gateway balances per replica from EndpointSlices, not through kube-proxy.
            "clusterIP": "None", "selector": select, "publishNotReadyAddresses": False,
            "ports": [{"name": "http", "port": v.runtime.port, "targetPort": v.runtime.port}],
        }),
    ]
    if min_replicas(spec) >= 2 and v.key != "cpu":
        out.append(obj("policy/v1", "PodDisruptionBudget", meta(v.deployment, ns, lbls),
                       spec={"maxUnavailable": 1, "selector": {"matchLabels": select}}))
    return out


def gateway_config(spec: InferenceServiceSpec, vs: list[Variant]) -> GatewayConfig:
    """What the gateway reads: its backends with weights, and its queue limits."""
    return GatewayConfig(
        service=spec.name, namespace=spec.namespace, model=spec.model_name, port=GATEWAY_PORT,
        admin_port=GATEWAY_ADMIN_PORT, timeout_s=spec.runtime.timeout_s,
        # The gateway queue absorbs a burst while replicas start: room for every replica's queue at max.
        max_queue=spec.runtime.max_queue * max(1, spec.autoscale.max_replicas if spec.autoscale else 1),
        backends=[BackendConfig(variant=v.key, deployment=v.deployment, service=replicas_service(v.deployment),
                                port=v.runtime.port, weight=v.weight, max_concurrency=v.runtime.max_concurrency,
                                fallback=v.key == "cpu") for v in vs],
    )


def gateway_objects(spec: InferenceServiceSpec, vs: list[Variant]) -> list[Obj]:
    ns = spec.namespace
    name = gateway_name(spec.name)
    lbls = labels(name, "gateway", **{LABEL_SERVICE: spec.name})
    select = by_name(name)
    gw = container("gateway", spec.runtime_image, args=["gateway", "--config", f"{CONFIG_DIR}/{GATEWAY_CONFIG}"],
                   cpu="500m", memory="256Mi", ports=[{"name": "http", "containerPort": GATEWAY_PORT},
                                                      {"name": GATEWAY_METRICS_PORT, "containerPort": GATEWAY_ADMIN_PORT}],
                   readinessProbe=_http_probe("/readyz", GATEWAY_ADMIN_PORT, periodSeconds=2),
                   livenessProbe=_http_probe("/healthz", GATEWAY_ADMIN_PORT, periodSeconds=10),
                   # As for replicas: kube-proxy keeps sending new connections to a deleted gateway
                   # pod until its endpoint is gone, a second or so; without the wait a rollout's
                   # old pods refuse them (the real-node rollout test lost 440 requests, refused, without it).
                   lifecycle={"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_S}}},
                   volumeMounts=[{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                                 {"name": "tmp", "mountPath": "/tmp"}])
    config = obj("v1", "ConfigMap", meta(name, ns, lbls), data={GATEWAY_CONFIG: config_json(gateway_config(spec, vs))})
    return [
        obj("v1", "ServiceAccount", meta(name, ns, lbls), automountServiceAccountToken=True),
        # Discovery: the gateway watches its replicas' EndpointSlices, nothing else.
        *role_and_binding(name, ns, lbls, [
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]}]),
        config,
        obj("apps/v1", "Deployment", meta(name, ns, lbls), spec={
            "replicas": GATEWAY_REPLICAS,
            "selector": {"matchLabels": select},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": scraped({"metadata": {"labels": lbls, "annotations": config_checksum(config)}, "spec": pod_spec(
                [gw], serviceAccountName=name, automountServiceAccountToken=True,
                priorityClassName=PRIORITY_CLASS[spec.effective_priority],
                terminationGracePeriodSeconds=drain_grace_s(spec.runtime.timeout_s),
                volumes=[{"name": "config", "configMap": {"name": name}}, scratch_volume()],
            )}, GATEWAY_ADMIN_PORT),
        }),
        obj("v1", "Service", meta(name, ns, lbls), spec={
            "selector": select, "ports": [{"name": "http", "port": 80, "targetPort": GATEWAY_PORT}]}),
        obj("policy/v1", "PodDisruptionBudget", meta(name, ns, lbls),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": select}}),
    ]


def batch_job(spec: InferenceServiceSpec, placement: Placement) -> Obj:
    """An Indexed Job: `parallelism` pods, each answering its shard ($JOB_COMPLETION_INDEX) of the input."""
    assert spec.batch is not None  # guaranteed by InferenceServiceSpec.cross_checks
    b = spec.batch
    v = variants(spec)[0]
    lbls = labels(spec.name, "batch", **{LABEL_SERVICE: spec.name})
    pod = replica_pod(spec, v, placement, lbls)
    server = pod["spec"]["containers"][0]
    server["args"] = ["batch", "--input", b.input_uri, "--output", b.output_uri, "--shards", str(b.parallelism)]
    if b.credentials_secret:
        mount_secret(pod["spec"], server, "batch-credentials", b.credentials_secret, BATCH_CREDENTIALS_MOUNT)
        server["args"] += ["--credentials-dir", BATCH_CREDENTIALS_MOUNT]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe", "lifecycle"):
        server.pop(probe)
    pod["spec"]["restartPolicy"] = "Never"
    return obj("batch/v1", "Job", meta(spec.name, spec.namespace, lbls), spec={
        "completionMode": "Indexed", "completions": b.parallelism, "parallelism": b.parallelism,
        "backoffLimit": b.backoff_limit, "template": pod})


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
