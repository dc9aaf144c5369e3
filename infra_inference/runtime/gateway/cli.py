"""`infra-inference gateway --config gateway.json`."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from infra_inference.runtime.gateway.app import GatewayApp
from infra_inference.runtime.gateway.lifecycle import GatewayServer
from infra_inference.wire.gateway import GatewayConfig


def gateway(
    config: Path = typer.Option(..., "--config", help="gateway.json, as `infra-inference render` writes it."),
    port: int | None = typer.Option(None, "--port", help="Override the config's port."),
    log_level: str = typer.Option("warning", "--log-level"),
) -> None:
    """The request queue in front of a service's replicas: queue, split, dispatch, retry, activator."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = GatewayConfig.model_validate_json(config.read_text())
    if port is not None:
        cfg = cfg.model_copy(update={"port": port})
    GatewayServer(GatewayApp(cfg), cfg).run()
