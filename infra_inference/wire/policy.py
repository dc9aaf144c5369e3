"""`policy.json`: what render/autoscale.py writes and `infra-inference autoscaler` reads.

The ScalingSpec fields (target resolved) plus where the service lives.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from infra_inference.specs.autoscale import ScalingSpec
from infra_inference.wire.names import DEFAULT_PORT


class LocalReplicas(BaseModel):
    """How the local actuator starts one deployment's replicas (`infra-inference dev` writes this)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    serve_args: list[str] = Field(default_factory=list, description="Flags for `infra-inference serve`.")
    endpoints_file: str = Field(description="Path where ready replicas are published for the gateway.")


class FallbackConfig(BaseModel):
    """The CPU variant the autoscaler sizes from the GPU side's overflow (decide/autoscaling/fallback.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deployment: str = Field(description="The CPU Deployment, one of `deployments`; not decided on its own reading.")
    max_replicas: int = Field(ge=1, description="Most CPU replicas.")
    slots_per_replica: int = Field(ge=1, description="Requests one CPU replica serves at once.")
    gpu_slots_per_replica: int = Field(ge=1, description="Requests one GPU replica serves at once.")


class AutoscalerConfig(ScalingSpec):
    """What `infra-inference autoscaler --config` reads; render/autoscale.py writes all but the local part."""

    target: float = Field(gt=0, description="Resolved per-replica target.")
    namespace: str = Field("default", description="Namespace of the deployments.")
    service: str = Field("", description="The InferenceService (or the Deployment a policy scales): the `service` "
                                         "label of this autoscaler's metrics.")
    deployments: list[str] = Field(min_length=1, description="Deployments to scale, one decision each.")
    replica_ports: dict[str, int] = Field(default_factory=dict, description="Each deployment's replica port, "
                                          "where its metrics are scraped; absent: the default port.")
    gateway_url: str | None = Field(None, description="The service's gateway's admin port (its /metrics and "
                                                      "activator); None: replicas' own metrics.")
    fallback: FallbackConfig | None = Field(None, description="The service's CPU fallback, when it has one.")
    # 1 s. A 0.5 s tick sees a burst onset half a second sooner (0.3 points of SLO at a 1 s cold
    # start in benchmarks/autoscale_replay.py's simulator); its only real-stack run so far hit the
    # wake-from-zero run-up since fixed in decide/ (benchmarks/RESULTS.md, run 6), so it is unproven.
    tick_s: float = Field(1.0, gt=0, description="Seconds between decisions (sooner when the gateway pokes).")
    metrics_port: int = Field(9091, ge=0, le=65535, description="Port of this autoscaler's /metrics.")
    replica_metrics_ports: dict[str, int] = Field(default_factory=dict, description="Each deployment's replica "
                                                  "metrics port where it differs from its replica port (Triton: 8002).")
    replica_metrics_path: str = Field("/metrics", pattern=r"^/", description="The replicas' metrics path.")
    local: LocalReplicas | None = Field(None, description="Run replicas as local processes instead of "
                                                          "scaling Kubernetes Deployments.")

    def replica_port(self, deployment: str) -> int:
        return self.replica_ports.get(deployment, DEFAULT_PORT)

    def replica_metrics_port(self, deployment: str) -> int:
        return self.replica_metrics_ports.get(deployment) or self.replica_port(deployment)

    @property
    def policy(self) -> ScalingSpec:
        return ScalingSpec.model_validate(self.model_dump(include=set(ScalingSpec.model_fields)))
