"""Run the gateway on uvicorn; SIGTERM stops accepting and lets every open request finish."""

from __future__ import annotations

import importlib.util

import uvicorn

from infra_inference.runtime.gateway.app import GatewayApp
from infra_inference.runtime.gateway.config import GatewayConfig


def gateway_server(app: GatewayApp, config: GatewayConfig, log_level: str = "warning") -> uvicorn.Server:
    uvloop = importlib.util.find_spec("uvloop") is not None
    return uvicorn.Server(uvicorn.Config(
        app, host=config.host, port=config.port, http="httptools", loop="uvloop" if uvloop else "asyncio",
        ws="none", lifespan="on", access_log=False, log_level=log_level,
        # Answers can take timeout_s (queueing included): let open requests finish on SIGTERM.
        timeout_graceful_shutdown=config.timeout_s + 5, timeout_keep_alive=75))
