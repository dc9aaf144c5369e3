"""Every example's Kubernetes objects, as its Pulumi program creates them under mocks."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

from tests.support.mocks import Run, run_program

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
EXAMPLES = sorted(p.name for p in EXAMPLES_DIR.iterdir() if (p / "__main__.py").exists())


def run_example(name: str) -> Run:
    return run_program(lambda: runpy.run_path(str(EXAMPLES_DIR / name / "__main__.py")) and None)


def rendered_objects(name: str) -> list[dict[str, Any]]:
    return run_example(name).k8s_objects()
