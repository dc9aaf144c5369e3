"""EKS: an A10G node group with whole-GPU replicas and warm standby nodes sized to the scaling step."""

import pulumi

from infra_inference import GpuPool, InferencePlatform, InferenceService, StandbyPool

config = pulumi.Config()

InferencePlatform("platform", {"install_dcgm_exporter": True})

pool = GpuPool("a10g", {
    "cloud": "eks",
    "cluster": config.get("cluster") or "inference",
    "location": "us-east-1",
    "zones": ["us-east-1a", "us-east-1b"],
    "gpu_type": "a10g",  # g5.xlarge by default
    "min_nodes": 1,
    "max_nodes": 8,
    "node_role_arn": config.get("nodeRoleArn") or "arn:aws:iam::123456789012:role/gpu-nodes",
    "subnet_ids": ["subnet-0a1b2c3d", "subnet-4e5f6a7b"],
})

vision = InferenceService("vision", {
    "pool": pool,
    "gpus": 1,
    "cpu": "3",
    "memory": "12Gi",
    "model": {"uri": "s3://models/vision", "format": "safetensors"},
    "autoscale": {"metric": "concurrency", "min_replicas": 1, "max_replicas": 8, "step": 2,
                  "scale_up_window_s": 0, "scale_down_window_s": 300},
    "zones_spread": True,
})

# Two warm nodes: exactly one scaling step of `vision`, pre-pulling its image and model.
StandbyPool("a10g-warm", {
    "pool": pool,
    "services": [vision],
    "prepull_images": ["ghcr.io/infra-inference/runtime:0.1.0"],
    "warm_models": ["s3://models/vision"],
})

pulumi.export("vision_url", vision.url)
