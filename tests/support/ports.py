"""Free loopback ports for the processes and servers tests start."""

from __future__ import annotations

import socket


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports nothing listens on: all bound at once, then released (one at a time, the kernel
    may hand the same free port out twice). A server started on one later may still lose a race for it;
    on a test machine the window is harmless, and a collision shows up as a start failure."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
