"""Serving runtimes other than ours: what each needs from a Deployment, looked up in its documentation.

A preset fills the `runtime` fields a service leaves unset. `args` are the
container's arguments after the image's own entrypoint, with `{model_uri}`,
`{model_name}` and `{port}` filled in when rendered.

- vLLM's OpenAI-compatible server (`vllm/vllm-openai`, entrypoint the API
  server): port 8000, `GET /health`, Prometheus `/metrics` on the same port
  with `vllm:num_requests_waiting`, `vllm:num_requests_running` and
  `vllm:gpu_cache_usage_perc` (KV-cache use, 0..1).
- Hugging Face TGI (`text-generation-launcher`): `GET /health`, `/metrics` on
  the same port with `tgi_queue_size`, `tgi_request_duration`; its image listens
  on 80 by default, below what a non-root pod may bind, so the preset passes
  `--port 3000` (the launcher's own default).
- NVIDIA Triton: HTTP on 8000 (OIP: `/v2/health/ready`, `/v2/health/live`),
  metrics on their own port, 8002, with `nv_inference_queue_duration_us`,
  `nv_inference_request_success`, `nv_gpu_utilization`.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Protocol = Literal["oip", "openai", "kserve-v1", "raw"]
PresetName = Literal["vllm", "tgi", "triton"]


class Preset(NamedTuple):
    image: str
    port: int
    readiness_path: str
    liveness_path: str
    metrics_path: str
    metrics_port: int | None  # None: the serving port
    protocol: Protocol
    args: tuple[str, ...]
    formats: tuple[str, ...]  # model formats it serves
    queue_metric: str  # the replica metric that counts requests waiting: what to scale on


PRESETS: dict[str, Preset] = {
    "vllm": Preset("vllm/vllm-openai:v0.6.4", 8000, "/health", "/health", "/metrics", None, "openai",
                   ("--model", "{model_uri}", "--served-model-name", "{model_name}", "--port", "{port}"),
                   ("safetensors", "torch"), "vllm:num_requests_waiting"),
    "tgi": Preset("ghcr.io/huggingface/text-generation-inference:2.4.0", 3000, "/health", "/health", "/metrics",
                  None, "openai", ("--model-id", "{model_uri}", "--port", "{port}"), ("safetensors", "torch"),
                  "tgi_queue_size"),
    "triton": Preset("nvcr.io/nvidia/tritonserver:24.10-py3", 8000, "/v2/health/ready", "/v2/health/live",
                     "/metrics", 8002, "oip",
                     ("tritonserver", "--model-repository={model_uri}", "--http-port={port}"),
                     ("onnx", "torch", "python"), "nv_inference_pending_request_count"),
}
