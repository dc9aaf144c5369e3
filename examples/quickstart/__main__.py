"""Quickstart: one time-sliced L4 pool on an existing cluster, one service at a quarter GPU.

Same stack as spec.yaml (for `infra-inference render`); a test checks both give identical objects.
"""

import pulumi

from infra_inference import GpuPool, InferencePlatform, InferenceService, StandbyPool

InferencePlatform("platform", {"namespace": "inference"})

# Four slots per GPU: a 0.25-GPU replica takes exactly one.
pool = GpuPool("gpu", {
    "cloud": "existing",
    "cluster": "dev",
    "gpu_type": "l4",
    "gpus_per_node": 1,
    "min_nodes": 1,
    "max_nodes": 2,
    "sharing": {"strategy": "time-slicing", "replicas_per_gpu": 4},
})

chat = InferenceService("chat", {
    "pool": pool,
    "gpu_fraction": 0.25,
    "model": {"uri": "https://models.example.com/echo.safetensors", "format": "safetensors", "name": "chat"},
    "runtime": {"max_concurrency": 8, "max_queue": 32, "timeout_s": 30},
    "autoscale": {"metric": "concurrency", "min_replicas": 0, "max_replicas": 8, "scale_to_zero_after_s": 300},
})

# One placeholder holding a node's worth of slots keeps the next node warm.
StandbyPool("warm", {"pool": pool, "instances": 1})

pulumi.export("url", chat.url)
pulumi.export("gpu_resource", pool.gpu_resource)
