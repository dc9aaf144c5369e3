"""How Prometheus finds our processes and what labels their series carry: the scrape contract.

render/ writes the queries (KEDA triggers, the HPA adapter's rules, the
dashboard) and the pod annotations; the runtime exports the series. A
series of service `chat` in namespace `apps`, as Prometheus stores it:

    infra_inference_queue_depth{service="chat", deployment="chat", variant="main",   <- the runtime exports these
                                namespace="apps", pod="chat-gateway-7d9f8-x2x4q"}    <- the scrape attaches these

- `service` is exported by every process of ours (gateway, replica,
  autoscaler), not added by relabelling, so it is there whatever scrape
  configuration a cluster runs. A ServiceMonitor would clash with it (it
  attaches the Kubernetes Service's name as `service`, and Prometheus then
  renames ours `exported_service`): scrape pods, not Services.
- `namespace` and `pod` come from the scrape target, as a Prometheus
  Operator PodMonitor attaches them and as the annotation job in
  sdk-docs/autoscaling.md maps them. A foreign server (vLLM, Triton) exports
  none of our labels; its series are selected by these two alone.
- Every pod of ours that serves /metrics carries the `prometheus.io/*`
  annotations below, naming its metrics port and path (the gateway's is its
  admin port, 9090, not its service port); InferencePlatform's PodMonitor
  (`install_pod_monitor`) reads the same annotations.
"""

from __future__ import annotations

SERVICE_LABEL = "service"
# The gateway's per-backend labels: the Deployment a request went to and its variant (main, canary, ...).
DEPLOYMENT_LABEL = "deployment"
VARIANT_LABEL = "variant"
# Attached by Prometheus from the scraped pod.
NAMESPACE_LABEL = "namespace"
POD_LABEL = "pod"
TARGET_LABELS = (NAMESPACE_LABEL, POD_LABEL)

SCRAPE_ANNOTATION = "prometheus.io/scrape"
PORT_ANNOTATION = "prometheus.io/port"
PATH_ANNOTATION = "prometheus.io/path"


def scrape_annotations(port: int, path: str = "/metrics") -> dict[str, str]:
    """The pod annotations that tell Prometheus where this pod's metrics are."""
    return {SCRAPE_ANNOTATION: "true", PORT_ANNOTATION: str(port), PATH_ANNOTATION: path}


def deployment_pods(deployment: str) -> str:
    """A regex for `pod` matching the pods of one Deployment and no other.

    A Deployment's pod is `<deployment>-<template hash>-<suffix>`
    (`chat-7d9f8c6b5-x2x4q`): two dash-free segments. `chat-.*` would also
    match `chat-gateway-...`, `chat-autoscaler-...` and service `chat-small`'s
    replicas; this does not (PromQL regexes are anchored at both ends).
    """
    return f"{deployment}-[a-z0-9]+-[a-z0-9]+"
