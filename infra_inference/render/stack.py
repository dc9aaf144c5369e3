"""A whole stack from one document: the `infra-inference render` input.

The document's keys are the components' argument keys, grouped by kind:

    platform: {namespace: inference, tenants: [...]}
    pools:    {gpu: {cloud: existing, cluster: c, gpu_type: l4, ...}}
    standby:  {warm: {pool: gpu, services: [chat]}}
    services: {chat: {pool: gpu, gpu_fraction: 0.25, model: {...}, ...}}
    policies: {legacy: {deployment: old-app, metric: cpu-utilization, ...}}

References between entries (`pool`, `service`) are by name. Every problem in
the document is reported at once, each under its path (`services.chat.gpu_fraction`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from infra_inference.decide.coldstart import budget_problems, estimate
from infra_inference.errors import SpecError, SpecProblem
from infra_inference.plan.components import (
    PoolPlan, ServicePlan, StandbyPlan, plan_platform, plan_policy, plan_pool, plan_service, plan_service_policy,
    plan_standby,
)
from infra_inference.render.autoscale import autoscale_objects
from infra_inference.render.common import Obj
from infra_inference.render.platform import platform_objects
from infra_inference.render.pool import pool_objects
from infra_inference.render.service import service_objects
from infra_inference.render.standby import standby_objects

SECTIONS = ("platform", "pools", "standby", "services", "policies")
T = TypeVar("T")


class _Collector:
    """Runs each entry's planning, keeps what succeeded, and gathers every SpecError under its path."""

    def __init__(self) -> None:
        self.problems: list[SpecProblem] = []

    def attempt(self, path: str, fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except SpecError as err:
            self.problems += [SpecProblem(f"{path}.{p.path}" if p.path else path, p.message) for p in err.problems]
            return None

    def reference(self, path: str, table: Mapping[str, T], key: object, kind: str) -> T | None:
        if isinstance(key, str) and key in table:
            return table[key]
        self.problems.append(SpecProblem(path, f"no {kind} named {key!r}; declared: {sorted(table) or 'none'}"))
        return None


def _section(doc: Mapping[str, Any], key: str, c: _Collector) -> dict[str, dict[str, Any]]:
    value = doc.get(key) or {}
    if not isinstance(value, Mapping) or not all(isinstance(v, Mapping) for v in value.values()):
        c.problems.append(SpecProblem(key, "must map names to argument objects"))
        return {}
    return {str(k): dict(v) for k, v in value.items()}


def render_stack(doc: Mapping[str, Any], warn: Callable[[str], None] | None = None) -> list[Obj]:
    """Every Kubernetes object of the stack, in apply order (cluster-wide first).

    `warn` hears what is valid but likely wrong (a cold start longer than the
    gateway's timeout at min_replicas 0), each line under its path.
    """
    c = _Collector()
    unknown = sorted(set(doc) - set(SECTIONS))
    c.problems += [SpecProblem(k, f"unknown section; use {', '.join(SECTIONS)}") for k in unknown]
    out: list[Obj] = []

    platform = c.attempt("platform", lambda: plan_platform(doc.get("platform") or {}))
    if platform is not None:
        out += platform_objects(platform)
    # Entries without a namespace land in the platform's, which this document creates.
    home: dict[str, Any] = {"namespace": platform.namespace} if platform is not None and "platform" in doc else {}
    if platform is not None and "runtime_image" in platform.model_fields_set:
        # ...and run the platform's runtime image unless they name their own.
        home["runtime_image"] = platform.runtime_image.model_dump(exclude_unset=True)

    pools: dict[str, PoolPlan] = {}
    for name, args in _section(doc, "pools", c).items():
        plan = c.attempt(f"pools.{name}", lambda n=name, a=args: plan_pool(n, a))
        if plan is not None:
            pools[name] = plan
            out += pool_objects(plan)

    services: dict[str, ServicePlan] = {}
    for name, args in _section(doc, "services", c).items():
        pool_name = args.pop("pool", None)
        pool = None if pool_name is None else c.reference(f"services.{name}.pool", pools, pool_name, "pool")
        if pool_name is not None and pool is None:
            continue
        plan = c.attempt(f"services.{name}", lambda n=name, a=args, p=pool: plan_service(n, {**home, **a}, p))
        if plan is not None:
            services[name] = plan
            out += service_objects(plan)
            policy = plan_service_policy(plan)
            if policy is not None:
                out += autoscale_objects(policy)

    standbys: dict[str, StandbyPlan] = {}
    for name, args in _section(doc, "standby", c).items():
        pool = c.reference(f"standby.{name}.pool", pools, args.pop("pool", None), "pool")
        listed = [c.reference(f"standby.{name}.services[{i}]", services, s, "service")
                  for i, s in enumerate(args.pop("services", None) or [])]
        if pool is None or None in listed:
            continue
        plan = c.attempt(f"standby.{name}",
                         lambda n=name, a=args, p=pool, ss=listed: plan_standby(n, {**home, **a}, p, ss))
        if plan is not None:
            standbys[pool.name] = plan
            out += standby_objects(plan)
    if warn is not None:
        for name, s in services.items():
            standby = standbys.get(s.placement.pool_name or "")
            budget = estimate(s.spec, s.placement.pool, standby.spec if standby else None)
            for p in budget_problems(s.spec, budget)[1]:
                warn(f"services.{name}.{p.path}: {p.message}")

    for name, args in _section(doc, "policies", c).items():
        svc_name = args.pop("service", None)
        svc = None if svc_name is None else c.reference(f"policies.{name}.service", services, svc_name, "service")
        if svc_name is not None and svc is None:
            continue
        policy_args = {**home, **args} if svc is None else args  # a service's policy follows the service
        plan = c.attempt(f"policies.{name}", lambda n=name, a=policy_args, s=svc: plan_policy(n, a, s))
        if plan is not None:
            out += autoscale_objects(plan)

    if c.problems:
        raise SpecError(c.problems, subject="stack")
    return out
