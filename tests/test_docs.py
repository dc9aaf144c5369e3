"""Code blocks in sdk-docs/ run: Python blocks as Pulumi programs under mocks, YAML stack documents rendered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from infra_inference.render import render_stack
from tests.support.mocks import run_program

DOCS = Path(__file__).resolve().parents[1] / "sdk-docs"
# ```python, ```yaml, or ```yaml <what-it-is> for YAML that is not a stack document (an adapter config, ...).
BLOCK = re.compile(r"^```(python|yaml)(?: ([\w-]+))?\n(.*?)^```", re.S | re.M)
SECTIONS = {"platform", "pools", "standby", "services", "policies"}


def blocks(lang: str, label: str | None = None) -> list[tuple[str, str]]:
    """(`file#index`, code) of every block fenced as `lang` (and `label`: None for unlabelled, "*" for any)."""
    out = []
    for path in sorted(DOCS.glob("*.md")):
        for i, m in enumerate(BLOCK.finditer(path.read_text())):
            if m.group(1) == lang and ((label == "*" and m.group(2) is not None) or m.group(2) == label):
                out.append((f"{path.name}#{i}", m.group(3)))
    return out


@pytest.mark.parametrize(("where", "code"), blocks("python"), ids=lambda v: v if "#" in str(v) else "")
def test_python_block_runs(where: str, code: str) -> None:
    run_program(lambda: exec(compile(code, where, "exec"), {"__name__": "__main__"}))


@pytest.mark.parametrize(("where", "code"), blocks("yaml"), ids=lambda v: v if "#" in str(v) else "")
def test_yaml_stack_block_renders(where: str, code: str) -> None:
    doc = yaml.safe_load(code)
    assert isinstance(doc, dict) and set(doc) <= SECTIONS, \
        f"{where} is not a stack document; fence it as ```yaml <what-it-is> if it is something else"
    assert render_stack(doc)


@pytest.mark.parametrize(("where", "code"), blocks("yaml", "*"), ids=lambda v: v if "#" in str(v) else "")
def test_labelled_yaml_block_parses(where: str, code: str) -> None:
    assert yaml.safe_load(code), f"{where} is empty"


def test_docs_have_code_blocks() -> None:
    assert len(blocks("python")) >= 2 and len(blocks("yaml")) >= 2 and blocks("yaml", "*")
