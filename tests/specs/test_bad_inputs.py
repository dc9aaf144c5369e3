"""Bad stack documents, as an attacker or a new user writes them: each one SpecError naming the field.

Every case renders a whole document through `render_stack` (the path both
`infra-inference render` and the components take) and expects the exact
field path in the error. sdk-docs/reference.md records how many there are.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra_inference.errors import SpecError
from infra_inference.render import render_stack

POOL = {"cloud": "existing", "cluster": "c", "gpu_type": "l4", "max_nodes": 2,
        "sharing": {"strategy": "time-slicing", "replicas_per_gpu": 4}}
SERVICE = {"model": {"uri": "https://models.example.com/m.safetensors"}}


def service(**over: Any) -> dict[str, Any]:
    return {"services": {"chat": {**SERVICE, **over}}}


def batch(**over: Any) -> dict[str, Any]:
    return service(mode="batch", batch={"input_uri": "s3://in/", "output_uri": "s3://out/", **over})


PRESIGNED = ("https://bucket.s3.amazonaws.com/m.safetensors?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AKIA%2F20250101&X-Amz-Signature=deadbeef")

BAD_DOCUMENTS: list[tuple[str, dict[str, Any], str]] = [
    # Secrets in the clear (issue 15, item 10).
    ("userinfo in the model URI", service(model={"uri": "https://user:hunter2@models.example.com/m"}),
     "services.chat.model.uri"),
    ("presigned S3 URL as the model URI", service(model={"uri": PRESIGNED}), "services.chat.model.uri"),
    ("GCS signed URL", service(model={"uri": "https://storage.googleapis.com/b/m?X-Goog-Signature=ab"}),
     "services.chat.model.uri"),
    ("Azure SAS token", service(model={"uri": "https://a.blob.core.windows.net/c/m?sv=2022&sig=abc"}),
     "services.chat.model.uri"),
    ("token query parameter", service(model={"uri": "https://h/m?token=abc"}), "services.chat.model.uri"),
    ("credentials in a canary model", service(canary={"model": {"uri": "https://u:p@h/m"}, "traffic_percent": 5}),
     "services.chat.canary.model.uri"),
    ("credentials in an A/B variant", service(variants={
        "a": {"model": {"uri": "https://h/a"}, "weight": 50},
        "b": {"model": {"uri": "https://h/b?access_token=x"}, "weight": 50}}), "services.chat.variants.b.model.uri"),
    ("credentials in a batch input URI", batch(input_uri="https://u:p@h/in.jsonl"), "services.chat.batch.input_uri"),
    ("credentials in a batch output URI", batch(output_uri="https://h/out?X-Amz-Signature=x"),
     "services.chat.batch.output_uri"),
    ("credentials in a warm model", {"pools": {"gpu": POOL}, "standby": {"warm": {
        "pool": "gpu", "warm_models": ["https://u:p@h/m"]}}}, "standby.warm.warm_models[0]"),
    ("credentials Secret name not a Kubernetes name",
     service(model={**SERVICE["model"], "credentials_secret": "Model_Creds"}), "services.chat.model.credentials_secret"),
    # The model cache (item 8).
    ("'..' in a model URI", service(model={"uri": "https://h/models/../../etc/passwd"}), "services.chat.model.uri"),
    ("encoded '..' in a model URI", service(model={"uri": "s3://b/%2e%2e/x"}), "services.chat.model.uri"),
    ("short sha256 pin", service(model={"uri": "https://h/m#sha256=abc"}), "services.chat.model.uri"),
    ("md5 pin", service(model={"uri": "https://h/m#md5=" + "0" * 32}), "services.chat.model.uri"),
    # What our runtime cannot fetch is caught when planning, not in a crash-looping pod.
    ("a model URI scheme our runtime has no source for", service(model={"uri": "gcs://b/m"}),
     "services.chat.model.uri"),
    ("a warm model our runtime cannot fetch", {"pools": {"gpu": POOL}, "standby": {"warm": {
        "pool": "gpu", "warm_models": ["hf://Qwen/Qwen2.5-0.5B"]}}}, "standby.warm.warm_models[0]"),
    # Targets in the wrong unit, or past the replica's slots.
    ("a concurrency target over max_concurrency", service(autoscale={"target": 50}), "services.chat.autoscale.target"),
    ("a utilization target written as a fraction", service(autoscale={"metric": "cpu-utilization", "target": 0.7}),
     "services.chat.autoscale.target"),
    ("a latency target written in seconds", service(autoscale={"metric": "latency", "target": 0.2}),
     "services.chat.autoscale.target"),
    ("a standalone policy's namespace in an inline autoscale", service(autoscale={"namespace": "other"}),
     "services.chat.autoscale"),
    ("a standalone policy's target over the service's slots", {"services": {"chat": SERVICE},
        "policies": {"extra": {"service": "chat", "target": 20}}}, "policies.extra.target"),
    # Names the apiserver would refuse part-way through an apply.
    ("a service name starting with a digit", {"services": {"7b-chat": SERVICE}}, "services.7b-chat.name"),
    ("a canary making a Service name over 63 characters", {"services": {"c" * 50: {
        **SERVICE, "canary": {"model": SERVICE["model"], "traffic_percent": 5}}}}, f"services.{'c' * 50}.name"),
    ("an A/B arm making a Service name over 63 characters", service(variants={
        "a" * 50: {"model": SERVICE["model"], "weight": 50}, "b": {"model": SERVICE["model"], "weight": 50}}),
     f"services.chat.variants.{'a' * 50}"),
    ("a pool name that is not a DNS label", {"pools": {"a100_pool": POOL}}, "pools.a100_pool.name"),
    ("a revision that is not a label value", service(model={**SERVICE["model"], "revision": "v1.2+build 7"}),
     "services.chat.model.revision"),
    # Batch mode (item 11).
    ("replicas in mode batch", service(mode="batch", replicas=2, batch={"input_uri": "s3://in/", "output_uri": "s3://out/"}),
     "services.chat.replicas"),
    ("batch output to a local path", batch(output_uri="/results/out.jsonl"), "services.chat.batch.output_uri"),
    ("batch input from file://", batch(input_uri="file:///data/in.jsonl"), "services.chat.batch.input_uri"),
    ("batch parallelism over one output object", batch(output_uri="s3://out/answers.jsonl", parallelism=4),
     "services.chat.batch.output_uri"),
    ("batch input as an http prefix", batch(input_uri="https://h/in/"), "services.chat.batch.input_uri"),
    ("batch credentials Secret with a bad name", batch(credentials_secret="Batch Creds"),
     "services.chat.batch.credentials_secret"),
    # CPU fallback (item 12).
    ("cpu_fallback with 0 GPU replicas", {"pools": {"gpu": POOL}, "services": {"chat": {
        **SERVICE, "pool": "gpu", "gpu_fraction": 0.25, "replicas": 0, "cpu_fallback": True}}}, "services.chat.cpu_fallback"),
    ("cpu_fallback on a CPU-only service", service(cpu_fallback=True), "services.chat.cpu_fallback"),
    ("a second autoscaler for a service with cpu_fallback", {"pools": {"gpu": POOL}, "services": {"chat": {
        **SERVICE, "pool": "gpu", "gpu_fraction": 0.25, "cpu_fallback": True}},
        "policies": {"extra": {"service": "chat", "max_replicas": 4}}}, "policies.extra.service"),
    # MPS and MIG outside GKE (item 13).
    ("MIG on an existing cluster without the GPU operator", {"pools": {"gpu": {**POOL, "gpu_type": "a100-80gb",
        "sharing": {"strategy": "mig", "mig_profile": "1g.10gb"}}}}, "pools.gpu.gpu_operator"),
    ("the GPU operator on GKE", {"pools": {"gpu": {**POOL, "cloud": "gke", "location": "us-central1",
        "gpu_operator": True}}}, "pools.gpu.gpu_operator"),
    # Quotas (item 14).
    ("quota split above the total", {"platform": {"tenants": [{"name": "t", "gpu_quota": 2, "gpu_quota_split": {
        "nvidia.com/gpu": 2, "nvidia.com/mig-1g.10gb": 1}}]}}, "platform.tenants[0].gpu_quota_split"),
    ("quota split on an unknown resource", {"platform": {"tenants": [{"name": "t", "gpu_quota": 2,
        "gpu_quota_split": {"nvidia.com/mig-9g.99gb": 1}}]}}, "platform.tenants[0].gpu_quota_split.nvidia.com/mig-9g.99gb"),
    ("negative quota share", {"platform": {"tenants": [{"name": "t", "gpu_quota": 2,
        "gpu_quota_split": {"nvidia.com/gpu": -1}}]}}, "platform.tenants[0].gpu_quota_split.nvidia.com/gpu"),
    ("a tenant as Prometheus' namespace (it would reach every tenant's metrics ports)",
     {"platform": {"tenants": [{"name": "t", "gpu_quota": 1}], "prometheus_namespaces": ["monitoring", "t"]}},
     "platform.prometheus_namespaces[1]"),
    ("secret_env without a key", service(runtime={"secret_env": {"HF_TOKEN": {"name": "hf"}}}),
     "services.chat.runtime.secret_env.HF_TOKEN.key"),
    ("secret_env variable name with a dash", service(runtime={"secret_env": {"HF-TOKEN": {"name": "hf", "key": "t"}}}),
     "services.chat.runtime.secret_env.HF-TOKEN"),
    ("env variable name with a space", service(runtime={"env": {"A B": "1"}}), "services.chat.runtime.env.A B"),
    ("secret_env overriding a spec-set variable",
     service(runtime={"secret_env": {"INFRA_INFERENCE_MODEL_URI": {"name": "m", "key": "uri"}}}),
     "services.chat.runtime.secret_env.INFRA_INFERENCE_MODEL_URI"),
    ("the same variable in env and secret_env",
     service(runtime={"env": {"HF_TOKEN": "x"}, "secret_env": {"HF_TOKEN": {"name": "hf", "key": "t"}}}),
     "services.chat.runtime.secret_env.HF_TOKEN"),
]


@pytest.mark.parametrize(("what", "doc", "path"), BAD_DOCUMENTS, ids=[c[0] for c in BAD_DOCUMENTS])
def test_bad_document_is_one_spec_error_naming_the_field(what: str, doc: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as err:
        render_stack(doc)
    assert path in err.value.paths, f"{what}: {err.value}"
    # What was refused is never echoed back: an error message is a log line too.
    assert "hunter2" not in str(err.value)
