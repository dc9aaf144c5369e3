"""Loopback ports for the services this machine runs (the dev stack, the local actuator's replicas)."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
