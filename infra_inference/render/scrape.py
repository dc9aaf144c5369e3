"""How Prometheus finds our pods (wire/scrape.py): the pod annotations, and the PodMonitors that read them.

Two kinds of Prometheus, one contract. Plain Prometheus with the usual
`kubernetes-pods` job reads the `prometheus.io/scrape|port|path` annotations
(sdk-docs/autoscaling.md gives the job). The Prometheus Operator reads
PodMonitor objects, rendered only when InferencePlatform's
`install_pod_monitor` asks (the CRD must exist); ours applies the same
annotation rules, so one PodMonitor covers every service in every namespace.
"""

from __future__ import annotations

from infra_inference.render.common import LABEL_COMPONENT, LABEL_PART_OF, PART_OF, Obj, by_name, labels, meta, obj
from infra_inference.wire.scrape import scrape_annotations

POD_MONITOR = "infra-inference"
# The components whose pods serve our /metrics (render/service.py, render/autoscale.py).
SCRAPED_COMPONENTS = ["gateway", "replica", "autoscaler"]
# The container port names of the ports their /metrics is on, which a tenant's NetworkPolicy admits
# Prometheus to by name (a replica's port number is each service's own): the gateway's admin port (its
# service port proxies to the replicas), a replica's or the autoscaler's separate metrics port, and a
# replica's serving port when it serves /metrics there too (vLLM's 8000).
GATEWAY_METRICS_PORT = "admin"
METRICS_PORT = "metrics"
SERVING_METRICS_PORT = "http-metrics"
METRICS_PORT_NAMES = [GATEWAY_METRICS_PORT, METRICS_PORT, SERVING_METRICS_PORT]
# The DCGM exporter DaemonSet (render/nvidia.py); its PodMonitor below selects its pods by this name.
DCGM_EXPORTER = "dcgm-exporter"
PROMETHEUS_INGRESS = "allow-prometheus"
# Relabelling from the pod's annotations, as the prometheus-community chart's `kubernetes-pods` job does:
# scrape only annotated pods, at the annotated path, on the annotated port of the pod's IP (v4 or v6).
_META = "__meta_kubernetes_pod_annotation_prometheus_io"
_ANNOTATION_RELABELINGS: list[Obj] = [
    {"action": "keep", "sourceLabels": [f"{_META}_scrape"], "regex": "true"},
    {"action": "replace", "sourceLabels": [f"{_META}_path"], "regex": "(.+)", "targetLabel": "__metrics_path__"},
    {"action": "replace", "sourceLabels": [f"{_META}_port", "__meta_kubernetes_pod_ip"],
     "regex": r"(\d+);(([A-Fa-f0-9]{1,4}::?){1,7}[A-Fa-f0-9]{1,4})", "replacement": "[$2]:$1",
     "targetLabel": "__address__"},
    {"action": "replace", "sourceLabels": [f"{_META}_port", "__meta_kubernetes_pod_ip"],
     "regex": r"(\d+);((([0-9]+?)(\.|$)){4})", "replacement": "$2:$1", "targetLabel": "__address__"},
    # Service discovery makes a target per container port; rewritten to the one annotated address they
    # are the same target, which Prometheus scrapes once. Dropping the port-specific labels makes
    # them identical (a gateway pod has two ports: it must not be scraped, and summed, twice).
    {"action": "labeldrop", "regex": "container|endpoint"},
]


_SCRAPED_PODS: Obj = {"matchLabels": {LABEL_PART_OF: PART_OF},
                      "matchExpressions": [{"key": LABEL_COMPONENT, "operator": "In", "values": SCRAPED_COMPONENTS}]}


def scraped(template: Obj, port: int, path: str = "/metrics") -> Obj:
    """`template` (a pod template) annotated with where its metrics are; other annotations are kept."""
    template["metadata"].setdefault("annotations", {}).update(scrape_annotations(port, path))
    return template


def prometheus_ingress(namespace: str, prometheus_namespaces: list[str]) -> Obj:
    """Admits Prometheus' namespaces to `namespace`'s metrics ports, and to nothing else of its pods.

    NetworkPolicies add up: the tenant's default-deny keeps every other port closed to them.
    """
    lbls = labels(PROMETHEUS_INGRESS, "tenant")
    return obj("networking.k8s.io/v1", "NetworkPolicy", meta(PROMETHEUS_INGRESS, namespace, lbls), spec={
        "podSelector": _SCRAPED_PODS,
        "policyTypes": ["Ingress"],
        "ingress": [{
            "from": [{"namespaceSelector": {"matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "In", "values": prometheus_namespaces}]}}],
            "ports": [{"protocol": "TCP", "port": name} for name in METRICS_PORT_NAMES],
        }],
    })


def pod_monitors(namespace: str, dcgm_exporter: bool) -> list[Obj]:
    """Our PodMonitor in `namespace`, for every namespace's gateways, replicas and autoscalers; and DCGM's."""
    lbls = labels(POD_MONITOR, "monitoring")
    out = [obj("monitoring.coreos.com/v1", "PodMonitor", meta(POD_MONITOR, namespace, lbls), spec={
        "namespaceSelector": {"any": True},
        "selector": _SCRAPED_PODS,
        "podMetricsEndpoints": [{"relabelings": _ANNOTATION_RELABELINGS}],
    })]
    if dcgm_exporter:
        name = DCGM_EXPORTER
        # DCGM labels each GPU's series with the pod using it (`namespace`, `pod`): those must win over
        # the exporter pod's own, which is what honorLabels does. Ours keep Prometheus' (a replica
        # running a tenant's image must not choose the namespace its series are filed under).
        out.append(obj("monitoring.coreos.com/v1", "PodMonitor", meta(name, namespace, labels(name, "monitoring")),
                       spec={"selector": {"matchLabels": by_name(name)},
                             "podMetricsEndpoints": [{"port": METRICS_PORT, "honorLabels": True}]}))
    return out
