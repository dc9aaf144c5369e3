"""StandbyPool: warm GPU capacity held by placeholder pods, plus image and model pre-pull."""


from typing import TypedDict

import pulumi

from infra_inference.components import gate, kube
from infra_inference.components.gpu_pool import GpuPool
from infra_inference.components.inference_service import InferenceService
from infra_inference.components.inputs import split
from infra_inference.components.platform import ImageArgs
from infra_inference.errors import SpecError, SpecProblem
from infra_inference.plan.components import StandbyPlan, plan_standby
from infra_inference.render.standby import standby_objects


class StandbyPoolArgs(TypedDict, total=False):
    pool: GpuPool
    """The GpuPool to keep warm. Required."""
    instances: int
    """Placeholders to keep. Default: enough for one scaling step of each of `services`, else 1."""
    services: list[InferenceService]
    """Services on this pool whose scaling step sizes the default `instances`."""
    slots_per_instance: int
    """GPU slots each placeholder holds. Default one node's worth, so each placeholder keeps one node warm."""
    prepull_images: list[str]
    """Images pulled onto every pool node ahead of need."""
    warm_models: list[str]
    """Model URIs fetched into every pool node's model cache."""
    model_cache_max_bytes: int
    """Bound on the namespace's node-local model cache while warm_models are fetched; set it as the
    namespace's services set runtime.model_cache_max_bytes. Default 53687091200 (50 GiB)."""
    namespace: str
    """Namespace of the placeholders. Default inference."""
    runtime_image: ImageArgs
    """Our runtime image, which warms the model cache. Default ghcr.io/infra-inference/runtime:0.1.0."""


class StandbyPool(pulumi.ComponentResource):
    """A Deployment of pause pods at `inference-standby` priority holding instances x slots_per_instance
    of the pool's GPU resource, and a DaemonSet that pre-pulls images and warms the model cache."""

    pulumi_type = "infra-inference:index:StandbyPool"

    instances: pulumi.Output[int]
    """Placeholders held."""
    slots_per_instance: pulumi.Output[int]
    """GPU slots per placeholder."""

    def __init__(self, name: str, args: StandbyPoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        subject = f"StandbyPool {name!r}"
        with gate.validating():
            plain, _ = split(dict(args), {}, subject)
            pool = plain.pop("pool", None)
            if not isinstance(pool, GpuPool):
                raise SpecError([SpecProblem("pool", "required: the GpuPool to keep warm")], subject=subject)
            services: list[InferenceService] = plain.pop("services", None) or []
            self.plan: StandbyPlan = plan_standby(name, plain, pool.plan, [s.plan for s in services], subject)
        super().__init__(self.pulumi_type, name, {}, gate.held(opts))
        kube.create(name, standby_objects(self.plan), pulumi.ResourceOptions(parent=self), depends_on=[pool])
        self.instances = pulumi.Output.from_input(self.plan.instances)
        self.slots_per_instance = pulumi.Output.from_input(self.plan.slots_per_instance)
        self.register_outputs({"instances": self.instances, "slots_per_instance": self.slots_per_instance})
