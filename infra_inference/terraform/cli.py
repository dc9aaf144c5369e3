"""`infra-inference terraform install | docs`: put the provider where `terraform init` finds it offline."""

from __future__ import annotations

import shutil
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import typer

from infra_inference.terraform.docs import markdown

# `source = "infra-inference/infra-inference"` in required_providers means this address.
HOSTNAME, NAMESPACE, TYPE = "registry.terraform.io", "infra-inference", "infra-inference"
EXECUTABLE = f"terraform-provider-{TYPE}"

terraform = typer.Typer(help="The Terraform provider: install it for `terraform init`, print its docs.",
                        no_args_is_help=True)


def plugin_executable() -> Path:
    """The console script pip installed beside this Python (or the one on PATH)."""
    beside = Path(sys.executable).parent / EXECUTABLE
    found = beside if beside.exists() else (Path(p) if (p := shutil.which(EXECUTABLE)) else None)
    if found is None:
        raise typer.BadParameter(f"{EXECUTABLE} is not installed; `pip install infra-inference[terraform]` puts it "
                                 f"on PATH")
    return found


def implied_mirror() -> Path:
    """The local mirror Terraform searches without any CLI configuration (on Linux and macOS)."""
    return Path.home() / ".terraform.d" / "plugins"


def install_into(mirror: Path, platform: str) -> Path:
    """Unpacked filesystem-mirror layout: HOSTNAME/NAMESPACE/TYPE/VERSION/OS_ARCH/terraform-provider-TYPE."""
    target = mirror / HOSTNAME / NAMESPACE / TYPE / version("infra-inference") / platform
    target.mkdir(parents=True, exist_ok=True)
    dest = target / EXECUTABLE
    shutil.copy2(plugin_executable(), dest)
    dest.chmod(0o755)
    return dest


def _platform() -> str:
    import platform as p

    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(p.machine().lower(), p.machine().lower())
    return f"{sys.platform}_{machine}"  # linux_amd64, darwin_arm64


@terraform.command()
def install(
    mirror: Annotated[Path | None, typer.Option(help="Filesystem mirror directory. Default: ~/.terraform.d/plugins, "
                                                     "which terraform init searches without configuration.")] = None,
) -> None:
    """Place the provider in a local filesystem mirror, so `terraform init` finds it without a registry."""
    dest = install_into(mirror or implied_mirror(), _platform())
    typer.echo(f"installed {dest}")
    typer.echo(f'use it with: required_providers {{ infra = {{ source = "{NAMESPACE}/{TYPE}" }} }}')


@terraform.command()
def docs() -> None:
    """Print the provider reference (sdk-docs/terraform.md) generated from its schema."""
    typer.echo(markdown(), nl=False)
