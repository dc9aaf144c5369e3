"""Code blocks in sdk-docs/ run: Python blocks as Pulumi programs under mocks, YAML stack documents rendered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from infra_inference.render import render_stack
from tests.support.mocks import run_program

DOCS = Path(__file__).resolve().parents[1] / "sdk-docs"
BLOCK = re.compile(r"^```(python|yaml)\n(.*?)^```", re.S | re.M)


def blocks(lang: str) -> list[tuple[str, str]]:
    out = []
    for path in sorted(DOCS.glob("*.md")):
        for i, m in enumerate(BLOCK.finditer(path.read_text())):
            if m.group(1) == lang:
                out.append((f"{path.name}#{i}", m.group(2)))
    return out


@pytest.mark.parametrize(("where", "code"), blocks("python"), ids=lambda v: v if "#" in str(v) else "")
def test_python_block_runs(where: str, code: str) -> None:
    run_program(lambda: exec(compile(code, where, "exec"), {"__name__": "__main__"}))


@pytest.mark.parametrize(("where", "code"), blocks("yaml"), ids=lambda v: v if "#" in str(v) else "")
def test_yaml_stack_block_renders(where: str, code: str) -> None:
    doc = yaml.safe_load(code)
    if isinstance(doc, dict) and set(doc) <= {"platform", "pools", "standby", "services", "policies"}:
        assert render_stack(doc)


def test_docs_have_code_blocks() -> None:
    assert len(blocks("python")) >= 2
