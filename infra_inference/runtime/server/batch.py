"""`infra-inference batch`: offline inference over a file of requests (InferenceService mode "batch").

Each input line is one request body, as the server takes it: an Open Inference
Protocol body (`{"inputs": [...]}`) or a KServe v1 body (`{"instances": [...]}`).
Each output line is the matching response, or `{"error": ...}` for a line the
model rejected, in input order. The same admission and batching code as
`serve` runs the model, so dynamic batching applies here too.

Input and output may be object stores (s3://, gs://, an http(s) GET/PUT) or
local paths; an input prefix ending in '/' means every object under it. In an
Indexed Job each pod takes a contiguous shard of the records
(JOB_COMPLETION_INDEX of --shards) and writes its own part file under the
output prefix, so the parts in name order are the answers in input order.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from infra_inference.runtime.server.codec import decode_v1, decode_v2, encode_v1, encode_v2
from infra_inference.runtime.server.dataplane import DataPlane
from infra_inference.runtime.server.errors import RequestError
from infra_inference.runtime.server.loading.sources import Credentials, list_prefix, read_object, write_object
from infra_inference.runtime.server.settings import ServerSettings
from infra_inference.specs.uris import redact


@dataclass(frozen=True)
class BatchResult:
    records: int
    failed: int
    output: str


@dataclass(frozen=True)
class Shard:
    """This pod's part of the input: `index` of `count` (an Indexed Job's JOB_COMPLETION_INDEX and completions)."""

    index: int = 0
    count: int = 1

    def take(self, lines: list[bytes]) -> list[bytes]:
        """A contiguous slice, so the parts in index order are the input in order: 10 lines in 4
        shards are lines 0-1, 2-4, 5-6, 7-9 (floor(10 x i / 4) to floor(10 x (i + 1) / 4))."""
        n = len(lines)
        return lines[n * self.index // self.count:n * (self.index + 1) // self.count]

    def output(self, output_uri: str) -> str:
        """`<prefix>part-00002-of-00004.jsonl` under a prefix ('/' at the end), else the one object named."""
        if output_uri.endswith("/"):
            return f"{output_uri}part-{self.index:05d}-of-{self.count:05d}.jsonl"
        if self.count > 1:
            raise ValueError(f"{redact(output_uri)}: {self.count} shards need an output prefix ending in '/'")
        return output_uri


def read_input(uri: str, credentials: Credentials = Credentials()) -> list[bytes]:
    """Every record of `uri`: one object, or every object under a prefix ending in '/', in name order."""
    objects = list_prefix(uri, credentials) if uri.endswith("/") else [uri]
    return [line for o in objects for line in read_object(o, credentials).splitlines() if line.strip()]


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


async def run_batch(settings: ServerSettings, input_uri: str, output_uri: str, shard: Shard = Shard(),
                    credentials: Credentials = Credentials()) -> BatchResult:
    """Answer this shard's lines of `input_uri` into its output object, written whole once all are done."""
    target = shard.output(output_uri)
    lines = shard.take(read_input(input_uri, credentials))
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
    write_object(target, b"".join(a + b"\n" for a in answers), credentials)
    return BatchResult(len(lines), sum(a.startswith(b'{"error"') for a in answers), target)


def batch(
    input_uri: Annotated[str, typer.Option(
        "--input", help="JSON lines of request bodies: one object (path, file://, http(s)://, s3://, gs://) or "
                        "every object under a prefix ending in '/' (directory, s3://, gs://).")],
    output_uri: Annotated[str, typer.Option(
        "--output", help="Where the answers go: one object, or a prefix ending in '/' for part files.")],
    shards: Annotated[int, typer.Option("--shards", min=1, help="Pods splitting the input (the Job's completions); "
                                                                "this pod's index is $JOB_COMPLETION_INDEX.")] = 1,
    credentials_dir: Annotated[Path | None, typer.Option(
        "--credentials-dir", help="Files with the input's and output's credentials (see sdk-docs/security.md).")] = None,
) -> None:
    """Run the model over this shard of --input and write the answers to --output.

    The model and its limits come from the same INFRA_INFERENCE_* settings as `serve`.
    """
    settings = ServerSettings()
    shard = Shard(int(os.environ.get("JOB_COMPLETION_INDEX", "0")), shards)
    if not 0 <= shard.index < shards:
        typer.echo(f"batch failed: JOB_COMPLETION_INDEX {shard.index} is outside 0..{shards - 1}", err=True)
        raise typer.Exit(1)
    try:
        result = asyncio.run(run_batch(settings, input_uri, output_uri, shard, Credentials(credentials_dir)))
    except (OSError, ValueError) as exc:
        typer.echo(f"batch failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{result.records} records, {result.failed} rejected -> {redact(result.output)}")
