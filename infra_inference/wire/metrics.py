"""Prometheus metric names: the runtime exports them, the autoscaler and render/'s HPA/KEDA objects read them.

Counters are named without `_total` (prometheus_client appends it on export);
the `*_TOTAL`, `*_BUCKET` names are the series as scraped.
"""

from __future__ import annotations

from dataclasses import dataclass

INFLIGHT_REQUESTS = "infra_inference_inflight_requests"
QUEUE_DEPTH = "infra_inference_queue_depth"
READY_REPLICAS = "infra_inference_ready_replicas"
DESIRED_REPLICAS = "infra_inference_desired_replicas"
REQUESTS = "infra_inference_requests"
REQUESTS_TOTAL = f"{REQUESTS}_total"
ARRIVALS = "infra_inference_arrivals"
ARRIVALS_TOTAL = f"{ARRIVALS}_total"
REQUEST_DURATION = "infra_inference_request_duration_seconds"
REQUEST_DURATION_BUCKET = f"{REQUEST_DURATION}_bucket"
REPLICA_DURATION = "infra_inference_replica_duration_seconds"
BATCH_SIZE = "infra_inference_batch_size"
# The gateway's, for generative models (streamed answers, token usage).
TIME_TO_FIRST_TOKEN = "infra_inference_time_to_first_token_seconds"
TIME_TO_FIRST_TOKEN_BUCKET = f"{TIME_TO_FIRST_TOKEN}_bucket"
STREAM_DURATION = "infra_inference_stream_duration_seconds"
STREAMS_BROKEN = "infra_inference_streams_broken"
GENERATED_TOKENS = "infra_inference_generated_tokens"
MODEL_LOAD = "infra_inference_model_load_seconds"
GPU_UTILIZATION = "infra_inference_gpu_utilization_ratio"
GPU_MEMORY_USED = "infra_inference_gpu_memory_used_bytes"
PROCESS_CPU_TOTAL = "process_cpu_seconds_total"
# NVIDIA's dcgm-exporter (render/nvidia.py installs it), not ours.
DCGM_GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"

# Request durations, server and gateway alike: 1 ms to 30 s, dense around a 100 ms p95 SLO.
DURATION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class AdapterMetric:
    """A Pods metric the HPA reads through a Prometheus adapter, and the exported series the adapter rule reads.

    Args:
        name: What the HPA asks the custom-metrics API for.
        series: The scraped series the rule is written over.
        rule: The adapter's `metricsQuery`, in its template language.
    """

    name: str
    series: str
    rule: str


# sdk-docs/autoscaling.md gives the adapter configuration built from these.
HPA_PODS_METRICS = {
    "concurrency": AdapterMetric(INFLIGHT_REQUESTS, INFLIGHT_REQUESTS,
                                 "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"),
    "throughput": AdapterMetric("infra_inference_requests_per_second", REQUESTS_TOTAL,
                                "sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)"),
    "latency": AdapterMetric("infra_inference_request_duration_p95_ms", REQUEST_DURATION_BUCKET,
                             "histogram_quantile(0.95, sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) "
                             "by (le, <<.GroupBy>>)) * 1000"),
    "gpu-utilization": AdapterMetric(DCGM_GPU_UTIL, DCGM_GPU_UTIL,
                                     "avg(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"),
}
