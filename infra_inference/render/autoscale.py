"""Scaling objects for the three engines: our autoscaler (native), the HPA, or KEDA."""

from __future__ import annotations

import math

from infra_inference.plan.components import PolicyPlan
from infra_inference.render.common import (
    Obj, by_name, config_checksum, config_json, container, labels, meta, obj, pod_spec, role_and_binding,
    scratch_volume,
)
from infra_inference.render.platform import PRIORITY_CLASS
from infra_inference.render.scrape import METRICS_PORT, scraped
from infra_inference.specs.autoscale import ScalingSpec
from infra_inference.specs.image import ImageSpec
from infra_inference.wire import metrics
from infra_inference.wire.names import CONFIG_DIR, POLICY_CONFIG
from infra_inference.wire.policy import AutoscalerConfig, FallbackConfig
from infra_inference.wire.scrape import DEPLOYMENT_LABEL, NAMESPACE_LABEL, POD_LABEL, SERVICE_LABEL, deployment_pods

# HPA/KEDA evaluate every 15 s (the controller-manager's default sync period).
HPA_PERIOD_S = 15


def native(name: str, namespace: str, deployments: list[str], policy: ScalingSpec, target: float,
           gateway_url: str | None, replica_ports: dict[str, int] | None = None,
           replica_metrics_ports: dict[str, int] | None = None, replica_metrics_path: str = "/metrics",
           fallback: FallbackConfig | None = None, image: ImageSpec | None = None, service: str = "") -> list[Obj]:
    """Our autoscaler: least-privilege RBAC over exactly `deployments`, its policy, its Deployment.

    The Role is what runtime/autoscaler/cli.py calls and nothing more: read
    each Deployment (spec and ready count), patch its scale, and list/watch
    EndpointSlices (ready replica and gateway addresses). No pods, no endpoints.
    """
    lbls = labels(name, "autoscaler")
    config = AutoscalerConfig.model_validate({
        **policy.model_dump(), "target": target, "namespace": namespace, "service": service,
        "deployments": deployments,
        "replica_ports": replica_ports or {}, "replica_metrics_ports": replica_metrics_ports or {},
        "replica_metrics_path": replica_metrics_path, "gateway_url": gateway_url,
        **({"fallback": fallback} if fallback is not None else {})})
    config_map = obj("v1", "ConfigMap", meta(name, namespace, lbls), data={POLICY_CONFIG: config_json(config)})
    pod = pod_spec(
        [container("autoscaler", image or ImageSpec(),
                   args=["autoscaler", "--config", f"{CONFIG_DIR}/{POLICY_CONFIG}"], cpu="100m", memory="128Mi",
                   ports=[{"name": METRICS_PORT, "containerPort": config.metrics_port}],
                   volumeMounts=[{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                                 {"name": "tmp", "mountPath": "/tmp"}])],
        serviceAccountName=name, automountServiceAccountToken=True,
        priorityClassName=PRIORITY_CLASS["online"],
        volumes=[{"name": "config", "configMap": {"name": name}}, scratch_volume()],
    )
    return [
        obj("v1", "ServiceAccount", meta(name, namespace, lbls), automountServiceAccountToken=True),
        *role_and_binding(name, namespace, lbls, [
            {"apiGroups": ["apps"], "resources": ["deployments/scale"], "resourceNames": list(deployments),
             "verbs": ["get", "patch", "update"]},
            {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": list(deployments),
             "verbs": ["get"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
        ]),
        config_map,
        obj("apps/v1", "Deployment", meta(name, namespace, lbls), spec={
            # One decider per service: two would fight over the scale subresource.
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": by_name(name)},
            "template": scraped({"metadata": {"labels": lbls, "annotations": config_checksum(config_map)},
                                 "spec": pod}, config.metrics_port),
        }),
    ]


def behavior(policy: ScalingSpec) -> Obj:
    """HPA `behavior` from our windows and rates.

    max_scale_up_rate 2 means "at most double per period": a Percent policy of
    (2 - 1) x 100 = 100 %. A Pods policy of `step` keeps small deployments able
    to grow by a full step; selectPolicy Max takes the larger of the two.
    max_scale_down_rate 2 means "at most halve": (1 - 1/2) x 100 = 50 %.
    """
    up_percent = min(int((policy.max_scale_up_rate - 1) * 100), 100_000)
    down_percent = max(1, min(100, math.floor((1 - 1 / policy.max_scale_down_rate) * 100)))
    return {
        "scaleUp": {"stabilizationWindowSeconds": int(policy.scale_up_window_s), "selectPolicy": "Max",
                    "policies": [{"type": "Percent", "value": up_percent, "periodSeconds": HPA_PERIOD_S},
                                 {"type": "Pods", "value": policy.step, "periodSeconds": HPA_PERIOD_S}]},
        "scaleDown": {"stabilizationWindowSeconds": int(policy.down_window_s), "selectPolicy": "Max",
                      "policies": [{"type": "Percent", "value": down_percent, "periodSeconds": HPA_PERIOD_S}]},
    }


def _hpa_metric(policy: ScalingSpec, target: float) -> Obj:
    if policy.metric == "cpu-utilization":
        return {"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": int(round(target))}}}
    return {"type": "Pods", "pods": {"metric": {"name": metrics.HPA_PODS_METRICS[policy.metric].name},
                                     "target": {"type": "AverageValue", "averageValue": _quantity(target)}}}


def _quantity(value: float) -> str:
    # Kubernetes quantities take milli-units: 5.6 -> "5600m".
    return str(int(value)) if float(value).is_integer() else f"{int(round(value * 1000))}m"


def hpa(name: str, namespace: str, deployment: str, policy: ScalingSpec, target: float) -> list[Obj]:
    return [obj("autoscaling/v2", "HorizontalPodAutoscaler", meta(name, namespace, labels(name, "autoscaler")), spec={
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "minReplicas": max(1, policy.min_replicas),
        "maxReplicas": policy.max_replicas,
        "metrics": [_hpa_metric(policy, target)],
        "behavior": behavior(policy),
    })]


def keda_query(policy: ScalingSpec, namespace: str, service: str, deployment: str) -> str:
    """PromQL for KEDA over what `deployment` serves; KEDA divides it by `threshold` to get replicas.

    The gateway's series are the service's (`service`) per backend (`deployment`): a canary's or the CPU
    fallback's requests are not the main Deployment's load. Replica series (DCGM's, a foreign server's)
    carry none of our labels, only the namespace and pod the scrape attached (wire/scrape.py).
    """
    sel = f'{NAMESPACE_LABEL}="{namespace}",{SERVICE_LABEL}="{service}",{DEPLOYMENT_LABEL}="{deployment}"'
    pods = f'{NAMESPACE_LABEL}="{namespace}",{POD_LABEL}=~"{deployment_pods(deployment)}"'
    m = metrics
    latency = m.TIME_TO_FIRST_TOKEN_BUCKET if policy.latency_of == "first-token" else m.REQUEST_DURATION_BUCKET
    custom = policy.custom
    return {
        "concurrency": f"sum({m.INFLIGHT_REQUESTS}{{{sel}}}) + sum({m.QUEUE_DEPTH}{{{sel}}})",
        "throughput": f"sum(rate({m.REQUESTS_TOTAL}{{{sel}}}[1m]))",
        "latency": f"histogram_quantile(0.95, sum by (le) (rate({latency}{{{sel}}}[1m]))) * 1000",
        "gpu-utilization": f"avg({m.DCGM_GPU_UTIL}{{{pods}}})",
        # Summed over the replicas, as the native autoscaler reads it; KEDA divides by the threshold.
        "custom": "" if custom is None else custom.query or f"sum({custom.replica_metric}{{{pods}}})",
    }.get(policy.metric, "")


def keda(name: str, namespace: str, deployment: str, service: str, policy: ScalingSpec, target: float) -> list[Obj]:
    if policy.metric == "cpu-utilization":
        trigger: Obj = {"type": "cpu", "metricType": "Utilization", "metadata": {"value": str(int(round(target)))}}
    else:
        trigger = {"type": "prometheus", "metadata": {
            "serverAddress": policy.prometheus_url, "query": keda_query(policy, namespace, service, deployment),
            "threshold": f"{target:g}", "activationThreshold": "0"}}
    spec: Obj = {
        "scaleTargetRef": {"name": deployment},
        "pollingInterval": HPA_PERIOD_S,
        "minReplicaCount": policy.min_replicas,
        "maxReplicaCount": policy.max_replicas,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior(policy)}},
        "triggers": [trigger],
    }
    if policy.scale_to_zero_after_s > 0:
        spec["cooldownPeriod"] = int(policy.scale_to_zero_after_s)
    return [obj("keda.sh/v1alpha1", "ScaledObject", meta(name, namespace, labels(name, "autoscaler")), spec=spec)]


def autoscale_objects(plan: PolicyPlan) -> list[Obj]:
    """The engine's objects. HPA and KEDA scale one Deployment, so A/B variants need the native engine."""
    name, namespace, deployments, policy, target = plan.name, plan.namespace, plan.deployments, plan.policy, plan.target
    if policy.engine == "hpa":
        return hpa(name, namespace, deployments[0], policy, target)
    if policy.engine == "keda":
        return keda(name, namespace, deployments[0], plan.service, policy, target)
    return native(name, namespace, deployments, policy, target, plan.gateway_url, plan.replica_ports,
                  plan.replica_metrics_ports, plan.replica_metrics_path, plan.fallback, plan.image, plan.service)
