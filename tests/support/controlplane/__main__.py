"""``python -m tests.support.controlplane`` (from the repository root): run a local control plane until Ctrl-C."""

import signal
import sys
import time

from tests.support.controlplane import ControlPlane, find_binaries, gpu_pool_nodes


def main() -> None:
    cp = ControlPlane(find_binaries())
    started = time.monotonic()
    with cp:
        cp.add_nodes(gpu_pool_nodes("gpu"))
        print(f"control plane up in {time.monotonic() - started:.1f}s; 3 kwok GPU nodes (4 x nvidia.com/gpu each)")
        print(f"export KUBECONFIG={cp.kubeconfig}", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
