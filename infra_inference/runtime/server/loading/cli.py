"""`infra-inference fetch URI... --cache-dir DIR`: warm a node's model cache (StandbyPool warm_models)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def fetch(
    uris: Annotated[list[str], typer.Argument(help="Model URIs: path, file://, http(s)://, s3://, gs://.")],
    cache_dir: Annotated[Path, typer.Option("--cache-dir", help="Node-local model cache.")] = Path(
        "/var/cache/infra-inference/models"),
    max_bytes: Annotated[int | None, typer.Option(
        "--max-bytes", help="The cache's bound (model_cache_max_bytes); least recently used idle entries go.")] = None,
) -> None:
    """Fetch models into the cache; a model already cached is not read again."""
    from infra_inference.runtime.server.loading.cache import fetch_model
    from infra_inference.specs.uris import redact

    failed = 0
    for uri in uris:
        try:
            typer.echo(f"{redact(uri)} -> {fetch_model(uri, cache_dir, max_bytes=max_bytes)}")
        except (OSError, ValueError) as err:
            failed += 1
            typer.echo(f"{redact(uri)}: {err}", err=True)
    if failed:
        raise typer.Exit(1)
