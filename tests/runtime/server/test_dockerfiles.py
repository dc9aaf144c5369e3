"""The runtime Dockerfiles start real entrypoints, run as non-root and install only declared dependencies."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from infra_inference.cli import _register, app

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*"))
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", path.read_text())  # join continuation lines
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _final_stage(path: Path) -> list[tuple[str, str]]:
    steps = _instructions(path)
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_both_images_exist() -> None:
    assert {p.name for p in DOCKERFILES} == {"Dockerfile.cpu", "Dockerfile.cuda"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_entrypoint_and_command_are_real(dockerfile: Path) -> None:
    steps = dict(_final_stage(dockerfile))
    entrypoint = json.loads(steps["ENTRYPOINT"])
    command = json.loads(steps["CMD"])
    assert entrypoint == ["infra-inference"]
    assert entrypoint[0] in PYPROJECT["project"]["scripts"]
    _register()
    assert command[0] in {c.name for c in app.registered_commands}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runs_as_non_root(dockerfile: Path) -> None:
    users = [arg for op, arg in _final_stage(dockerfile) if op == "USER"]
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_installs_only_the_project_with_declared_extras(dockerfile: Path) -> None:
    declared = set(PYPROJECT["project"]["optional-dependencies"])
    installs = []
    for op, arg in _instructions(dockerfile):
        if op != "RUN":
            continue
        for command in re.split(r"&&|;", arg):
            words = shlex.split(command)
            if words[:2] in (["pip", "install"], ["pip", "wheel"]):
                installs.append(words[2:])
    assert installs, "no pip step found"
    for args in installs:
        targets = []
        skip_next = False
        for word in args:
            if skip_next:
                skip_next = False
            elif word in ("--extra-index-url", "--wheel-dir"):
                skip_next = True
            elif not word.startswith("-"):
                targets.append(word)
        for target in targets:
            # The project itself (built from its pyproject, installed --no-deps), or the list
            # tools/image/requirements.py derives from the pyproject's dependencies and extras
            # (tests/test_image_recipe.py checks how the file is made and which extras).
            assert target in (".", "/wheels/infra_inference-*.whl", "/wheels/requirements.txt"), \
                f"{dockerfile.name} installs something other than the project: {target}"
    extras = re.findall(r"requirements\.py((?: --extra [a-z0-9-]+)*)", dockerfile.read_text())
    assert extras and {e for x in extras for e in x.split()[1::2]} <= declared


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copied_sources_exist(dockerfile: Path) -> None:
    for op, arg in _instructions(dockerfile):
        if op == "COPY" and not arg.startswith("--from"):
            for source in arg.split()[:-1]:
                assert (ROOT / source).exists(), source
