"""AutoscalePolicy: how a service (or any Deployment) scales."""


from typing import TypedDict

import pulumi

from infra_inference.components import gate, kube
from infra_inference.components.inference_service import InferenceService
from infra_inference.components.inputs import split
from infra_inference.components.platform import ImageArgs
from infra_inference.plan.components import PolicyPlan, plan_policy
from infra_inference.render.autoscale import autoscale_objects


class CustomMetricArgs(TypedDict, total=False):
    query: str
    """PromQL returning one number for the whole service (or replica_metric)."""
    replica_metric: str
    """A gauge every replica exports (vllm:num_requests_waiting), summed over replicas (or query)."""


class AutoscalePolicyArgs(TypedDict, total=False):
    service: InferenceService
    """The InferenceService to scale (one of service or deployment). Standalone policies only, as are deployment,
    namespace and runtime_image: an InferenceService's inline autoscale takes them from the service."""
    deployment: str
    """Name of an existing Deployment to scale (one of service or deployment); with engine native, metric custom
    with custom.query only (the native autoscaler reads the gateway and replicas of an InferenceService)."""
    namespace: str
    """Namespace of `deployment`. Default inference."""
    metric: str
    """concurrency (default), throughput, latency, gpu-utilization, cpu-utilization or custom."""
    target: float
    """Per replica: requests in flight, req/s, ms p95, % or custom units. Default 70 % of max_concurrency
    (concurrency) or 70 (utilization); required for throughput, latency and custom."""
    min_replicas: int
    """Fewest replicas. Default 1; 0 needs scale_to_zero_after_s."""
    max_replicas: int
    """Most replicas. Default 10."""
    scale_to_zero_after_s: float
    """Idle seconds before scaling to zero (concurrency and throughput only). Default 0 = never."""
    step: int
    """Replicas are added in multiples of this; match StandbyPool instances. Default 1."""
    stable_window_s: float
    """Averaging window of the stable mode. Default 60."""
    scale_up_window_s: float
    """Scale-up stabilization window. Default 0."""
    scale_down_window_s: float
    """Scale-down stabilization window. Default 300 for engines hpa/keda; 0 for native (which holds capacity
    for 6 measured cold starts)."""
    panic_window_s: float
    """Burst-detection window. Default 6."""
    panic_threshold: float
    """Panic when short-window demand reaches this multiple of ready capacity. Default 2."""
    max_scale_up_rate: float
    """At most this x ready replicas per decision. Default 1000."""
    max_scale_down_rate: float
    """At least ready / this replicas per decision. Default 2."""
    custom: CustomMetricArgs
    """The query or replica metric for metric custom."""
    latency_of: str
    """For metric latency: request (default) or first-token (time to first token)."""
    prometheus_url: str
    """Prometheus HTTP API for custom and keda. Default http://prometheus-operated.monitoring.svc:9090."""
    engine: str
    """native (default, our autoscaler), hpa or keda."""
    runtime_image: ImageArgs
    """Standalone policies: the autoscaler's image. Default the service's runtime_image, else ours."""


class AutoscalePolicy(pulumi.ComponentResource):
    """Scaling objects for one engine.

    native: ServiceAccount, a Role limited to the scale of the service's own
    Deployments, RoleBinding, policy ConfigMap and the autoscaler Deployment.
    hpa: an autoscaling/v2 HorizontalPodAutoscaler with `behavior`.
    keda: a KEDA ScaledObject with a Prometheus (or cpu) trigger.
    """

    pulumi_type = "infra-inference:index:AutoscalePolicy"

    engine: pulumi.Output[str]
    """The engine in charge."""
    deployments: pulumi.Output[list[str]]
    """Deployments this policy scales."""

    def __init__(self, name: str, args: AutoscalePolicyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        subject = f"AutoscalePolicy {name!r}"
        with gate.validating():
            plain, _ = split(dict(args), {}, subject)
            service = plain.pop("service", None)
            self.plan: PolicyPlan = plan_policy(name, plain, service.plan if service is not None else None, subject)
        super().__init__(self.pulumi_type, name, {}, gate.held(opts))
        kube.create(name, autoscale_objects(self.plan), pulumi.ResourceOptions(parent=self))
        self.engine = pulumi.Output.from_input(self.plan.policy.engine)
        self.deployments = pulumi.Output.from_input(list(self.plan.deployments))
        self.register_outputs({"engine": self.engine, "deployments": self.deployments})
