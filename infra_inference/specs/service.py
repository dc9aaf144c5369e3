"""InferenceService arguments: the model, how it is served, where it runs, how it scales."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from infra_inference.errors import SpecProblem
from infra_inference.specs.autoscale import STANDALONE_ONLY, ScalingSpec
from infra_inference.specs.base import Spec
from infra_inference.specs.cache import MODEL_CACHE_MAX_BYTES, MODEL_CACHE_MIN_BYTES
from infra_inference.specs.image import DEFAULT_REGISTRY, ImageSpec, PullPolicy
from infra_inference.specs.names import DnsLabel, EnvName, LabelValue, ObjectName
from infra_inference.specs.quantity import Quantity
from infra_inference.specs.runtimes import PRESETS, PresetName, Protocol
from infra_inference.specs.uris import PlainUri, unreadable_scheme

ModelFormat = Literal["safetensors", "torch", "onnx", "sklearn", "python"]
Priority = Literal["online", "batch"]
Mode = Literal["online", "batch"]

# The runtime image of this release; a service may name any other image.
DEFAULT_PORT = 8080
# What the built-in runtime serves; other formats need an image that serves them.
BUILTIN_FORMATS = ("safetensors", "python")


class ModelSpec(Spec):
    """Which model to serve."""

    uri: PlainUri = Field(min_length=1, description="Where the model is: a path, file://, http(s)://, s3:// or gs://; "
                                                   "no credentials in it (see credentials_secret).")
    format: ModelFormat = Field("safetensors", description="safetensors, torch, onnx, sklearn or python.")
    name: DnsLabel | None = Field(None, description="Name in the inference URL; default the service name.")
    revision: LabelValue | None = Field(None, description="Revision or version tag, recorded in labels.")
    credentials_secret: ObjectName | None = Field(
        None, description="Secret in the service's namespace with what fetching `uri` needs, mounted read-only "
                          "into the server: key `authorization` (an HTTP Authorization header value), "
                          "`aws_access_key_id` + `aws_secret_access_key` (+ `aws_session_token`) for s3://, "
                          "`gcs_service_account.json` for gs://.")
    size_bytes: int | None = Field(None, ge=0, description="Size of the weights, for the cold-start budget "
                                                         "(decide/coldstart.py); unknown: counted as 0.")


class BatchingSpec(Spec):
    """Dynamic batching: whichever comes first, a full batch or the wait."""

    max_batch_size: int = Field(ge=1, le=4096, description="Most requests in one model call.")
    max_wait_ms: float = Field(ge=0, le=10_000, description="Longest a request waits for the batch to fill.")


class SecretKeySpec(Spec):
    """One key of a Secret, for an environment variable that must not appear in the pod spec."""

    name: ObjectName = Field(description="The Secret, in the service's namespace.")
    key: str = Field(min_length=1, max_length=253, description="The key inside it.")


class RuntimeSpec(Spec):
    """How each replica serves: our runtime by default, or any server that says how to reach it."""

    preset: PresetName | None = Field(None, description="vllm, tgi or triton: fills image, port, probes, "
                                                        "metrics, protocol and args with that server's own.")
    image: str | None = Field(None, min_length=1, description="Serving image; default the service's "
                                                              "runtime_image, any other (vLLM, Triton) allowed.")
    image_pull_policy: PullPolicy | None = Field(
        None, description="imagePullPolicy of the replicas; default the runtime_image's (IfNotPresent for an "
                          "image of your own).")
    max_concurrency: int = Field(8, ge=1, le=4096, description="Requests in the model at once per replica.")
    max_queue: int = Field(64, ge=0, le=100_000, description="Requests waiting per replica; beyond, 429.")
    batching: BatchingSpec | None = Field(None, description="Dynamic batching; off when absent.")
    timeout_s: float = Field(30, gt=0, le=3600, description="Per-request timeout (504 after it).")
    model_cache_max_bytes: int = Field(
        MODEL_CACHE_MAX_BYTES, ge=MODEL_CACHE_MIN_BYTES, description="Bound on the namespace's node-local model cache (our runtime): the "
                                          "least recently used models no replica on the node serves are evicted "
                                          "to stay under it; a model larger than it fails to start.")
    env: dict[EnvName, str] = Field(default_factory=dict, description="Extra environment variables, written into "
                                                                     "the pod spec in clear: nothing secret here.")
    secret_env: dict[EnvName, SecretKeySpec] = Field(
        default_factory=dict, description="Environment variables read from Secrets (secretKeyRef): the pod spec "
                                          "holds the reference, never the value.")
    port: int = Field(DEFAULT_PORT, ge=1024, le=65535, description="Port the server listens on (non-root: >= 1024).")
    readiness_path: str = Field("/readyz", pattern=r"^/", description="GET path answering 200 once it can serve.")
    liveness_path: str = Field("/healthz", pattern=r"^/", description="GET path answering 200 while it is alive.")
    metrics_path: str = Field("/metrics", pattern=r"^/", description="Prometheus text exposition path.")
    metrics_port: int | None = Field(None, ge=1024, le=65535, description="Port of metrics_path; default `port`.")
    args: list[str] | None = Field(None, description="Container arguments after the image's entrypoint; "
                                                     "{model_uri}, {model_name} and {port} are filled in. "
                                                     "Default: our runtime's `serve`; required for another image.")
    protocol: Protocol | None = Field(None, description="What clients speak to it: oip, openai, kserve-v1 or raw. "
                                                        "Ours speaks all but raw; required for another image.")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        # A preset's values fill only what the user left out: `image` pinned to another tag stays.
        if isinstance(data, dict) and data.get("preset") in PRESETS:
            preset = PRESETS[data["preset"]]
            defaults = {k: getattr(preset, k) for k in ("image", "port", "readiness_path", "liveness_path",
                                                        "metrics_path", "metrics_port", "protocol")}
            return {**defaults, "args": list(preset.args), **data}
        return data

    @property
    def builtin(self) -> bool:
        """Our runtime image serves it: the service's runtime_image, or our release image at any tag."""
        return self.image is None or self.image.rsplit(":", 1)[0] == f"{DEFAULT_REGISTRY}/runtime"

    @property
    def scrape_port(self) -> int:
        return self.metrics_port or self.port

    def cross_checks(self) -> list[SpecProblem]:
        out = [SpecProblem(f"{field}.{k}", "INFRA_INFERENCE_* variables are set from the spec; use the "
                           "matching runtime field instead")
               for field in ("env", "secret_env") for k in sorted(getattr(self, field))
               if k.startswith("INFRA_INFERENCE_")]
        out += [SpecProblem(f"secret_env.{k}", "also set in env; keep one of the two")
                for k in sorted(set(self.env) & set(self.secret_env))]
        if not self.builtin:
            if self.protocol is None:
                out.append(SpecProblem("protocol", f"image {self.image!r} is not ours: say what it speaks "
                                       "(oip, openai, kserve-v1 or raw), or use a preset (vllm, tgi, triton)"))
            if self.args is None:
                out.append(SpecProblem("args", f"image {self.image!r} is not ours: give its arguments "
                                       "([] to run its entrypoint as is), or use a preset"))
            if self.batching is not None:
                out.append(SpecProblem("batching", "dynamic batching is our runtime's; configure the image's "
                                       "own through args"))
        elif self.protocol == "raw":
            out.append(SpecProblem("protocol", "our runtime speaks oip, openai and kserve-v1, not raw"))
        for i, arg in enumerate(self.args or []):
            try:
                arg.format(model_uri="", model_name="", port=0)
            except (KeyError, IndexError, ValueError) as exc:
                out.append(SpecProblem(f"args[{i}]", f"only {{model_uri}}, {{model_name}} and {{port}} are "
                                       f"filled in ({type(exc).__name__}: {exc}); write {{{{ and }}}} for braces"))
        return out


def _served_problems(model: ModelSpec, runtime: RuntimeSpec, at: str) -> list[SpecProblem]:
    """What `runtime` cannot serve of `model` (at `at`: "model", "canary.model", ...): its format, or, for the
    built-in runtime, a URI it has no source for (another image may read `hf://` itself)."""
    out = []
    preset = PRESETS.get(runtime.preset or "")
    if runtime.builtin and model.format not in BUILTIN_FORMATS:
        out.append(SpecProblem(f"{at}.format", f"the built-in runtime serves {' and '.join(BUILTIN_FORMATS)}, not "
                               f"{model.format!r}; set runtime.image to a server for it (e.g. Triton for onnx)"))
    elif preset is not None and model.format not in preset.formats:
        out.append(SpecProblem(f"{at}.format", f"the {runtime.preset} preset serves {', '.join(preset.formats)}, "
                               f"not {model.format!r}"))
    # A python model's uri is an import path (`pkg.mod:Echo`), not a URL.
    unreadable = unreadable_scheme(model.uri) if runtime.builtin and model.format != "python" else None
    if unreadable:
        out.append(SpecProblem(f"{at}.uri", unreadable))
    return out


class CanarySpec(Spec):
    """A second revision that gets a share of the traffic."""

    model: ModelSpec | None = Field(None, description="Canary model; default the main one.")
    runtime: RuntimeSpec | None = Field(None, description="Canary runtime; default the main one.")
    traffic_percent: float = Field(ge=0, le=100, description="Share of requests for the canary, 0..100.")

    def cross_checks(self) -> list[SpecProblem]:
        if self.model is None and self.runtime is None:
            return [SpecProblem("", "a canary needs a model or a runtime that differs from the main one")]
        return []


class VariantSpec(Spec):
    """One arm of an A/B split."""

    model: ModelSpec = Field(description="The variant's model.")
    weight: float = Field(ge=0, le=100, description="Share of requests, percent; all weights sum to 100.")


OBJECT_STORE_SCHEMES = ("s3", "gs", "http", "https")


class BatchJobSpec(Spec):
    """Offline inference: read every record under `input_uri`, write predictions to `output_uri`."""

    input_uri: PlainUri = Field(min_length=1, description="Input records (JSON lines): one object, or every "
                                                          "object under an s3:// or gs:// prefix ending in '/'.")
    output_uri: PlainUri = Field(min_length=1, description="Where predictions go: an object, or (required with "
                                                           "parallelism > 1) a prefix ending in '/' that gets "
                                                           "one part file per pod.")
    parallelism: int = Field(1, ge=1, le=1000, description="Pods working at once; each takes its shard of "
                                                           "the input (an Indexed Job).")
    backoff_limit: int = Field(3, ge=0, description="Retries before the Job fails.")
    credentials_secret: ObjectName | None = Field(
        None, description="Secret with the input's and output's credentials (same keys as "
                          "model.credentials_secret); default the cloud's own (IRSA, workload identity).")

    def cross_checks(self) -> list[SpecProblem]:
        out: list[SpecProblem] = []
        for field in ("input_uri", "output_uri"):
            scheme = urlsplit(getattr(self, field)).scheme
            if scheme not in OBJECT_STORE_SCHEMES:
                out.append(SpecProblem(field, f"a Job's filesystem goes with its pod; use s3://, gs:// or "
                                       f"http(s):// (not {scheme or 'a local path'!r})"))
        if self.input_uri.endswith("/") and urlsplit(self.input_uri).scheme in ("http", "https"):
            out.append(SpecProblem("input_uri", "an http(s) prefix cannot be listed; name one object, or use "
                                   "an s3:// or gs:// prefix"))
        if self.parallelism > 1 and not self.output_uri.endswith("/"):
            out.append(SpecProblem("output_uri", f"{self.parallelism} pods write one part file each: give a "
                                   f"prefix ending in '/'"))
        return out


class InferenceServiceSpec(Spec):
    """Validated InferenceService arguments (the pool is passed separately)."""

    name: DnsLabel = Field(description="Service name; prefix of every child object.")
    model: ModelSpec = Field(description="The model to serve.")
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec, description="Serving settings.")
    gpu_fraction: float | None = Field(None, gt=0, le=1, description="Share of one GPU per replica, (0, 1].")
    gpus: int | None = Field(None, ge=1, le=16, description="Whole GPUs per replica.")
    cpu: Quantity = Field("1", description="CPU request and limit per replica.")
    memory: Quantity = Field("4Gi", description="Memory request and limit per replica.")
    replicas: int | None = Field(None, ge=0, le=10_000, description="Fixed replica count (no autoscaling).")
    autoscale: ScalingSpec | None = Field(None, description="Autoscaling policy; see AutoscalePolicy.")
    priority: Priority | None = Field(None, description="online or batch; default follows mode.")
    canary: CanarySpec | None = Field(None, description="Canary release.")
    variants: dict[DnsLabel, VariantSpec] | None = Field(None, description="A/B variants by name.")
    mode: Mode = Field("online", description="online (Deployment + gateway) or batch (Job).")
    batch: BatchJobSpec | None = Field(None, description="Input and output of mode 'batch'.")
    zones_spread: bool = Field(False, description="Spread replicas across zones; PDB when >= 2 replicas.")
    cpu_fallback: bool = Field(False, description="Allow a CPU variant when no GPU slot is free.")
    namespace: DnsLabel = Field("inference", description="Namespace of every child object.")
    runtime_image: ImageSpec = Field(default_factory=ImageSpec,
                                     description="Our runtime image: gateway, autoscaler, cache helper, and "
                                                 "replicas without a runtime.image.")

    @field_validator("autoscale", mode="before")
    @classmethod
    def _no_standalone_fields(cls, value: Any) -> Any:
        """A standalone policy's keys (Pulumi's schema offers AutoscalePolicy's args here): say so, not "spelling"."""
        given = [k for k in STANDALONE_ONLY if k in value] if isinstance(value, dict) else []
        if given:
            raise ValueError(f"{', '.join(given)}: only a standalone AutoscalePolicy takes "
                             f"{'this' if len(given) == 1 else 'these'}; an inline autoscale scales this service, "
                             f"in its namespace, with its runtime_image: remove {'it' if len(given) == 1 else 'them'}")
        return value

    def cross_checks(self) -> list[SpecProblem]:
        out: list[SpecProblem] = []
        if self.gpu_fraction is not None and self.gpus is not None:
            out.append(SpecProblem("gpus", "give gpu_fraction or gpus, not both"))
        if self.replicas is not None and self.autoscale is not None:
            out.append(SpecProblem("replicas", "give replicas (fixed) or autoscale, not both"))
        if self.canary is not None and self.variants:
            out.append(SpecProblem("variants", "a canary and A/B variants cannot be combined; pick one"))
        if self.variants is not None:
            total = sum(v.weight for v in self.variants.values())
            if abs(total - 100) > 1e-6:
                out.append(SpecProblem("variants", f"weights sum to {total:g}, not 100"))
            if len(self.variants) < 2:
                out.append(SpecProblem("variants", "an A/B split needs at least two variants"))
        out += _served_problems(self.model, self.runtime, "model")
        if self.canary is not None:
            out += _served_problems(self.canary.model or self.model, self.canary.runtime or self.runtime,
                                    "canary.model")
        for key, variant in (self.variants or {}).items():
            out += _served_problems(variant.model, self.runtime, f"variants.{key}.model")
        if self.cpu_fallback and self.replicas == 0:
            out.append(SpecProblem("cpu_fallback", "serves the overflow of GPU replicas, and replicas is 0; "
                                   "for a CPU-only service remove the pool instead"))
        if self.cpu_fallback and not self.uses_gpu:
            out.append(SpecProblem("cpu_fallback", "only applies to a GPU service (gpu_fraction or gpus)"))
        if self.autoscale is not None:
            out += self.autoscale.slot_problems(self.runtime.max_concurrency, "autoscale.")
        multi = self.canary is not None or bool(self.variants) or self.cpu_fallback
        if self.autoscale is not None and self.autoscale.engine != "native" and multi:
            out.append(SpecProblem("autoscale.engine", f"{self.autoscale.engine!r} scales one Deployment; canary, "
                                   f"variants and cpu_fallback need engine 'native'"))
        if self.mode == "batch":
            if self.batch is None:
                out.append(SpecProblem("batch", "mode 'batch' needs batch: {input_uri, output_uri}"))
            for field in ("autoscale", "canary", "variants"):
                if getattr(self, field):
                    out.append(SpecProblem(field, "does not apply to mode 'batch'"))
            if self.replicas is not None:
                out.append(SpecProblem("replicas", "does not apply to mode 'batch'; pods at once are "
                                       "batch.parallelism"))
        elif self.batch is not None:
            out.append(SpecProblem("batch", "only applies to mode 'batch'; set mode: batch or remove it"))
        return out

    @property
    def model_name(self) -> str:
        return self.model.name or self.name

    @property
    def effective_priority(self) -> Priority:
        return self.priority or ("batch" if self.mode == "batch" else "online")

    @property
    def uses_gpu(self) -> bool:
        return self.gpu_fraction is not None or self.gpus is not None
