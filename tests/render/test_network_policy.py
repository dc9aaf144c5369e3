"""A tenant's NetworkPolicy, evaluated as a CNI would: what its pods may reach.

The local control plane has no CNI, so nothing there enforces a policy; this
evaluates the rendered egress rules with the NetworkPolicy semantics (a
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
from tests.test_examples_and_schema import KUBERNETES_MINOR


@dataclass(frozen=True)
class Peer:
    ip: str
    namespace: str | None = None  # None: outside the cluster
    labels: dict[str, str] = field(default_factory=dict)


def _selects(selector: dict[str, Any], lbls: dict[str, str]) -> bool:
    return all(lbls.get(k) == v for k, v in selector.get("matchLabels", {}).items())


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
    [p] = [o for o in objects if o["kind"] == "NetworkPolicy"]
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
