"""From user arguments to validated plans, one function per component.

A plan is every decision about a component that is not yet a Kubernetes
object: its validated spec, where it runs, how many of what. render/ turns
plans into objects; the Pulumi components and `infra-inference render` both
plan through here, so both delivery paths produce the same objects by
construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from infra_inference.decide.coldstart import budget_problems, estimate
from infra_inference.decide.packing import service_problems, slots_per_replica, standby_instances, standby_problems
from infra_inference.errors import SpecError, SpecProblem
from infra_inference.plan.service import Placement, service_admin_url, variants
from infra_inference.specs.autoscale import GATEWAY_METRICS, AutoscalePolicySpec, ScalingSpec
from infra_inference.specs.image import ImageSpec
from infra_inference.specs.names import check_dns_label
from infra_inference.specs.platform import PlatformSpec
from infra_inference.specs.pool import GpuPoolSpec
from infra_inference.specs.service import InferenceServiceSpec
from infra_inference.specs.standby import StandbyPoolSpec
from infra_inference.wire.names import autoscaler_name, replicas_service
from infra_inference.wire.policy import FallbackConfig


@dataclass(frozen=True)
class PoolPlan:
    name: str
    spec: GpuPoolSpec


@dataclass(frozen=True)
class ServicePlan:
    spec: InferenceServiceSpec
    placement: Placement

    @property
    def deployments(self) -> list[str]:
        return [v.deployment for v in variants(self.spec)]

    @property
    def replica_ports(self) -> dict[str, int]:
        return {v.deployment: v.runtime.port for v in variants(self.spec)}

    @property
    def replica_metrics_ports(self) -> dict[str, int]:
        """Where a variant's server exports metrics on another port than it serves on (Triton: 8002)."""
        return {v.deployment: v.runtime.scrape_port for v in variants(self.spec)
                if v.runtime.scrape_port != v.runtime.port}

    @property
    def step_and_slots(self) -> tuple[int, int]:
        return (self.spec.autoscale.step if self.spec.autoscale else 1), self.placement.slots


@dataclass(frozen=True)
class StandbyPlan:
    name: str
    pool: PoolPlan
    spec: StandbyPoolSpec
    instances: int
    slots_per_instance: int

    @property
    def namespace(self) -> str:
        return self.spec.namespace


@dataclass(frozen=True)
class PolicyPlan:
    name: str
    namespace: str
    deployments: list[str]
    service: str
    policy: ScalingSpec
    target: float
    gateway_url: str | None
    replica_ports: dict[str, int]
    replica_metrics_ports: dict[str, int] = field(default_factory=dict)
    replica_metrics_path: str = "/metrics"
    fallback: FallbackConfig | None = None
    image: ImageSpec = field(default_factory=ImageSpec)


def plan_platform(args: Mapping[str, Any], subject: str = "InferencePlatform") -> PlatformSpec:
    return PlatformSpec.parse(args, subject=subject)


# A Service's name is a DNS-1035 label: at most 63 characters, starting with a letter.
MAX_SERVICE_NAME = 63


def _named(name: str, subject: str) -> None:
    """A component's name starts every object name it renders: it must be a DNS label, as a service's is."""
    try:
        check_dns_label(name)
    except ValueError as exc:
        raise SpecError([SpecProblem("name", str(exc))], subject=subject) from None


def _object_name_problems(spec: InferenceServiceSpec) -> list[SpecProblem]:
    """Service names the apiserver would refuse, found before any object is created.

    A 50-character name with a canary makes `<name>-canary-replicas`, 66 characters; an A/B arm adds
    its own key.
    """
    out = []
    if not spec.name[0].isalpha():
        out.append(SpecProblem("name", f"{spec.name!r} starts with a digit; its Services' names must start "
                               f"with a letter"))
    for v in variants(spec):
        longest = replicas_service(v.deployment)
        if len(longest) > MAX_SERVICE_NAME:
            out.append(SpecProblem(f"variants.{v.key}" if spec.variants else "name",
                                   f"makes the Service {longest!r}, {len(longest)} characters, over Kubernetes' "
                                   f"{MAX_SERVICE_NAME}; shorten it by {len(longest) - MAX_SERVICE_NAME}"))
    return out


def plan_pool(name: str, args: Mapping[str, Any], subject: str = "") -> PoolPlan:
    subject = subject or f"GpuPool {name!r}"
    _named(name, subject)
    return PoolPlan(name, GpuPoolSpec.parse(args, subject=subject))


def plan_service(name: str, args: Mapping[str, Any], pool: PoolPlan | None, subject: str = "") -> ServicePlan:
    subject = subject or f"InferenceService {name!r}"
    spec = InferenceServiceSpec.parse({"name": name, **args}, subject=subject)
    pool_spec = pool.spec if pool else None
    problems = _object_name_problems(spec) + service_problems(spec, pool_spec)
    problems += budget_problems(spec, estimate(spec, pool_spec, None))[0]
    if problems:
        raise SpecError(problems, subject=subject)
    slots, _ = slots_per_replica(spec, pool_spec)
    placement = Placement(pool.name if pool else None, pool_spec, slots)
    return ServicePlan(spec, placement)


def plan_standby(name: str, args: Mapping[str, Any], pool: PoolPlan, services: Sequence[ServicePlan],
                 subject: str = "") -> StandbyPlan:
    """`services`: the services on `pool` whose scaling step sizes the default `instances`."""
    subject = subject or f"StandbyPool {name!r}"
    _named(name, subject)
    spec = StandbyPoolSpec.parse(args, subject=subject)
    slots = spec.slots_per_instance or pool.spec.slots_per_node
    instances = standby_instances(spec.instances, slots, [s.step_and_slots for s in services])
    problems = [SpecProblem(f"services[{i}]", f"{s.spec.name!r} runs on "
                            f"{f'pool {s.placement.pool_name!r}' if s.placement.pool_name else 'CPU'}, "
                            f"not on pool {pool.name!r}; list only this pool's services")
                for i, s in enumerate(services) if s.placement.pool_name != pool.name]
    problems += standby_problems(instances, slots, pool.spec)
    if problems:
        raise SpecError(problems, subject=subject)
    return StandbyPlan(name, pool, spec, instances, slots)


def _fallback(spec: InferenceServiceSpec, max_replicas: int) -> FallbackConfig | None:
    if not spec.cpu_fallback:
        return None
    slots = spec.runtime.max_concurrency
    return FallbackConfig(deployment=variants(spec)[-1].deployment, max_replicas=max_replicas,
                          slots_per_replica=slots, gpu_slots_per_replica=slots)


def plan_service_policy(service: ServicePlan) -> PolicyPlan | None:
    """The policy of a service's inline `autoscale`; None for batch, and for fixed replicas without a CPU fallback.

    Fixed replicas with a CPU fallback still get an autoscaler, for the fallback
    alone: its policy holds the GPU deployments at their count (min = max).
    """
    spec = service.spec
    if spec.mode == "batch":
        return None
    policy = spec.autoscale
    if policy is None:
        if not spec.cpu_fallback:
            return None
        fixed = 1 if spec.replicas is None else spec.replicas
        policy = ScalingSpec(min_replicas=fixed, max_replicas=fixed)
    return PolicyPlan(autoscaler_name(spec.name), spec.namespace, service.deployments, spec.name, policy,
                      policy.resolved_target(spec.runtime.max_concurrency), service_admin_url(spec),
                      service.replica_ports, service.replica_metrics_ports, spec.runtime.metrics_path,
                      _fallback(spec, policy.max_replicas), spec.runtime_image)


def plan_policy(name: str, args: Mapping[str, Any], service: ServicePlan | None, subject: str = "") -> PolicyPlan:
    """A standalone AutoscalePolicy: for a declared service, or an existing Deployment by name."""
    subject = subject or f"AutoscalePolicy {name!r}"
    _named(name, subject)
    spec = AutoscalePolicySpec.parse(args, subject=subject)
    problems: list[SpecProblem] = []
    if (service is None) == (spec.deployment is None):
        problems.append(SpecProblem("deployment", "give exactly one of service (an InferenceService) or "
                                    "deployment (the name of an existing Deployment)"))
    elif service is not None and service.spec.autoscale is not None:
        problems.append(SpecProblem("service", f"{service.spec.name!r} already has an inline autoscale; "
                                    f"remove one of the two"))
    elif service is not None and service.spec.cpu_fallback:
        problems.append(SpecProblem("service", f"{service.spec.name!r} has cpu_fallback, which its own autoscaler "
                                    f"sizes; give the policy as the service's inline autoscale instead"))
    elif service is not None and spec.metric == "gpu-utilization" and not service.spec.uses_gpu:
        problems.append(SpecProblem("metric", "gpu-utilization on a CPU-only service; use cpu-utilization"))
    elif service is not None:
        problems += spec.slot_problems(service.spec.runtime.max_concurrency, "")
    elif spec.engine == "native" and not (spec.metric == "custom" and spec.custom is not None
                                          and spec.custom.query is not None):
        # The native autoscaler reads a service's gateway and finds its ready replicas through the
        # `<deployment>-replicas` Service an InferenceService renders; an existing Deployment has neither,
        # so every other metric would read nothing and the policy would hold forever.
        problems.append(SpecProblem("engine", f"the native autoscaler reads an InferenceService's gateway and "
                                    f"replicas, and deployment {spec.deployment!r} is not one, so {spec.metric!r} "
                                    f"would never read a value; use engine hpa or keda, a custom query "
                                    f"(custom.query), or give service instead"))
    elif spec.engine == "keda" and spec.metric in GATEWAY_METRICS:
        problems.append(SpecProblem("metric", f"{spec.metric!r} is measured by an InferenceService's gateway, and "
                                    f"deployment {spec.deployment!r} has none, so KEDA's query would select no "
                                    f"series; use gpu-utilization, cpu-utilization or custom (a query, or a "
                                    f"replica_metric the Deployment's pods export), or give service instead"))
    if problems:
        raise SpecError(problems, subject=subject)
    policy = ScalingSpec.model_validate(spec.model_dump(exclude={"deployment", "namespace", "runtime_image"}))
    if service is None:
        assert spec.deployment is not None
        return PolicyPlan(name, spec.namespace, [spec.deployment], spec.deployment, policy,
                          policy.resolved_target(None), None, {}, image=spec.runtime_image)
    s = service.spec
    # A service's policy runs the service's image unless it names its own.
    image = spec.runtime_image if "runtime_image" in spec.model_fields_set else s.runtime_image
    return PolicyPlan(name, s.namespace, service.deployments, s.name, policy,
                      policy.resolved_target(s.runtime.max_concurrency), service_admin_url(s), service.replica_ports,
                      service.replica_metrics_ports, s.runtime.metrics_path, image=image)
