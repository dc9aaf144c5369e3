"""Binaries the project builds from pinned Go modules (tools/*/build.sh), found or built on first use."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def built_dir(script: Path, what: str, *, build: bool, unavailable: type[Exception]) -> Path:
    """The bin dir `script` prints, running it first when its cache lacks something and `build` allows.

    Raises `unavailable` with the reason (not built, no Go, the build failed).
    """
    if subprocess.run([script, "--check"], check=False).returncode == 0:
        return Path(subprocess.check_output([script, "--dir"], text=True).strip())
    if not build:
        raise unavailable(f"{what} not built; run {script}")
    if shutil.which("go") is None:
        raise unavailable(f"{what} not built and 'go' is not on PATH; install Go >= 1.26 and run {script}")
    done = subprocess.run([script], stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise unavailable(f"{script} failed (exit {done.returncode}); run it to see the error")
    return Path(done.stdout.strip().splitlines()[-1])
