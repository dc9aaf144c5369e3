"""`gateway.json`: what render/service.py writes and `infra-inference gateway` reads.

Plus how to find replicas outside a cluster (the dev stack writes those fields).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from infra_inference.wire.names import DEFAULT_PORT, GATEWAY_ADMIN_PORT, GATEWAY_PORT, STICKY_HEADER


class BackendConfig(BaseModel):
    """One replica set (a Deployment) behind the gateway."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    variant: str = Field(description="main, canary, an A/B arm name, or cpu.")
    deployment: str = Field(description="The Deployment the autoscaler scales; metrics are labelled with it.")
    service: str = Field("", description="Headless Service whose EndpointSlices list the ready replicas.")
    port: int = Field(DEFAULT_PORT, ge=1, le=65535, description="Replica port.")
    weight: float = Field(100.0, ge=0, le=100, description="Percent of traffic (canary / A-B split).")
    max_concurrency: int = Field(4, ge=1, description="Most requests in flight per replica; the rest queue here.")
    fallback: bool = Field(False, description="CPU fallback: used only when no weighted replica has a free slot.")
    endpoints: list[str] = Field(default_factory=list, description="Static replica addresses host:port.")


class GatewayConfig(BaseModel):
    """Everything `infra-inference gateway` reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = Field("dev", description="The InferenceService's name: the `service` label of every metric.")
    namespace: str = Field("default", description="Namespace of the replicas' EndpointSlices.")
    model: str = Field("", description="The served model name (informational).")
    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(GATEWAY_PORT, ge=0, le=65535, description="The service port: every request on it is "
                                                                 "proxied (0 picks a free one).")
    admin_port: int = Field(GATEWAY_ADMIN_PORT, ge=0, le=65535, description="The gateway's own /healthz, /readyz, "
                                                                            "/metrics and the activator long-poll "
                                                                            "(0 picks a free one).")
    timeout_s: float = Field(30.0, gt=0, description="From arrival to answer; beyond it 504.")
    max_queue: int = Field(256, ge=0, description="Requests waiting for a free replica slot; beyond it 429.")
    # Memory (the rendered gateway has a 256Mi limit, and idles at ~70 MiB RSS): a request body
    # costs about its size (received in place, forwarded from there, never copied), at most
    # max_buffered_bytes of them are held at once, and answers past 256 KiB are relayed as they
    # arrive: 70 + 64 = 134 MiB, plus what the sockets buffer, under 256 with room to spare.
    max_request_bytes: int = Field(16 * 2**20, ge=1, description="Largest request body accepted; beyond it 413.")
    max_buffered_bytes: int = Field(
        64 * 2**20, ge=1, description="Request bodies held at once, from their headers to their answer; "
                                      "beyond it 503 with Retry-After.")
    drain_grace_s: float = Field(
        1.0, ge=0, le=3, description="After SIGTERM, keep accepting (readiness 503) this long before the "
                                     "listener closes. At most 3: the pod's grace period holds it, timeout_s "
                                     "and a 3 s margin.")
    sticky_header: str = Field(STICKY_HEADER, description="Same header value, same variant.")
    backends: list[BackendConfig] = Field(min_length=1)
    discovery: Literal["kubernetes", "file", "static"] = Field(
        "kubernetes", description="kubernetes: EndpointSlices; file: `endpoints_file` written by the local "
                                  "actuator; static: each backend's `endpoints`.")
    endpoints_file: str | None = Field(None, description="For discovery 'file': its path.")
