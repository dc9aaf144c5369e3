"""AutoscalePolicy arguments: which signal, what target, how fast, how low."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from infra_inference.errors import SpecProblem
from infra_inference.specs.base import Spec
from infra_inference.specs.image import ImageSpec
from infra_inference.specs.names import DnsLabel

Metric = Literal["concurrency", "throughput", "latency", "gpu-utilization", "cpu-utilization", "custom"]
Engine = Literal["native", "hpa", "keda"]

# Scaling to zero needs a signal that still reads "there is demand" when no
# replica exists: requests queued at the gateway (concurrency) or arriving
# (throughput). Utilization and latency are measured on replicas, so with none
# they read nothing and the service could never wake up.
SCALE_TO_ZERO_METRICS = ("concurrency", "throughput")
# What the gateway measures (requests in flight and queued, arrivals, latency): a Deployment scaled without
# an InferenceService in front has no gateway, so engine keda would query series nothing exports.
GATEWAY_METRICS = ("concurrency", "throughput", "latency")

# Defaults when `target` is omitted: 70 % utilization leaves headroom for a
# burst while a new replica starts (the KPA and HPA defaults sit there too).
DEFAULT_UTILIZATION_TARGET = 70.0
# Concurrency target as a share of the replica's max_concurrency: with 8 slots,
# aim at 5.6 in flight, so a replica is rarely saturated before the next arrives.
CONCURRENCY_TARGET_SHARE = 0.7
# The HPA's own scale-down stabilization default, kept for engines hpa and keda.
HPA_SCALE_DOWN_WINDOW_S = 300.0


class CustomMetricSpec(Spec):
    """A Prometheus query, or a metric every replica exports: a service-wide number, `target` per replica."""

    query: str | None = Field(None, min_length=1, description="PromQL returning one number for the whole service.")
    replica_metric: str | None = Field(
        None, pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$",
        description="A gauge every ready replica exports (e.g. vLLM's vllm:num_requests_waiting or "
                    "vllm:gpu_cache_usage_perc), scraped from each and summed over them, so `target` is "
                    "per replica; no Prometheus needed.")

    def cross_checks(self) -> list[SpecProblem]:
        if (self.query is None) == (self.replica_metric is None):
            return [SpecProblem("", "give exactly one of query (PromQL) or replica_metric (a replica's gauge)")]
        return []


class ScalingSpec(Spec):
    """The policy knobs shared by an inline `autoscale` and a standalone AutoscalePolicy."""

    metric: Metric = Field("concurrency", description="Signal to scale on.")
    target: float | None = Field(
        None, gt=0, description="Per replica: requests in flight, req/s, ms p95, % or custom units. "
                                "Default: 70 % of max_concurrency for concurrency, 70 for utilization; "
                                "required for throughput, latency and custom.")
    min_replicas: int = Field(1, ge=0, description="Fewest replicas; 0 needs scale_to_zero_after_s.")
    max_replicas: int = Field(10, ge=1, description="Most replicas.")
    scale_to_zero_after_s: float = Field(
        0, ge=0, description="Idle seconds before scaling to zero; 0 = never. Concurrency/throughput only.")
    step: int = Field(1, ge=1, description="Replicas are added in multiples of this; match StandbyPool instances.")
    stable_window_s: float = Field(60, gt=0, description="Window the stable (non-panic) average is taken over.")
    scale_up_window_s: float = Field(0, ge=0, description="Scale-up stabilization: a rise must hold this long.")
    scale_down_window_s: float | None = Field(
        None, ge=0, description="Scale-down stabilization: the highest recommendation of this window wins. "
                                "Default: 300 for engines hpa and keda (the HPA's own); 0 for native, whose "
                                "decider holds capacity for 6 cold starts as it measures them.")
    panic_window_s: float = Field(6, gt=0, description="Short window that detects bursts.")
    panic_threshold: float = Field(2.0, gt=1, description="Panic when the short-window demand is this "
                                                          "multiple of what ready replicas can take.")
    max_scale_up_rate: float = Field(1000.0, gt=1, description="At most this x ready replicas per decision.")
    max_scale_down_rate: float = Field(2.0, gt=1, description="At least ready / this replicas per decision.")
    custom: CustomMetricSpec | None = Field(None, description="The query or replica metric for metric 'custom'.")
    latency_of: Literal["request", "first-token"] = Field(
        "request", description="For metric 'latency': p95 of the whole request, or of the time to its first "
                               "token (the first byte of a streamed answer), as the gateway measures them.")
    prometheus_url: str = Field(
        "http://prometheus-operated.monitoring.svc:9090",
        description="Prometheus HTTP API for metric 'custom' and for engine 'keda'.")
    engine: Engine = Field("native", description="native (our autoscaler), hpa or keda.")

    def cross_checks(self) -> list[SpecProblem]:
        out: list[SpecProblem] = []
        if self.min_replicas > self.max_replicas:
            out.append(SpecProblem("min_replicas", f"min_replicas {self.min_replicas} is above max_replicas "
                                   f"{self.max_replicas}"))
        if self.step > self.max_replicas:
            out.append(SpecProblem("step", f"step {self.step} is above max_replicas {self.max_replicas}; "
                                   f"one scale-up could never happen"))
        if self.scale_to_zero_after_s > 0:
            if self.metric not in SCALE_TO_ZERO_METRICS:
                out.append(SpecProblem("scale_to_zero_after_s", f"scale to zero needs metric concurrency or "
                                       f"throughput, not {self.metric!r} (a service at zero replicas reports "
                                       f"no {self.metric}); set it to 0 or change metric"))
            elif self.engine == "hpa":
                out.append(SpecProblem("scale_to_zero_after_s", "the HPA cannot scale to zero; use engine "
                                       "'native' or 'keda', or set it to 0"))
            if self.min_replicas > 0:
                out.append(SpecProblem("min_replicas", f"is {self.min_replicas}, so scale_to_zero_after_s "
                                       f"never applies; set min_replicas: 0"))
        elif self.min_replicas == 0:
            out.append(SpecProblem("min_replicas", "0 replicas needs scale_to_zero_after_s > 0 (how long to "
                                   "wait idle before going to zero)"))
        if self.metric in ("throughput", "latency", "custom") and self.target is None:
            out.append(SpecProblem("target", f"required for metric {self.metric!r}"))
        if self.metric in ("gpu-utilization", "cpu-utilization") and self.target is not None:
            if self.target > 100:
                out.append(SpecProblem("target", f"{self.target} % is above 100 %; utilization cannot reach it"))
            elif self.target < 1:
                out.append(SpecProblem("target", f"is a percent: {self.target:g} % would scale on an idle "
                                       f"replica; for {self.target:.0%} write {self.target * 100:g}"))
        if self.metric == "latency" and self.target is not None and self.target < 1:
            out.append(SpecProblem("target", f"is milliseconds of p95: {self.target:g} ms is less than a gateway "
                                   f"hop; for {self.target:g} s write {self.target * 1000:g}"))
        if self.metric == "custom" and self.custom is None:
            out.append(SpecProblem("custom", "metric 'custom' needs custom: {query: ...} or {replica_metric: ...}"))
        if self.latency_of != "request" and self.metric != "latency":
            out.append(SpecProblem("latency_of", f"only applies to metric 'latency', not {self.metric!r}"))
        if self.latency_of != "request" and self.engine == "hpa":
            out.append(SpecProblem("latency_of", "the HPA's adapter rules read request latency only; use "
                                   "engine 'native' or 'keda'"))
        if self.metric != "custom" and self.custom is not None:
            out.append(SpecProblem("custom", f"only applies to metric 'custom', not {self.metric!r}"))
        if self.engine == "hpa" and self.metric == "custom":
            out.append(SpecProblem("engine", "the HPA cannot run a PromQL query; use engine 'keda' or 'native'"))
        return out

    @property
    def down_window_s(self) -> float:
        """`scale_down_window_s`, or its engine's default (300 s for hpa/keda, 0 s for native)."""
        if self.scale_down_window_s is not None:
            return self.scale_down_window_s
        return 0.0 if self.engine == "native" else HPA_SCALE_DOWN_WINDOW_S

    def slot_problems(self, max_concurrency: int, at: str) -> list[SpecProblem]:
        """A concurrency target over the replica's slots: each replica would queue the excess before a scale-up."""
        if self.metric != "concurrency" or self.target is None or self.target <= max_concurrency:
            return []
        return [SpecProblem(f"{at}target",
                            f"{self.target:g} requests in flight per replica is over runtime.max_concurrency "
                            f"{max_concurrency}: every replica would queue {self.target - max_concurrency:g} before "
                            f"a scale-up; use at most {max_concurrency} (default 70 % of it)")]

    def resolved_target(self, max_concurrency: int | None) -> float:
        """`target`, or the metric's default (e.g. 0.7 x 8 slots = 5.6 requests in flight)."""
        if self.target is not None:
            return self.target
        if self.metric == "concurrency":
            return CONCURRENCY_TARGET_SHARE * (max_concurrency or 1)
        return DEFAULT_UTILIZATION_TARGET


# What a standalone AutoscalePolicy takes beyond the knobs: what to scale (`service` is a component reference,
# not a spec field) and where. An InferenceService's inline `autoscale` takes these from the service.
STANDALONE_ONLY = ("service", "deployment", "namespace", "runtime_image")


class AutoscalePolicySpec(ScalingSpec):
    """Validated AutoscalePolicy arguments for a Deployment not declared by an InferenceService."""

    deployment: DnsLabel | None = Field(None, description="Name of an existing Deployment to scale.")
    namespace: DnsLabel = Field("inference", description="Namespace of `deployment`.")
    runtime_image: ImageSpec = Field(default_factory=ImageSpec,
                                     description="Image of the autoscaler; default our runtime image (a service's policy follows the service's).")
