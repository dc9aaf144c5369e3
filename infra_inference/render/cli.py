"""`infra-inference render SPEC -o DIR`: the stack as YAML files for GitOps and kubectl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from infra_inference.errors import SpecError
from infra_inference.render import render_stack


def load_document(path: Path) -> dict:
    """A YAML or JSON stack document (JSON is YAML, so one parser reads both)."""
    text = path.read_text()
    doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise SpecError([], subject=f"{path}: the document must be a mapping of sections")
    return doc


def write_manifests(objects: list[dict], out_dir: Path) -> list[Path]:
    """One file per object, numbered in apply order: `007-deployment-inference-chat.yaml`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("[0-9][0-9][0-9]-*.yaml"):
        stale.unlink()  # a removed object must not linger in a GitOps folder
    written = []
    for i, o in enumerate(objects):
        ns = o["metadata"].get("namespace", "cluster")
        path = out_dir / f"{i:03d}-{o['kind'].lower()}-{ns}-{o['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(o, sort_keys=False))
        written.append(path)
    return written


def render(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Stack document (YAML or JSON).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the manifests.")] = Path("out"),
) -> None:
    """Render a stack document to Kubernetes YAML, one file per object."""
    try:
        objects = render_stack(load_document(spec), warn=lambda line: typer.echo(f"warning: {line}", err=True))
    except SpecError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from None
    written = write_manifests(objects, output)
    kinds: dict[str, int] = {}
    for o in objects:
        kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    typer.echo(f"wrote {len(written)} objects to {output}/ ({summary})")
    typer.echo(f"apply with: kubectl apply --server-side -f {output}/")
