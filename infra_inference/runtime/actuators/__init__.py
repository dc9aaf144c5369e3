"""Actuators behind one small protocol, so the same autoscaler runs against Kubernetes or local processes."""

from infra_inference.runtime.actuators.base import Actuator, Replicas

__all__ = ["Actuator", "Replicas"]
