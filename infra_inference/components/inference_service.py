"""InferenceService: a model served behind a gateway, on a GPU pool or on CPU."""


from typing import TYPE_CHECKING, Any, TypedDict

import pulumi

from infra_inference.components import gate, kube
from infra_inference.components.gpu_pool import GpuPool
from infra_inference.components.inputs import split
from infra_inference.components.platform import ImageArgs
from infra_inference.components.references import engine_outputs
from infra_inference.plan.components import ServicePlan, plan_service, plan_service_policy
from infra_inference.plan.service import service_url
from infra_inference.render.autoscale import autoscale_objects
from infra_inference.render.service import service_objects
from infra_inference.wire.names import gateway_name

if TYPE_CHECKING:
    # A name only here: AutoscalePolicyArgs takes an InferenceService, so its module imports this one.
    from infra_inference.components.autoscale_policy import AutoscalePolicyArgs


class ModelArgs(TypedDict, total=False):
    uri: str
    """Where the model is: path, file://, http(s)://, s3:// or gs://. Required."""
    format: str
    """safetensors (default), torch, onnx, sklearn or python."""
    name: str
    """Name in the inference URL. Default the service name."""
    revision: str
    """Revision tag, recorded as a label."""
    credentials_secret: str
    """Secret (same namespace) with the source's credentials, mounted read-only: `authorization` for http(s),
    `aws_access_key_id`/`aws_secret_access_key` for s3://, `gcs_service_account.json` for gs://."""
    size_bytes: int
    """Size of the weights in bytes, for the cold-start budget. Default unknown (counted as 0)."""


class BatchingArgs(TypedDict):
    max_batch_size: int
    """Most requests in one model call."""
    max_wait_ms: float
    """Longest a request waits for its batch to fill."""


class SecretKeyArgs(TypedDict):
    name: str
    """The Secret, in the service's namespace."""
    key: str
    """The key inside it."""


class RuntimeArgs(TypedDict, total=False):
    preset: str
    """vllm, tgi or triton: that server's image, port, probes, metrics, protocol and args. Default none."""
    image: str
    """Serving image. Default the service's runtime_image (ours; or the preset's); another needs protocol
    and args."""
    image_pull_policy: str
    """imagePullPolicy of the replicas. Default the runtime_image's (IfNotPresent for an image of your own)."""
    max_concurrency: int
    """Requests in the model at once per replica. Default 8."""
    max_queue: int
    """Requests waiting per replica before 429. Default 64."""
    batching: BatchingArgs
    """Dynamic batching. Default off."""
    timeout_s: float
    """Per-request timeout. Default 30."""
    model_cache_max_bytes: int
    """Bound on the namespace's node-local model cache (our runtime); least recently used idle models are
    evicted. Default 53687091200 (50 GiB)."""
    env: dict[str, str]
    """Extra environment variables, in the pod spec in clear: nothing secret."""
    secret_env: dict[str, SecretKeyArgs]
    """Environment variables from Secret keys (secretKeyRef); the pod spec holds only the reference."""
    port: int
    """Server port. Default 8080 (or the preset's)."""
    readiness_path: str
    """GET path answering 200 once the server can serve. Default /readyz (or the preset's)."""
    liveness_path: str
    """GET path answering 200 while the server is alive. Default /healthz (or the preset's)."""
    metrics_path: str
    """Prometheus metrics path. Default /metrics."""
    metrics_port: int
    """Port of metrics_path. Default port (Triton's preset: 8002)."""
    args: list[str]
    """Container arguments after the entrypoint; {model_uri}, {model_name}, {port} filled in. Default serve."""
    protocol: str
    """oip, openai, kserve-v1 or raw: what clients speak to it. Required for an image not ours."""


class CanaryArgs(TypedDict, total=False):
    model: ModelArgs
    """Canary model. Default the main one."""
    runtime: RuntimeArgs
    """Canary runtime. Default the main one."""
    traffic_percent: float
    """Share of requests, 0..100. Required."""


class VariantArgs(TypedDict):
    model: ModelArgs
    """The variant's model."""
    weight: float
    """Share of requests in percent; all weights sum to 100."""


class BatchJobArgs(TypedDict, total=False):
    input_uri: str
    """Input records (JSON lines): an s3://, gs:// or http(s):// object, or an s3:// or gs:// prefix ending in '/'.
    Required."""
    output_uri: str
    """Where predictions go: an object, or a prefix ending in '/' (one part file per pod; required with
    parallelism > 1). Required."""
    parallelism: int
    """Pods at once, each answering its shard of the input (an Indexed Job). Default 1."""
    backoff_limit: int
    """Retries before failing. Default 3."""
    credentials_secret: str
    """Secret with the input's and output's credentials (same keys as the model's); default the cloud's own."""


class InferenceServiceArgs(TypedDict, total=False):
    model: ModelArgs
    """The model. Required."""
    runtime: RuntimeArgs
    """Serving settings."""
    pool: GpuPool
    """GPU pool; omit for a CPU-only service."""
    gpu_fraction: float
    """Share of one GPU per replica, (0, 1]; must be a whole number of the pool's slots."""
    gpus: int
    """Whole GPUs per replica (pool with sharing none)."""
    cpu: str
    """CPU request and limit per replica. Default "1"."""
    memory: str
    """Memory request and limit per replica. Default "4Gi"."""
    replicas: int
    """Fixed replica count. Default 1 unless autoscale is given."""
    autoscale: "AutoscalePolicyArgs"
    """Inline AutoscalePolicy (without service/deployment)."""
    priority: str
    """online or batch. Default follows mode."""
    canary: CanaryArgs
    """Canary release."""
    variants: dict[str, VariantArgs]
    """A/B variants by name."""
    mode: str
    """online (default) or batch."""
    batch: BatchJobArgs
    """Input and output for mode batch."""
    zones_spread: bool
    """Spread replicas across zones. Default false."""
    cpu_fallback: bool
    """Allow a CPU variant when no GPU slot is free. Default false."""
    namespace: str
    """Namespace. Default inference."""
    runtime_image: ImageArgs
    """Our runtime image: gateway, autoscaler, cache helper, and replicas without runtime.image.
    Default ghcr.io/infra-inference/runtime:0.1.0."""


class InferenceService(pulumi.ComponentResource):
    """Replica Deployment(s) with hardened pods, their headless Service, the gateway and its Service,
    PDBs, and the scaling objects of the inline `autoscale`; a Job in batch mode."""

    pulumi_type = "infra-inference:index:InferenceService"

    url: pulumi.Output[str]
    """In-cluster URL of the gateway, the service's entry point."""
    namespace: pulumi.Output[str]
    """Namespace of every child."""
    deployment_name: pulumi.Output[str]
    """Name of the (first) replica Deployment."""
    gateway_name: pulumi.Output[str]
    """Name of the gateway Deployment and Service."""
    spec: pulumi.Output[dict[str, Any]]
    """The validated arguments with defaults filled in."""
    pool: pulumi.Output[GpuPool | None]
    """The GpuPool the replicas run on; none for a CPU-only service."""

    def __init__(self, name: str, args: InferenceServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if opts is not None and opts.urn is not None:
            # A reference to a service declared elsewhere (another language's program): plan from its outputs.
            super().__init__(self.pulumi_type, name, {}, opts)
            state = engine_outputs(opts.urn)
            ref: GpuPool | None = state.get("pool")
            self.plan = plan_service(name, state["spec"], ref.plan if ref else None)
            self._set_outputs(ref)
            return
        subject = f"InferenceService {name!r}"
        with gate.validating():
            plain, _ = split(dict(args), {}, subject)
            pool: GpuPool | None = plain.pop("pool", None)
            self.plan: ServicePlan = plan_service(name, plain, pool.plan if pool else None, subject)
        super().__init__(self.pulumi_type, name, {}, gate.held(opts))
        child = pulumi.ResourceOptions(parent=self)
        kube.create(name, service_objects(self.plan), child, depends_on=[pool] if pool else None)
        policy = plan_service_policy(self.plan)
        if policy is not None:
            kube.create(policy.name, autoscale_objects(policy), child)
        self.register_outputs(self._set_outputs(pool))

    def _set_outputs(self, pool: GpuPool | None) -> dict[str, pulumi.Output[Any]]:
        spec = self.plan.spec
        self.url = pulumi.Output.from_input(service_url(spec))
        self.namespace = pulumi.Output.from_input(spec.namespace)
        self.deployment_name = pulumi.Output.from_input(self.plan.deployments[0])
        self.gateway_name = pulumi.Output.from_input(gateway_name(spec.name))
        self.spec = pulumi.Output.from_input(spec.model_dump(mode="json"))
        self.pool = pulumi.Output.from_input(pool)
        return {"url": self.url, "namespace": self.namespace, "deployment_name": self.deployment_name,
                "gateway_name": self.gateway_name, "spec": self.spec, "pool": self.pool}
