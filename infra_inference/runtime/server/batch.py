"""`infra-inference batch`: offline inference over a file of requests (InferenceService mode "batch").

Each input line is one request body, as the server takes it: an Open Inference
Protocol body (`{"inputs": [...]}`) or a KServe v1 body (`{"instances": [...]}`).
Each output line is the matching response, or `{"error": ...}` for a line the
model rejected, in input order. The same admission and batching code as
`serve` runs the model, so dynamic batching applies here too.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlsplit

import typer

from infra_inference.runtime.server.codec import decode_v1, decode_v2, encode_v1, encode_v2
from infra_inference.runtime.server.dataplane import DataPlane
from infra_inference.runtime.server.errors import RequestError
from infra_inference.runtime.server.loading.sources import open_remote
from infra_inference.runtime.server.settings import ServerSettings


@dataclass(frozen=True)
class BatchResult:
    records: int
    failed: int


def read_input(uri: str) -> list[bytes]:
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        data = Path(unquote(parts.path) if parts.scheme else uri).read_bytes()
    else:
        stream, _ = open_remote(uri)
        with stream:
            data = stream.read()
    return [line for line in data.splitlines() if line.strip()]


def output_path(uri: str) -> Path:
    parts = urlsplit(uri)
    if parts.scheme not in ("", "file"):
        raise ValueError(f"output {uri!r}: only local paths and file:// are written; mount the bucket as a volume")
    return Path(unquote(parts.path) if parts.scheme else uri)


async def _answer(plane: DataPlane, line: bytes) -> bytes:
    try:
        try:
            v2 = "inputs" in json.loads(line)
        except (ValueError, TypeError):
            v2 = False  # the decoder below reports what is wrong with the line
        request = decode_v2(line) if v2 else decode_v1(line)
        outputs = await plane.infer(plane.model_name, request)
        return encode_v2(plane.model_name, request, outputs) if v2 else encode_v1(outputs)
    except RequestError as exc:
        return json.dumps({"error": str(exc)}).encode()


async def run_batch(settings: ServerSettings, input_uri: str, output_uri: str) -> BatchResult:
    """Answer every line of `input_uri` into `output_uri`, written atomically once all are done."""
    target = output_path(output_uri)
    lines = read_input(input_uri)
    plane = DataPlane(settings)
    await plane.load()
    try:
        # Submit in windows the admission queue can hold, so nothing is shed with 429.
        window = settings.max_concurrency + settings.max_queue
        answers: list[bytes] = []
        for start in range(0, len(lines), max(1, window)):
            answers += await asyncio.gather(*(_answer(plane, line) for line in lines[start:start + window]))
    finally:
        plane.close()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "wb") as out:
        out.write(b"\n".join(answers) + b"\n")
    os.replace(tmp, target)
    return BatchResult(len(lines), sum(a.startswith(b'{"error"') for a in answers))


def batch(
    input_uri: Annotated[str, typer.Option("--input", help="JSON lines of request bodies: path, file://, http(s)://.")],
    output_uri: Annotated[str, typer.Option("--output", help="Where the JSON-lines answers go (path or file://).")],
) -> None:
    """Run the model over every request in --input and write the answers to --output.

    The model and its limits come from the same INFRA_INFERENCE_* settings as `serve`.
    """
    settings = ServerSettings()
    try:
        result = asyncio.run(run_batch(settings, input_uri, output_uri))
    except (OSError, ValueError) as exc:
        typer.echo(f"batch failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{result.records} records, {result.failed} rejected -> {output_uri}")
