"""The gateway behind `infra-inference gateway`: request queue, router, activator, canary split, retries."""

from infra_inference.runtime.gateway.app import GatewayApp
from infra_inference.runtime.gateway.config import BackendConfig, GatewayConfig
from infra_inference.runtime.gateway.lifecycle import GatewayServer

__all__ = ["BackendConfig", "GatewayApp", "GatewayConfig", "GatewayServer"]
