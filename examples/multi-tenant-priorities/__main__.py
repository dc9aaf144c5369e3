"""Two tenants with GPU quotas on one cluster; online inference preempts training."""

import pulumi

from infra_inference import AutoscalePolicy, GpuPool, InferencePlatform, InferenceService

platform = InferencePlatform("platform", {
    "install_device_plugin": True,
    "tenants": [
        # The ranker's 14 replicas of a 1g.10gb MIG slice are 14 / 7 = 2 GPUs; quota counts each
        # resource on its own, so the 8 GPUs are split between MIG slices and whole GPUs.
        {"name": "search", "gpu_quota": 8, "cpu_quota": "64", "memory_quota": "256Gi",
         "gpu_quota_split": {"nvidia.com/mig-1g.10gb": 4, "nvidia.com/gpu": 4}},
        {"name": "research", "gpu_quota": 16, "gpu_quota_split": {"nvidia.com/mig-1g.10gb": 16}},
    ],
})

pool = GpuPool("h100", {
    "cloud": "existing",
    "cluster": "shared",
    "gpu_type": "h100-80gb",
    "gpus_per_node": 8,
    "max_nodes": 4,
    "sharing": {"strategy": "mig", "mig_profile": "1g.10gb"},
    # NVIDIA's GPU operator (mig.strategy=mixed) runs here: its mig-manager partitions the GPUs.
    "gpu_operator": True,
})

# Online, customer-facing: priority inference-online preempts the research team's training pods.
ranker = InferenceService("ranker", {
    "namespace": "search",
    "pool": pool,
    "gpu_fraction": 1 / 7,  # one 1g.10gb MIG slice
    "model": {"uri": "s3://search/ranker", "format": "safetensors"},
    "autoscale": {"metric": "latency", "target": 80, "min_replicas": 2, "max_replicas": 14},
    "zones_spread": True,
})

# Offline scoring: batch priority, waits for capacity instead of preempting.
InferenceService("nightly-scoring", {
    "namespace": "research",
    "pool": pool,
    "gpu_fraction": 1 / 7,
    "mode": "batch",
    "model": {"uri": "s3://research/scorer", "format": "safetensors"},
    "batch": {"input_uri": "s3://research/in/", "output_uri": "s3://research/out/", "parallelism": 4},
})

# A workload not declared here, scaled on CPU by the HPA.
AutoscalePolicy("legacy-api", {"deployment": "legacy-api", "namespace": "search", "metric": "cpu-utilization",
                               "target": 60, "min_replicas": 2, "max_replicas": 6, "engine": "hpa",
                               "scale_down_window_s": 120})

pulumi.export("ranker_url", ranker.url)
pulumi.export("training_priority_class", platform.priority_classes.apply(lambda pcs: pcs["training"]))
