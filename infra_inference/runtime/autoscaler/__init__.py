"""The autoscaler behind `infra-inference autoscaler`: collect -> decide -> actuate."""

from infra_inference.runtime.autoscaler.loop import Autoscaler
from infra_inference.wire.policy import AutoscalerConfig, LocalReplicas

__all__ = ["Autoscaler", "AutoscalerConfig", "LocalReplicas"]
