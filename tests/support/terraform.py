"""Running the real `terraform` CLI against our provider, installed the way a user installs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "terraform"
TIMEOUT_S = 300.0  # a guard against hanging, never an assertion about speed


def terraform_or_skip() -> str:
    found = shutil.which("terraform")
    if found is None:
        pytest.skip("terraform CLI not on PATH (these tests drive the real CLI)")
    return found


@dataclass
class Terraform:
    """One working directory; HOME holds the implied local mirror `infra-inference terraform install` filled."""

    binary: str
    home: Path
    workdir: Path

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "KUBE"))}
        return {**env, "HOME": str(self.home), "TF_CLI_CONFIG_FILE": str(self.home / ".terraformrc"),
                "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.binary, *args, *(["-no-color"] if args[0] != "output" else [])],
                              cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=TIMEOUT_S)
        if check and proc.returncode != 0:
            pytest.fail(f"terraform {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc


def install_provider(home: Path) -> None:
    """`infra-inference terraform install` with this HOME: the implied mirror ~/.terraform.d/plugins."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".terraformrc").write_text("")  # no provider_installation block: the implied mirrors apply
    subprocess.run([sys.executable, "-m", "infra_inference", "terraform", "install"], check=True,
                   env={**os.environ, "HOME": str(home)}, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def terraform_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    terraform_or_skip()
    home = tmp_path_factory.mktemp("terraform-home")
    install_provider(home)
    yield home


def workdir_with(tmp: Path, home: Path, example: str | None = None, **files: str) -> Terraform:
    """A working directory holding an example's .tf files (or `files`), initialised from the mirror."""
    if example is not None:
        for f in (EXAMPLES / example).glob("*.tf"):
            shutil.copy(f, tmp / f.name)
    for name, text in files.items():
        (tmp / name).write_text(text)
    tf = Terraform(terraform_or_skip(), home, tmp)
    tf.run("init", "-input=false")
    return tf
