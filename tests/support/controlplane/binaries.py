"""The control-plane binaries: where they are, and building them when they are not there yet.

They come from ``tools/controlplane/build.sh`` (Go modules pinned in that
folder, built once into a cache outside the repository).
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.builds import built_dir

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
BIN_ENV = "INFRA_INFERENCE_CONTROLPLANE_BIN"


class ControlPlaneError(RuntimeError):
    """A control-plane binary is missing, failed to start, or did not become healthy."""


class BinariesUnavailable(ControlPlaneError):
    """The binaries are not built and cannot be built here (the reason says why)."""


def _build_script() -> Path:
    # <repo>/tests/support/controlplane/binaries.py -> <repo>/tools/controlplane/build.sh
    return Path(__file__).resolve().parents[3] / "tools" / "controlplane" / "build.sh"


def find_binaries(*, build: bool = True) -> Path:
    """Return the directory holding the control-plane binaries.

    ``$INFRA_INFERENCE_CONTROLPLANE_BIN`` wins when set. Otherwise the build
    script's cache is used, building it first when ``build`` is true and Go
    is installed.

    Raises:
        BinariesUnavailable: with the reason, when there are no binaries.
    """
    override = os.environ.get(BIN_ENV)
    if override:
        bin_dir = Path(override)
        missing = [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)]
        if missing:
            raise BinariesUnavailable(f"${BIN_ENV}={bin_dir} lacks {', '.join(missing)}")
        return bin_dir
    script = _build_script()
    if not script.exists():
        raise BinariesUnavailable(f"{script} not found (not running from a source checkout); set ${BIN_ENV}")
    return built_dir(script, "control-plane binaries", build=build, unavailable=BinariesUnavailable)
