"""The cold-start budget: how long a replica takes from asked-for to ready, estimated from the spec.

Three parts, each from what the spec declares (DESIGN.md's field numbers):
- provisioning: a GPU node from the cloud takes minutes (PROVISION_S) unless a
  StandbyPool holds warm capacity on the pool (a placeholder is preempted at
  once) or the pool is an existing cluster that does not grow;
- image pull: a serving image is ~6.7 GB, ~3 minutes at the ~37 MB/s a node
  pulls (IMAGE_PULL_S); nothing when the StandbyPool pre-pulls it; GKE image
  streaming starts the container after the first layers (IMAGE_STREAM_S);
- model load: `model.size_bytes` from the origin at ~64 MB/s (5 GB in 1.3 min),
  or from the node cache when a StandbyPool warms the model (~1 GB/s).
Plus the process start and first readiness probe (START_S).

`budget_problems` turns the estimate into what a user must hear: a SpecError
when even the best case (warm node, image present, model in the node cache)
outlasts the gateway's `timeout_s` at `min_replicas: 0` (every wake from zero
would time out its first requests), and warnings when the declared setup's
estimate outlasts `timeout_s`, or `scale_to_zero_after_s` is shorter than the
cold start (each idle gap that short pays a whole cold start to save less).
"""

from __future__ import annotations

from dataclasses import dataclass

from infra_inference.errors import SpecProblem
from infra_inference.specs.pool import GpuPoolSpec
from infra_inference.specs.service import InferenceServiceSpec
from infra_inference.specs.standby import StandbyPoolSpec

PROVISION_S = 120.0        # a GPU node from GKE or EKS, boot and device plugin included
IMAGE_PULL_S = 180.0       # a 6.7 GB serving image
IMAGE_STREAM_S = 15.0      # GKE image streaming: the first layers, the rest on demand
ORIGIN_BYTES_PER_S = 64e6  # 5 GB in 1.3 min at 1 Gbps, protocol and checksum included
CACHE_BYTES_PER_S = 1e9    # node-local NVMe, streamed and memory-mapped
START_S = 5.0              # process start, first readiness probe


@dataclass(frozen=True)
class ColdStartBudget:
    """Seconds from a replica asked for to ready, in parts, and the best case (everything warm)."""

    provisioning_s: float
    image_pull_s: float
    model_load_s: float
    best_case_s: float

    @property
    def total_s(self) -> float:
        return START_S + self.provisioning_s + self.image_pull_s + self.model_load_s

    def describe(self) -> str:
        return (f"~{self.total_s:.0f}s (provisioning {self.provisioning_s:.0f}s, image pull "
                f"{self.image_pull_s:.0f}s, model load {self.model_load_s:.0f}s, start {START_S:.0f}s)")


def estimate(service: InferenceServiceSpec, pool: GpuPoolSpec | None,
             standby: StandbyPoolSpec | None) -> ColdStartBudget:
    """The cold start of `service` on `pool`, with `standby` the StandbyPool on that pool if any.

    A 5 GB model on a GKE pool with no standby: 120 + 180 + 78 + 5 = 383 s;
    with a standby that pre-pulls the image and warms the model: 5 + 5 = 10 s.
    """
    size = service.model.size_bytes or 0
    image = service.runtime.image or service.runtime_image.ref
    growing = pool is not None and pool.cloud != "existing"
    provisioning = PROVISION_S if growing and (standby is None or standby.instances == 0) else 0.0
    if pool is None or (standby is not None and image in standby.prepull_images):
        pull = 0.0
    else:
        pull = IMAGE_STREAM_S if pool.image_streaming else IMAGE_PULL_S
    cached = standby is not None and service.model.uri in standby.warm_models
    load = size / (CACHE_BYTES_PER_S if cached else ORIGIN_BYTES_PER_S)
    return ColdStartBudget(provisioning, pull, load, START_S + size / CACHE_BYTES_PER_S)


def budget_problems(service: InferenceServiceSpec, budget: ColdStartBudget) -> tuple[list[SpecProblem],
                                                                                  list[SpecProblem]]:
    """(errors, warnings) of `service`'s autoscaling against its cold start."""
    policy = service.autoscale
    if policy is None or policy.min_replicas > 0:
        return [], []
    timeout = service.runtime.timeout_s
    errors, warnings = [], []
    if timeout < budget.best_case_s:
        errors.append(SpecProblem("runtime.timeout_s", f"{timeout:g}s is shorter than the fastest possible cold "
                                  f"start, ~{budget.best_case_s:.0f}s (model {service.model.size_bytes} bytes from "
                                  f"the node cache): with min_replicas 0 every wake would time out its first "
                                  f"requests; raise timeout_s or set min_replicas >= 1"))
    elif timeout < budget.total_s:
        warnings.append(SpecProblem("runtime.timeout_s", f"{timeout:g}s is shorter than the cold start, "
                                    f"{budget.describe()}: with min_replicas 0 the first requests of each wake "
                                    f"time out; add a StandbyPool that pre-pulls the image and warms the model, "
                                    f"raise timeout_s, or set min_replicas >= 1"))
    if 0 < policy.scale_to_zero_after_s < budget.total_s:
        warnings.append(SpecProblem("autoscale.scale_to_zero_after_s", f"{policy.scale_to_zero_after_s:g}s is "
                                    f"shorter than the cold start, {budget.describe()}: an idle gap that short "
                                    f"costs a whole cold start to save less; the native autoscaler idles at "
                                    f"least 12 measured cold starts anyway"))
    return errors, warnings
