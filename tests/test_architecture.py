"""Layering rules and the curated public API."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import infra_inference

PACKAGE = Path(infra_inference.__file__).parent
FORBIDDEN = {"pulumi", "pulumi_kubernetes", "pulumi_gcp", "pulumi_aws", "kubernetes", "lightkube", "kr8s", "httpx",
             "requests", "aiohttp", "socket", "subprocess", "urllib", "http", "os", "asyncio", "pathlib", "io"}
# Pure string functions inside a forbidden package: splitting a URI reads no network.
PURE_SUBMODULES = {"urllib.parse"}


# A command is the I/O edge of the layer it runs: it reads and writes files, and no pure module imports it.
COMMANDS = {"infra_inference.render.cli"}
PURE = ("specs", "decide", "plan", "render", "wire", "simulate")

# Who may import whom, by area (a top-level package, or a folder of runtime/). Anything else is a bad arrow.
# The pure core: errors <- specs <- decide <- plan <- render <- components, and wire/, the render <-> runtime
# contract, beside it. The runtime never imports plan/render/components (its image runs without Pulumi).
# Runtime services meet only through the shared modules (transport, discovery, metrics) and wire/; the one
# sibling arrow is the autoscaler choosing its actuators (controller -> adapter, never the other way).
RUNTIME_SHARED = {"runtime.transport", "runtime.discovery", "runtime.metrics"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "specs": {"errors"},
    "decide": {"errors", "specs"},
    "simulate": {"errors", "specs", "decide"},  # the autoscaling simulator: decide/ on generated traffic
    "wire": {"errors", "specs"},
    "plan": {"errors", "specs", "decide", "wire"},
    "render": {"errors", "specs", "decide", "plan", "wire"},
    "components": {"errors", "specs", "decide", "plan", "render", "wire"},
    "provider": {"components"},
    # The Terraform provider: a delivery adapter beside components/, never importing it (no Pulumi).
    "terraform": {"errors", "specs", "decide", "plan", "render", "wire"},
    "infra_inference": {"errors", "components", "render"},  # the package's curated __init__
    "cli": {"render", "terraform", "runtime.server", "runtime.gateway", "runtime.autoscaler", "runtime.dev"},  # index
    "__main__": {"cli"},
    "runtime": set(),  # runtime/__init__.py, empty
    **dict.fromkeys(RUNTIME_SHARED, {"wire"}),
    "runtime.server": {"errors", "specs", "wire", *RUNTIME_SHARED},
    "runtime.gateway": {"wire", *RUNTIME_SHARED},
    "runtime.actuators": {"wire", *RUNTIME_SHARED},
    "runtime.autoscaler": {"specs", "decide", "wire", "runtime.actuators", *RUNTIME_SHARED},
    # starts the services as processes, never imports them; its live view reads p95 as the autoscaler does
    "runtime.dev": {"specs", "decide", "wire", *RUNTIME_SHARED},
}


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """{module: the infra_inference modules it imports}, function-level imports included."""
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0 and node.module, f"{name}: a relative import hides its arrow from this test"
                targets |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                            for a in node.names}
        graph[name] = {t for t in targets if t.split(".")[0] == "infra_inference"}
    return graph


def area(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return parts[0]
    return ".".join(parts[1:3]) if parts[1] == "runtime" and len(parts) > 2 else parts[1]


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), set()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names if a.name not in PURE_SUBMODULES}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module not in PURE_SUBMODULES:
            roots.add(node.module.split(".")[0])
    return roots


def test_pure_layers_import_no_io_pulumi_or_network() -> None:
    checked = 0
    for name, path in modules().items():
        if area(name) in PURE and name not in COMMANDS:
            bad = imported_roots(path) & FORBIDDEN
            assert not bad, f"{name} imports {sorted(bad)}"
            checked += 1
    assert checked >= 30


def test_every_import_arrow_is_allowed() -> None:
    graph = import_graph()
    assert set(map(area, graph)) <= set(ALLOWED), f"areas without rules: {set(map(area, graph)) - set(ALLOWED)}"
    bad = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                 if area(t) != area(m) and area(t) not in ALLOWED[area(m)])
    assert not bad, "import arrows the layering does not allow:\n" + "\n".join(bad)
    commands = sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                      if t in COMMANDS and area(m) in PURE)
    assert not commands, f"pure modules importing a command: {commands}"


@pytest.mark.parametrize(("source", "target"), [
    ("runtime.gateway", "runtime.server"),
    ("runtime.server", "runtime.gateway"),
    ("runtime.actuators", "runtime.autoscaler"),
    ("runtime.discovery", "runtime.gateway"),
    ("runtime.gateway", "render"),
    ("runtime.autoscaler", "components"),
])
def test_no_path_through_the_import_graph(source: str, target: str) -> None:
    graph = import_graph()
    for module in (m for m in graph if area(m) == source):
        hit = sorted(t for t in reachable(graph, module) if area(t) == target)
        assert not hit, f"{module} reaches {target} ({hit[:3]}...)"


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
