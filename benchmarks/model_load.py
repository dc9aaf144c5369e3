"""Model load bandwidth: our concurrent safetensors reader against the page cache and other loaders.

Generates a ~1 GB safetensors file (16 x 64 MiB float32 tensors), warms it
into the page cache, then in the same run measures (best of --repeats):

- page cache: the file's bytes read into one preallocated buffer, single
  readinto and parallel preadv; the faster is the ceiling for any loader
  that materializes the weights in host memory;
- safetensors: `safetensors.numpy.load_file` and `safe_open(...).get_tensor`;
- runai-model-streamer (the `bench-torch` extra; it needs PyTorch);
- ours: `infra_inference.runtime.server.loading.safetensors.load_file`.

With PyTorch and a CUDA GPU it also measures to-GPU bandwidth: ours (pinned
buffer, then `.to("cuda")`) against a plain pinned host-to-device copy.

    .venv/bin/python benchmarks/model_load.py [--size-gib 1] [--repeats 3]

Target (issue 3): ours >= 80 % of the page-cache bandwidth; to-GPU >= 70 %
of the pinned copy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file as safetensors_load_file, save_file

from infra_inference.runtime.server.loading import safetensors as ours

_TENSOR_BYTES = 64 * 2**20


def make_file(path: Path, size_gib: float) -> None:
    count = max(1, int(size_gib * 2**30 // _TENSOR_BYTES))
    tensors = {f"layers.{i}.weight": np.full(_TENSOR_BYTES // 4, i, dtype=np.float32) for i in range(count)}
    save_file(tensors, str(path))


def best_seconds(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
        del result
    return best


def page_cache_readinto(path: Path) -> np.ndarray:
    buffer = np.empty(path.stat().st_size, dtype=np.uint8)
    with open(path, "rb", buffering=0) as handle:
        view = memoryview(buffer)
        done = 0
        while done < len(buffer):
            done += handle.readinto(view[done:])  # type: ignore[operator]
    return buffer


def page_cache_parallel(path: Path, threads: int) -> np.ndarray:
    size = path.stat().st_size
    buffer = np.empty(size, dtype=np.uint8)
    view = memoryview(buffer)
    fd = os.open(path, os.O_RDONLY)

    def chunk(start: int) -> None:
        stop = min(start + _TENSOR_BYTES, size)
        while start < stop:
            start += os.preadv(fd, [view[start:stop]], start)

    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(chunk, range(0, size, _TENSOR_BYTES)))
    finally:
        os.close(fd)
    return buffer


def safetensors_safe_open(path: Path) -> dict[str, np.ndarray]:
    with safe_open(str(path), framework="np") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)


def runai_streamer(path: Path) -> dict[str, Any]:
    from runai_model_streamer import SafetensorsStreamer

    out = {}
    with SafetensorsStreamer() as streamer:
        streamer.stream_file(str(path))
        for name, tensor in streamer.get_tensors():
            out[name] = tensor.clone()  # the streamer reuses its buffer
    return out


def gpu_rows(path: Path, repeats: int, size: int) -> list[tuple[str, float]]:
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []

    def pinned_copy() -> Any:
        host = torch.empty(size, dtype=torch.uint8, pin_memory=True)
        device = host.to("cuda", non_blocking=True)
        torch.cuda.synchronize()
        return device

    def ours_to_gpu() -> Any:
        layout = ours.read_layout(path)
        host = torch.empty(layout.data_bytes, dtype=torch.uint8, pin_memory=True)
        ours.read_into(path, layout, host.numpy())
        device = host.to("cuda", non_blocking=True)
        torch.cuda.synchronize()
        return device

    return [("pinned host->GPU copy", best_seconds(pinned_copy, repeats)), ("ours -> GPU", best_seconds(ours_to_gpu, repeats))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the test file (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "model.safetensors"
        make_file(path, args.size_gib)
        size = path.stat().st_size
        page_cache_readinto(path)  # warm the page cache
        threads = max(2, os.cpu_count() or 2)
        rows: list[tuple[str, float | str]] = [
            ("page cache: readinto, 1 thread", best_seconds(lambda: page_cache_readinto(path), args.repeats)),
            (f"page cache: preadv, {threads} threads", best_seconds(lambda: page_cache_parallel(path, threads), args.repeats)),
            ("safetensors.numpy.load_file", best_seconds(lambda: safetensors_load_file(str(path)), args.repeats)),
            ("safetensors safe_open+get_tensor", best_seconds(lambda: safetensors_safe_open(path), args.repeats)),
        ]
        try:
            rows.append(("runai-model-streamer", best_seconds(lambda: runai_streamer(path), args.repeats)))
        except ImportError as exc:
            rows.append(("runai-model-streamer", f"skipped: {exc}"))
        for t in sorted({1, 2, 4, threads}):
            rows.append((f"ours, {t} threads", best_seconds(lambda t=t: ours.load_file(path, threads=t), args.repeats)))
        ceiling = min(s for name, s in rows if name.startswith("page cache") and isinstance(s, float))
        print(f"file: {size / 1e9:.2f} GB, {os.cpu_count()} CPUs; GB/s best of {args.repeats}; ratio vs page cache")
        for name, seconds in rows:
            if isinstance(seconds, str):
                print(f"  {name:<36} {seconds}")
            else:
                print(f"  {name:<36} {size / seconds / 1e9:>7.2f} GB/s  {ceiling / seconds:>5.2f}")
        gpu = gpu_rows(path, args.repeats, size)
        if gpu:
            pinned = gpu[0][1]
            for name, seconds in gpu:
                print(f"  {name:<36} {size / seconds / 1e9:>7.2f} GB/s  {pinned / seconds:>5.2f} of pinned copy")
        else:
            print("  to-GPU: skipped (needs PyTorch and a CUDA GPU)")


if __name__ == "__main__":
    main()
