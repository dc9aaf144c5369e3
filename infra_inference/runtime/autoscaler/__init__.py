"""The autoscaler behind `infra-inference autoscaler`: collect -> decide -> actuate."""

from infra_inference.runtime.autoscaler.config import AutoscalerConfig, LocalReplicas
from infra_inference.runtime.autoscaler.loop import Autoscaler

__all__ = ["Autoscaler", "AutoscalerConfig", "LocalReplicas"]
