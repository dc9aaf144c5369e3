"""Names and ports both halves must agree on: render/ creates the objects, the runtime finds them by these.

A service `chat` in namespace `inference` is, in the cluster:

    Deployment chat            (its replicas; a canary is chat-canary, an A/B arm chat-<arm>)
    Service    chat-replicas   (headless: its EndpointSlices list the ready replicas)
    Deployment chat-gateway    and Service chat-gateway, at gateway_url("chat", "inference");
                               each gateway pod's admin port at gateway_admin_url(...)
    Deployment chat-autoscaler (native engine), reading policy.json from its ConfigMap
"""

from __future__ import annotations

# Every server setting is read from the environment under this prefix (runtime/server/settings.py).
ENV_PREFIX = "INFRA_INFERENCE_"
# The replica's port unless RuntimeSpec.port says otherwise, and the gateway's container port.
DEFAULT_PORT = 8080
GATEWAY_PORT = 8080
# The gateway's own /healthz, /readyz, /metrics and activator: on the pod, not in its Service, so the
# service's clients never reach them; probes and the autoscaler do.
GATEWAY_ADMIN_PORT = 9090
# What the gateway's and the autoscaler's ConfigMaps hold, and where their containers mount them.
CONFIG_DIR = "/etc/infra-inference"
GATEWAY_CONFIG = "gateway.json"
POLICY_CONFIG = "policy.json"
# Requests with the same value of this header go to the same variant (canary / A-B).
STICKY_HEADER = "x-infra-inference-session"


def replicas_service(deployment: str) -> str:
    """The headless Service over a Deployment's replicas."""
    return f"{deployment}-replicas"


def gateway_name(service: str) -> str:
    """The gateway's Deployment, Service, ConfigMap and ServiceAccount."""
    return f"{service}-gateway"


def autoscaler_name(service: str) -> str:
    """The native autoscaler's Deployment, ConfigMap and RBAC objects."""
    return f"{service}-autoscaler"


def gateway_url(service: str, namespace: str) -> str:
    """The service's in-cluster entry point."""
    return f"http://{gateway_name(service)}.{namespace}.svc.cluster.local"


def gateway_admin_url(service: str, namespace: str) -> str:
    """Where the autoscaler scrapes the gateway and long-polls its activator (each pod, on its admin port)."""
    return f"{gateway_url(service, namespace)}:{GATEWAY_ADMIN_PORT}"


def gateway_admin_port(url: str) -> int:
    """The admin port in a gateway URL the autoscaler was given (9090 in rendered manifests; 80 if none)."""
    authority = url.split("://", 1)[-1].split("/", 1)[0]
    port = authority.rsplit(":", 1)[1] if ":" in authority and not authority.endswith("]") else ""
    return int(port) if port.isdigit() else 80


def gateway_service(url: str) -> str | None:
    """The gateway Service's name from its in-cluster URL; None for any other URL (a local gateway)."""
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return host.split(".")[0] if ".svc" in host else None
