"""`infra-inference dev`: gateway, autoscaler and replicas as local processes."""

from infra_inference.runtime.dev.stack import DevStack

__all__ = ["DevStack"]
