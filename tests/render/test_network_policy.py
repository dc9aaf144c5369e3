"""A tenant's NetworkPolicies, evaluated as a CNI would: what its pods may reach, and who may reach them.

The local control plane has no CNI, so nothing there enforces a policy; this
evaluates the rendered rules with the NetworkPolicy semantics (a
connection is allowed when any rule matches both its peer and its port) for
the destinations that matter, after strict schema validation.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import kubernetes_validate
import pytest

from infra_inference.render import render_stack
from infra_inference.wire.scrape import PORT_ANNOTATION
from tests.test_examples_and_schema import KUBERNETES_MINOR


@dataclass(frozen=True)
class Peer:
    ip: str
    namespace: str | None = None  # None: outside the cluster
    labels: dict[str, str] = field(default_factory=dict)


def _selects(selector: dict[str, Any], lbls: dict[str, str]) -> bool:
    assert all(e["operator"] == "In" for e in selector.get("matchExpressions", []))
    return all(lbls.get(k) == v for k, v in selector.get("matchLabels", {}).items()) and all(
        lbls.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))


def _peer_matches(rule_peer: dict[str, Any], peer: Peer, own_namespace: str) -> bool:
    if "ipBlock" in rule_peer:
        block = rule_peer["ipBlock"]
        ip = ipaddress.ip_address(peer.ip)
        net = ipaddress.ip_network(block["cidr"])
        return ip.version == net.version and ip in net and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except", []) if ipaddress.ip_network(e).version == ip.version)
    if peer.namespace is None:
        return False
    if "namespaceSelector" in rule_peer:
        ns_ok = _selects(rule_peer["namespaceSelector"], {"kubernetes.io/metadata.name": peer.namespace})
    else:
        ns_ok = peer.namespace == own_namespace
    return ns_ok and _selects(rule_peer.get("podSelector", {}), peer.labels)


def egress_allowed(policy: dict[str, Any], peer: Peer, port: int, protocol: str = "TCP") -> bool:
    spec = policy["spec"]
    assert "Egress" in spec["policyTypes"]
    own = policy["metadata"]["namespace"]
    for rule in spec.get("egress", []):
        ports = rule.get("ports")
        port_ok = ports is None or any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports)
        peers = rule.get("to")
        if port_ok and (peers is None or any(_peer_matches(p, peer, own) for p in peers)):
            return True
    return False


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    objects = render_stack({"platform": {"tenants": [{"name": "team-a", "gpu_quota": 1}]}})
    [p] = [o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "default-deny"]
    kubernetes_validate.validate(p, KUBERNETES_MINOR, strict=True)
    return p


KUBE_DNS = Peer("10.96.0.10", "kube-system", {"k8s-app": "kube-dns"})


@pytest.mark.parametrize(("what", "peer", "port", "protocol", "allowed"), [
    ("cloud metadata (node credentials)", Peer("169.254.169.254"), 80, "TCP", False),
    ("EC2 metadata over IPv6", Peer("fd00:ec2::254"), 80, "TCP", False),
    ("cloud metadata on another port", Peer("169.254.169.254"), 443, "TCP", False),
    ("DNS through kube-dns", KUBE_DNS, 53, "UDP", True),
    ("DNS over TCP", KUBE_DNS, 53, "TCP", True),
    ("NodeLocal DNSCache", Peer("169.254.20.10"), 53, "UDP", True),
    ("a model origin over https", Peer("52.216.0.1"), 443, "TCP", True),
    ("an object store over http", Peer("198.51.100.7"), 80, "TCP", True),
    ("the API server (kubeadm port)", Peer("10.0.0.1"), 6443, "TCP", True),
    ("GKE's Workload Identity metadata server", Peer("169.254.169.252"), 988, "TCP", True),
    ("a pod of the same tenant, any port", Peer("10.4.0.7", "team-a"), 8080, "TCP", True),
    ("another namespace's pod on the replica port", Peer("10.4.1.9", "team-b"), 8080, "TCP", False),
    ("a database elsewhere", Peer("10.20.0.5"), 5432, "TCP", False),
    ("SSH out", Peer("203.0.113.4"), 22, "TCP", False),
    ("DNS to an outside resolver", Peer("8.8.8.8"), 53, "UDP", False),
])
def test_tenant_egress(policy: dict[str, Any], what: str, peer: Peer, port: int, protocol: str,
                       allowed: bool) -> None:
    assert egress_allowed(policy, peer, port, protocol) is allowed, what


def test_ingress_stays_the_tenant_and_the_platform_namespace(policy: dict[str, Any]) -> None:
    assert policy["spec"]["podSelector"] == {}  # every pod of the tenant
    [rule] = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {}}, {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "inference"}}}]


@dataclass(frozen=True)
class Pod:
    """A pod of a rendered Deployment: its labels and its container ports, {name: number}."""
    deployment: str
    labels: dict[str, str]
    ports: dict[str, int]
    scrape_port: int


def ingress_allowed(policies: list[dict[str, Any]], pod: Pod, peer: Peer, port: int) -> bool:
    """Any policy selecting `pod` with an Ingress rule matching the peer and the port; a port may be named."""
    own = policies[0]["metadata"]["namespace"]
    for policy in policies:
        spec = policy["spec"]
        if "Ingress" not in spec["policyTypes"] or not _selects(spec["podSelector"], pod.labels):
            continue
        for rule in spec.get("ingress", []):
            ports = rule.get("ports")
            port_ok = ports is None or any(pod.ports.get(p["port"], p["port"]) == port for p in ports)
            peers = rule.get("from")
            if port_ok and (peers is None or any(_peer_matches(p, peer, own) for p in peers)):
                return True
    return False


def tenant_stack(**platform: Any) -> tuple[list[dict[str, Any]], list[Pod]]:
    """Tenant team-a's NetworkPolicies and pods: a vLLM service (/metrics on its serving port, 8000) and a
    Triton one (on its own, 8002), each with its gateway and autoscaler."""
    objects = render_stack({"platform": {"tenants": [{"name": "team-a", "gpu_quota": 1}], **platform}, "services": {
        "chat": {"namespace": "team-a", "model": {"uri": "s3://m/chat"}, "runtime": {"preset": "vllm"},
                 "autoscale": {"max_replicas": 3}},
        "vision": {"namespace": "team-a", "model": {"uri": "s3://m/vision", "format": "onnx"},
                   "runtime": {"preset": "triton"}, "autoscale": {"max_replicas": 3}}}})
    policies = [o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == "team-a"]
    for p in policies:
        kubernetes_validate.validate(p, KUBERNETES_MINOR, strict=True)
    pods = [Pod(o["metadata"]["name"], o["spec"]["template"]["metadata"]["labels"],
                {p["name"]: p["containerPort"] for c in o["spec"]["template"]["spec"]["containers"]
                 for p in c.get("ports", [])},
                int(o["spec"]["template"]["metadata"]["annotations"][PORT_ANNOTATION]))
            for o in objects if o["kind"] == "Deployment" and o["metadata"]["namespace"] == "team-a"]
    return policies, pods


PROMETHEUS = Peer("10.4.2.3", "monitoring", {"app.kubernetes.io/name": "prometheus"})


def test_prometheus_reaches_each_pods_metrics_port_and_no_other() -> None:
    policies, pods = tenant_stack()
    assert {p.deployment for p in pods} == {"chat", "chat-gateway", "chat-autoscaler",
                                            "vision", "vision-gateway", "vision-autoscaler"}
    for pod in pods:
        reachable = {port for port in pod.ports.values() if ingress_allowed(policies, pod, PROMETHEUS, port)}
        # Where the pod's prometheus.io/port annotation says its /metrics is: the gateway's admin port 9090
        # (not its service port 8080), vLLM's serving port, Triton's 8002 (not its serving 8000).
        assert reachable == {pod.scrape_port}, pod.deployment
    # The rule is Prometheus' namespace's alone: another tenant stays out of every port.
    other = Peer("10.4.1.9", "team-b")
    assert not any(ingress_allowed(policies, pod, other, port) for pod in pods for port in pod.ports.values())


def test_prometheus_namespaces_are_configurable_and_can_be_none() -> None:
    policies, pods = tenant_stack(prometheus_namespaces=["observability"])
    [gateway] = [p for p in pods if p.deployment == "chat-gateway"]
    assert not ingress_allowed(policies, gateway, PROMETHEUS, 9090)
    assert ingress_allowed(policies, gateway, Peer("10.4.2.3", "observability"), 9090)
    policies, pods = tenant_stack(prometheus_namespaces=[])
    assert [p["metadata"]["name"] for p in policies] == ["default-deny"]
    assert not any(ingress_allowed(policies, pod, PROMETHEUS, port) for pod in pods for port in pod.ports.values())
