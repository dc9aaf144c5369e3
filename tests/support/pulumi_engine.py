"""The Pulumi engine for end-to-end tests: the CLI and plugins from tools/pulumi, run offline.

Everything the engine needs is local: the `pulumi` CLI, `pulumi-language-yaml`
and `pulumi-resource-kubernetes` built by ``tools/pulumi/build.sh`` (built on
first use when Go is installed), our `pulumi-resource-infra-inference` beside
this interpreter, a `file://` state backend and a passphrase secrets provider
in a temporary directory, and plugin acquisition switched off so a missing
plugin is an error instead of a download.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.support.builds import built_dir

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "tools" / "pulumi" / "build.sh"
TOOLS = ("pulumi", "pulumi-language-yaml", "pulumi-resource-kubernetes")


class ToolsUnavailable(Exception):
    """The engine's binaries are not built and cannot be built here (the reason says why)."""


def find_tools(*, build: bool = True) -> Path:
    """The directory holding the CLI and plugins, building them first if needed and possible."""
    return built_dir(BUILD, "Pulumi CLI and plugins", build=build, unavailable=ToolsUnavailable)


def engine_env(tools: Path, home: Path, kubeconfig: Path) -> dict[str, str]:
    """Environment for the CLI: our binaries first on PATH, state and plugins under `home`, no network."""
    (home / "state").mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "PATH": os.pathsep.join([str(tools), str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PULUMI_HOME": str(home / "pulumi-home"),
        "PULUMI_BACKEND_URL": (home / "state").as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": "test",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "KUBECONFIG": str(kubeconfig),
    }
