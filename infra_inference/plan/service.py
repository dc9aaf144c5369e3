"""A service's shape: its replica sets (variants), where they run, and where it answers."""

from __future__ import annotations

from dataclasses import dataclass

from infra_inference.specs.pool import GpuPoolSpec
from infra_inference.specs.service import InferenceServiceSpec, ModelSpec, RuntimeSpec
from infra_inference.wire.names import gateway_admin_url, gateway_url


@dataclass(frozen=True)
class Variant:
    """One set of replicas behind the gateway: the main one, a canary, an A/B arm or the CPU fallback."""

    key: str
    deployment: str
    model: ModelSpec
    runtime: RuntimeSpec
    weight: float
    gpu: bool


@dataclass(frozen=True)
class Placement:
    """Where replicas run and what GPU they hold; `pool` is None for CPU-only services."""

    pool_name: str | None
    pool: GpuPoolSpec | None
    slots: int


def variants(spec: InferenceServiceSpec) -> list[Variant]:
    """Every replica set of the service, with its traffic weight in percent."""
    gpu = spec.uses_gpu
    if spec.variants:
        out = [Variant(k, f"{spec.name}-{k}", v.model, spec.runtime, v.weight, gpu)
               for k, v in sorted(spec.variants.items())]
    elif spec.canary is not None:
        c = spec.canary
        out = [Variant("main", spec.name, spec.model, spec.runtime, 100 - c.traffic_percent, gpu),
               Variant("canary", f"{spec.name}-canary", c.model or spec.model, c.runtime or spec.runtime,
                       c.traffic_percent, gpu)]
    else:
        out = [Variant("main", spec.name, spec.model, spec.runtime, 100.0, gpu)]
    if spec.cpu_fallback:
        # Weight 0: the gateway sends it traffic only while no GPU replica has a free slot.
        out.append(Variant("cpu", f"{spec.name}-cpu", spec.model, spec.runtime, 0.0, False))
    return out



def service_url(spec: InferenceServiceSpec) -> str:
    return gateway_url(spec.name, spec.namespace)


def service_admin_url(spec: InferenceServiceSpec) -> str:
    """Each gateway pod's admin port (metrics, activator), where the autoscaler reads the gateway."""
    return gateway_admin_url(spec.name, spec.namespace)
