"""GKE: an L4 node pool shared by time-slicing, two fractional services, spot nodes, image streaming."""

import pulumi

from infra_inference import GpuPool, InferencePlatform, InferenceService, StandbyPool

config = pulumi.Config()
cluster = config.get("cluster") or "inference-cluster"

InferencePlatform("platform", {"install_dcgm_exporter": True})

pool = GpuPool("l4", {
    "cloud": "gke",
    "cluster": cluster,
    "location": "us-central1",
    "zones": ["us-central1-a", "us-central1-b"],
    "gpu_type": "l4",  # g2-standard-8 by default
    "min_nodes": 0,
    "max_nodes": 6,
    "spot": True,
    "image_streaming": True,
    "sharing": {"strategy": "time-slicing", "replicas_per_gpu": 4},
})

# Half a GPU is two of the pool's four slots per GPU.
llm = InferenceService("llm", {
    "pool": pool,
    "gpu_fraction": 0.5,
    "model": {"uri": "gs://models/llm-small", "format": "safetensors"},
    "runtime": {"max_concurrency": 16, "max_queue": 64, "batching": {"max_batch_size": 8, "max_wait_ms": 5}},
    "autoscale": {"metric": "concurrency", "target": 10, "min_replicas": 1, "max_replicas": 12, "step": 2},
    "zones_spread": True,
})

embed = InferenceService("embed", {
    "pool": pool,
    "gpu_fraction": 0.25,
    "model": {"uri": "gs://models/embedder", "format": "safetensors"},
    "autoscale": {"metric": "throughput", "target": 200, "min_replicas": 0, "max_replicas": 8,
                  "scale_to_zero_after_s": 600},
    "canary": {"model": {"uri": "gs://models/embedder-v2", "format": "safetensors"}, "traffic_percent": 10},
})

# One scaling step of the larger of the two (llm: 2 replicas x 2 slots = one node).
StandbyPool("l4-warm", {"pool": pool, "services": [llm, embed],
                        "prepull_images": ["ghcr.io/infra-inference/runtime:0.1.0"]})

pulumi.export("llm_url", llm.url)
pulumi.export("embed_url", embed.url)
