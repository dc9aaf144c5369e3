"""The gateway behind `infra-inference gateway`: request queue, router, activator, canary split, retries."""

from infra_inference.runtime.gateway.app import GatewayApp
from infra_inference.runtime.gateway.lifecycle import GatewayServer
from infra_inference.wire.gateway import BackendConfig, GatewayConfig

__all__ = ["BackendConfig", "GatewayApp", "GatewayConfig", "GatewayServer"]
