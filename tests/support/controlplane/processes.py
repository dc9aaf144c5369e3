"""The control plane's processes: free ports, spawning with logs, health waits, and stopping in order."""

from __future__ import annotations

import ctypes
import http.client
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tests.support.controlplane.binaries import BinariesUnavailable, ControlPlaneError


def _die_with_parent() -> None:
    """Linux: SIGKILL the child if the test process dies without tearing down."""
    os.setsid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def http_ok(url: str, ctx: ssl.SSLContext | None) -> bool:
    """A GET of ``url`` answered 200 (a component's health endpoint)."""
    scheme, rest = url.split("://", 1)
    hostport, _, path = rest.partition("/")
    host, port = hostport.split(":")
    cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    kwargs = {"context": ctx} if scheme == "https" else {}
    conn = cls(host, int(port), timeout=5, **kwargs)
    try:
        conn.request("GET", "/" + path)
        return conn.getresponse().status == 200
    finally:
        conn.close()


class Processes:
    """Components started from ``bin_dir``, each logging to ``<workdir>/<name>.log``.

    ``extra_args`` adds flags per component, e.g. ``{"kube-scheduler": ["-v=4"]}``.
    """

    def __init__(self, bin_dir: Path, workdir: Path, extra_args: Mapping[str, Sequence[str]]) -> None:
        self.bin_dir = bin_dir
        self.workdir = workdir
        self.extra_args = {k: list(v) for k, v in extra_args.items()}
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, args: list[str], env: Mapping[str, str] | None = None, binary: Path | None = None) -> None:
        """Start ``name`` from ``bin_dir`` (or ``binary``, e.g. a system containerd), logging to ``<name>.log``."""
        binary = binary or self.bin_dir / name
        if not os.access(binary, os.X_OK):
            raise BinariesUnavailable(f"{binary} is missing")
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        with log:
            proc = subprocess.Popen([str(binary), *args, *self.extra_args.get(name, [])], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.workdir, env={**os.environ, **(env or {})}, preexec_fn=_die_with_parent)  # fmt: skip
        self._procs.append((name, proc))

    def wait(self, name: str, ready: Callable[[], bool], timeout_s: float) -> None:
        """Until ``ready()``; a component that exits meanwhile, or the deadline, raises with its log's tail."""
        deadline = time.monotonic() + timeout_s
        while True:
            for pname, proc in self._procs:
                if proc.poll() is not None:
                    raise ControlPlaneError(f"{pname} exited with {proc.returncode}:\n{self.log_tail(pname)}")
            try:
                if ready():
                    return
            except (OSError, ControlPlaneError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{name} not ready after {timeout_s:.0f}s:\n{self.log_tail(name.split()[0])}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Every process, in reverse order of start."""
        # One at a time: the apiserver shuts down quickly while etcd is still
        # there, but waits out its timeouts when etcd went first.
        for _name, proc in reversed(self._procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=10)
                except ProcessLookupError:
                    pass
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self._procs.clear()

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last lines of a component's log."""
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return f"(no log at {path})"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + f"\n(full log: {path})"
