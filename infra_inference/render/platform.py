"""Cluster-wide objects: the four priority classes, tenants, device plugin, DCGM exporter, Grafana dashboard."""

from __future__ import annotations

from importlib import resources

from infra_inference.render.common import Obj, labels, meta, obj
from infra_inference.render.nvidia import dcgm_exporter, device_plugin
from infra_inference.render.scrape import pod_monitors, prometheus_ingress
from infra_inference.specs.platform import PlatformSpec, TenantSpec

# Online inference outranks batch, which outranks training; a pod without a
# class gets 0. Standby placeholders sit below everything (negative), so any
# real pod evicts them, yet cluster-autoscaler still adds nodes for them because
# their priority is not below its expendable cutoff (-10).
PRIORITY_ONLINE = 1_000_000
PRIORITY_BATCH = 100_000
PRIORITY_TRAINING = 10_000
PRIORITY_STANDBY = -5
DASHBOARD_FILE = "infra-inference.json"

PRIORITY_CLASS = {"online": "inference-online", "batch": "inference-batch",
                  "training": "training", "standby": "inference-standby"}


def priority_classes() -> list[Obj]:
    def pc(role: str, value: int, policy: str, description: str) -> Obj:
        name = PRIORITY_CLASS[role]
        return obj("scheduling.k8s.io/v1", "PriorityClass", meta(name, None, labels(name, "priority")),
                   value=value, globalDefault=False, preemptionPolicy=policy, description=description)

    return [
        pc("online", PRIORITY_ONLINE, "PreemptLowerPriority",
           "Customer-facing inference: preempts batch, training and standby pods."),
        # Batch inference waits for capacity rather than killing training runs.
        pc("batch", PRIORITY_BATCH, "Never", "Offline inference: scheduled before training, preempts nothing."),
        pc("training", PRIORITY_TRAINING, "PreemptLowerPriority", "Training: yields to inference."),
        pc("standby", PRIORITY_STANDBY, "Never", "Warm-capacity placeholders: every real pod evicts them."),
    ]


def tenant(t: TenantSpec, platform_namespace: str, prometheus_namespaces: list[str]) -> list[Obj]:
    lbls = labels(t.name, "tenant")
    hard: dict[str, str] = {f"requests.{r}": str(n) for r, n in t.resource_quota.items()}
    if t.cpu_quota:
        hard["requests.cpu"] = t.cpu_quota
        hard["limits.cpu"] = t.cpu_quota
    if t.memory_quota:
        hard["requests.memory"] = t.memory_quota
        hard["limits.memory"] = t.memory_quota
    ns_lbls = {**lbls, "kubernetes.io/metadata.name": t.name}
    return [
        obj("v1", "Namespace", meta(t.name, None, ns_lbls)),
        obj("v1", "ResourceQuota", meta("gpu-quota", t.name, lbls), spec={"hard": hard}),
        obj("networking.k8s.io/v1", "NetworkPolicy", meta("default-deny", t.name, lbls), spec={
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            # Pods of the tenant talk to each other; the shared gateway namespace may reach them.
            "ingress": [{"from": [
                {"podSelector": {}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": platform_namespace}}},
            ]}],
            "egress": egress_rules(),
        }),
        *([prometheus_ingress(t.name, prometheus_namespaces)] if prometheus_namespaces else []),
    ]


# Cloud instance metadata: node credentials (GCE, EC2, Azure all answer on this address; EC2 also on
# the IPv6 one). A pod that reaches it acts as the node.
METADATA_CIDRS = ["169.254.169.254/32", "fd00:ec2::254/128"]
# What a tenant's pods need beyond each other: model origins and object stores over http(s), and the
# API server (443 behind the `kubernetes` Service on GKE and EKS, 6443 on kubeadm clusters) for the
# autoscaler's scale calls and the gateway's EndpointSlice watch. EKS Pod Identity's agent
# (169.254.170.23:80) is inside this rule.
EGRESS_PORTS = [80, 443, 6443]
# GKE's metadata server for Workload Identity, where GKE_METADATA nodes redirect 169.254.169.254
# (Dataplane V2: 169.254.169.252, otherwise 127.0.0.1; port 988). It serves only the pod's own
# identity, never the node's: the one metadata endpoint a tenant may reach.
GKE_METADATA_SERVER = ["169.254.169.252/32", "127.0.0.1/32"]
# NodeLocal DNSCache's link-local address, where clusters running it send every DNS query.
NODE_LOCAL_DNS = "169.254.20.10/32"


def egress_rules() -> list[Obj]:
    tcp = lambda port: {"protocol": "TCP", "port": port}  # noqa: E731
    anywhere_but_metadata = [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": [c for c in METADATA_CIDRS if "." in c]}},
        {"ipBlock": {"cidr": "::/0", "except": [c for c in METADATA_CIDRS if ":" in c]}},
    ]
    return [
        {"to": [{"podSelector": {}}]},
        {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                 "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}},
                {"ipBlock": {"cidr": NODE_LOCAL_DNS}}],
         "ports": [{"protocol": "UDP", "port": 53}, tcp(53)]},
        {"to": anywhere_but_metadata, "ports": [tcp(p) for p in EGRESS_PORTS]},
        {"to": [{"ipBlock": {"cidr": c}} for c in GKE_METADATA_SERVER], "ports": [tcp(988)]},
    ]


def platform_objects(spec: PlatformSpec) -> list[Obj]:
    """Every object InferencePlatform puts in the cluster."""
    ns = spec.namespace
    out = [obj("v1", "Namespace", meta(ns, None, {**labels(ns, "platform"), "kubernetes.io/metadata.name": ns}))]
    out += priority_classes()
    for t in spec.tenants:
        out += tenant(t, ns, spec.prometheus_namespaces)
    if spec.install_device_plugin:
        out += device_plugin("nvidia-device-plugin", config=None, node_selector=None)
    if spec.install_dcgm_exporter:
        out += dcgm_exporter(ns)
    if spec.install_grafana_dashboard:
        out.append(grafana_dashboard(ns))
    if spec.install_pod_monitor:
        out += pod_monitors(ns, spec.install_dcgm_exporter)
    return out


def grafana_dashboard(namespace: str) -> Obj:
    """The dashboard (render/dashboards/infra-inference.json) where Grafana's sidecar finds dashboards."""
    name = "infra-inference-dashboard"
    text = (resources.files("infra_inference.render") / "dashboards" / DASHBOARD_FILE).read_text()
    # The sidecar watches ConfigMaps with this label (its default, and kube-prometheus-stack's).
    return obj("v1", "ConfigMap", meta(name, namespace, {**labels(name, "dashboard"), "grafana_dashboard": "1"}),
               data={DASHBOARD_FILE: text})
