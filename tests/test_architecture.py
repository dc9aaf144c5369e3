"""Layering rules and the curated public API."""

from __future__ import annotations

import ast
from pathlib import Path

import infra_inference

PACKAGE = Path(infra_inference.__file__).parent
FORBIDDEN = {"pulumi", "pulumi_kubernetes", "pulumi_gcp", "pulumi_aws", "kubernetes", "lightkube", "kr8s", "httpx",
             "requests", "aiohttp", "socket", "subprocess", "urllib", "http", "os", "asyncio", "pathlib", "io"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


# A command is the I/O edge of the layer it runs: it reads and writes files, and no pure module imports it.
COMMANDS = {"render/cli.py"}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_specs_decide_plan_render_are_pure() -> None:
    checked = 0
    for layer in ("specs", "decide", "plan", "render"):
        for path in (PACKAGE / layer).rglob("*.py"):
            if str(path.relative_to(PACKAGE)) in COMMANDS:
                continue
            bad = imported_roots(path) & FORBIDDEN | {m for m in imported_modules(path) if m.endswith(".cli")}
            assert not bad, f"{path.relative_to(PACKAGE)} imports {sorted(bad)}"
            checked += 1
    assert checked >= 10


def test_public_api_is_sorted_complete_and_importable() -> None:
    assert infra_inference.__all__ == sorted(infra_inference.__all__)
    for name in infra_inference.__all__:
        assert getattr(infra_inference, name) is not None
    assert {"GpuPool", "StandbyPool", "InferenceService", "AutoscalePolicy", "InferencePlatform",
            "SpecError"} <= set(infra_inference.__all__)
    assert issubclass(infra_inference.SpecError, ValueError)


def test_component_type_tokens_follow_the_contract() -> None:
    import inspect

    for name in ("GpuPool", "StandbyPool", "InferenceService", "AutoscalePolicy", "InferencePlatform"):
        source = inspect.getsource(getattr(infra_inference, name))
        assert f'"infra-inference:index:{name}"' in source
