"""GPU slot arithmetic: what a replica requests and whether a pool can hold it.

A pool's GPU is cut into `slots_per_gpu` slots (4 for time-slicing x4, 7 for
MIG 1g.10gb). A replica asking `gpu_fraction` f of a GPU needs f x slots_per_gpu
slots: 0.25 on a x4 pool is exactly 1 slot; 0.3 on a x4 pool is 1.2 slots,
which no scheduler can honour, so it is an error rather than a silent round-up.
"""

from __future__ import annotations

import math

from infra_inference.errors import SpecProblem
from infra_inference.specs.pool import GpuPoolSpec
from infra_inference.specs.service import InferenceServiceSpec

# 1/7 written as 0.1429 is 1.0003 slots of a MIG 1g pool: close enough to mean one.
_SLOT_TOLERANCE = 1e-3


def slots_per_replica(service: InferenceServiceSpec, pool: GpuPoolSpec | None) -> tuple[int, list[SpecProblem]]:
    """Slots of `pool.gpu_resource` one replica requests (0 for CPU-only), and why it can't be honoured."""
    if pool is None:
        if service.uses_gpu:
            field = "gpu_fraction" if service.gpu_fraction is not None else "gpus"
            return 0, [SpecProblem(field, "asks for a GPU but no pool is given; pass pool=<GpuPool>")]
        return 0, []
    strategy = pool.sharing.strategy
    if service.gpus is not None:
        if strategy != "none":
            return 0, [SpecProblem("gpus", f"whole GPUs need a pool with sharing 'none'; this pool uses "
                                   f"{strategy!r}: use gpu_fraction instead")]
        slots = service.gpus
    else:
        fraction = 1.0 if service.gpu_fraction is None else service.gpu_fraction
        exact = fraction * pool.slots_per_gpu
        slots = round(exact)
        if slots < 1 or abs(exact - slots) > _SLOT_TOLERANCE:
            fix = (f"use a multiple of 1/{pool.slots_per_gpu} = {1 / pool.slots_per_gpu:.4g}"
                   if strategy != "none" else "use a pool with time-slicing, mps or mig sharing, or gpu_fraction 1")
            return 0, [SpecProblem("gpu_fraction", f"{fraction:g} of a GPU is {exact:.3g} slots on a pool with "
                                   f"{pool.slots_per_gpu} slot(s) per GPU ({strategy}); {fix}")]
        if strategy in ("mps", "mig") and slots > 1:
            # The device plugin refuses MPS requests above 1, and a process cannot span MIG instances.
            return 0, [SpecProblem("gpu_fraction", f"{strategy} gives one slot per replica; use gpu_fraction "
                                   f"{1 / pool.slots_per_gpu:.4g} or a bigger MIG profile")]
    if slots > pool.slots_per_node:
        return 0, [SpecProblem("gpu_fraction" if service.gpus is None else "gpus",
                               f"a replica needs {slots} GPU slots but one node of the pool has "
                               f"{pool.slots_per_node}; use a bigger machine (gpus_per_node) or a smaller request")]
    return slots, []


def service_problems(service: InferenceServiceSpec, pool: GpuPoolSpec | None) -> list[SpecProblem]:
    """Everything wrong with running `service` on `pool`, beyond each spec on its own."""
    _, out = slots_per_replica(service, pool)
    scaling = service.autoscale
    if scaling is not None and scaling.metric == "gpu-utilization" and not service.uses_gpu:
        out.append(SpecProblem("autoscale.metric", "gpu-utilization on a CPU-only service (no gpu_fraction "
                               "or gpus); use cpu-utilization or concurrency"))
    if service.cpu_fallback and not service.uses_gpu:
        out.append(SpecProblem("cpu_fallback", "only applies to GPU services (set gpu_fraction or gpus)"))
    if pool is not None and not service.uses_gpu:
        out.append(SpecProblem("pool", "a pool is given but no gpu_fraction or gpus; say how much GPU a "
                               "replica needs, or drop the pool for a CPU-only service"))
    if scaling is not None and pool is not None and service.uses_gpu:
        slots, _ = slots_per_replica(service, pool)
        if slots and scaling.max_replicas * slots > pool.max_slots:
            out.append(SpecProblem("autoscale.max_replicas", f"{scaling.max_replicas} replicas x {slots} slot(s) "
                                   f"is above the pool's {pool.max_slots} slots; raise the pool's max_nodes "
                                   f"or lower max_replicas"))
    return out


def standby_instances(explicit: int | None, slots_per_instance: int,
                      steps: list[tuple[int, int]]) -> int:
    """Placeholders to hold: `explicit`, else enough for the largest scaling step.

    `steps` holds (step, slots_per_replica) of each service on the pool. A step
    of 2 replicas at 1 slot each on 4-slot placeholders needs ceil(2 x 1 / 4) = 1
    placeholder; a step of 3 whole-GPU replicas on 1-GPU nodes needs 3.
    """
    if explicit is not None:
        return explicit
    needed = [math.ceil(step * slots / slots_per_instance) for step, slots in steps if slots]
    return max(needed, default=1)


def standby_problems(instances: int, slots_per_instance: int, pool: GpuPoolSpec) -> list[SpecProblem]:
    """A standby that could never fit on the pool."""
    out: list[SpecProblem] = []
    if slots_per_instance > pool.slots_per_node:
        out.append(SpecProblem("slots_per_instance", f"{slots_per_instance} slots is more than one node holds "
                               f"({pool.slots_per_node}); a placeholder could never be scheduled"))
    if instances * slots_per_instance > pool.max_slots:
        out.append(SpecProblem("instances", f"{instances} x {slots_per_instance} slots is above the pool's "
                               f"capacity of {pool.max_slots} slots (max_nodes {pool.max_nodes} x "
                               f"{pool.slots_per_node}); lower instances or raise max_nodes"))
    return out
