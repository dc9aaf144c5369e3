"""The endpoints file: the local actuator writes each Deployment's ready replicas, the gateway reads them.

`{"deployments": {deployment: [host:port, ...]}}`, replaced atomically.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from pathlib import Path

from infra_inference.runtime.discovery.base import Publish

log = logging.getLogger(__name__)

# The local actuator rewrites the file within 0.1 s of a replica turning ready;
# a stat every 50 ms keeps the from-zero path short and costs nothing measurable.
FILE_POLL_S = 0.05


def read_endpoints_file(path: Path) -> dict[str, list[str]]:
    """{deployment: [host:port, ...]} as the local actuator wrote it; empty while it does not exist."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return {d: list(a) for d, a in doc["deployments"].items()}


def write_endpoints_file(path: Path, endpoints: dict[str, list[str]]) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"deployments": endpoints}, sort_keys=True))
    tmp.replace(path)


class FileDiscovery:
    def __init__(self, path: Path, deployments: Iterable[str]) -> None:
        self._path = path
        self._deployments = list(deployments)

    async def run(self, publish: Publish) -> None:
        seen: dict[str, list[str]] | None = None
        while True:
            try:
                current = read_endpoints_file(self._path)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("cannot read %s: %s", self._path, exc)
            else:
                if current != seen:
                    for d in self._deployments:
                        publish(d, current.get(d, []))
                    seen = current
            await asyncio.sleep(FILE_POLL_S)
