"""A replica's real cold start on this machine: exec -> ready, the model from its origin vs from the node cache.

Builds a safetensors MLP (`--size-mb`, square FP32 layers), serves it from a
local HTTP origin (`python -m http.server` on 127.0.0.1), and times
`infra-inference serve --model safetensors-mlp` from exec until `/readyz`
answers 200: with an empty cache (fetch from the origin, then load), with the
cache it left (load only), and the echo model (no weights: process start
alone). Medians of `--rounds`. These are the parts of the cold-start budget
(`decide/coldstart.py`) a laptop can measure; provisioning and image pulls
need a cloud.

Run: .venv/bin/python benchmarks/cold_start.py [--size-mb 256] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra_inference.runtime.transport.ports import free_port  # noqa: E402

SIDE = 2048  # 2048 x 2048 FP32: 16 MiB a layer


def build(path: Path, size_mb: int) -> None:
    layers = max(1, size_mb // 16)
    rng = np.random.default_rng(0)
    tensors = {}
    for i in range(layers):
        tensors[f"layers.{i}.weight"] = rng.standard_normal((SIDE, SIDE), dtype=np.float32)
        tensors[f"layers.{i}.bias"] = np.zeros(SIDE, dtype=np.float32)
    save_file(tensors, str(path))


def time_to_ready(args: list[str], limit_s: float = 300.0) -> float:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "infra_inference", "serve", "--host", "127.0.0.1",
                             "--port", str(port), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - started < limit_s:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except OSError:
                time.sleep(0.02)
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode}: {args}")
        raise RuntimeError(f"not ready within {limit_s:g} s: {args}")
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        root = Path(tmp)
        origin = root / "origin"
        origin.mkdir()
        build(origin / "model.safetensors", args.size_mb)
        size = (origin / "model.safetensors").stat().st_size
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                   "--directory", str(origin)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            uri = f"http://127.0.0.1:{port}/model.safetensors"
            rows: dict[str, list[float]] = {"echo (no weights)": [], "from the origin (empty cache)": [],
                                            "from the node cache": []}
            for r in range(args.rounds):
                cache = root / f"cache-{r}"
                mlp = ["--model", "safetensors-mlp", "--model-uri", uri, "--cache-dir", str(cache)]
                rows["echo (no weights)"].append(time_to_ready(["--model", "echo"]))
                rows["from the origin (empty cache)"].append(time_to_ready(mlp))
                rows["from the node cache"].append(time_to_ready(mlp))
        finally:
            server.terminate()
            server.wait()
    print(f"model {size / 1e6:.0f} MB ({args.size_mb // 16} layers of {SIDE}x{SIDE} FP32), origin: "
          f"http.server on 127.0.0.1; median of {args.rounds}\n")
    print("| start | exec -> ready s (median) | runs |")
    print("| --- | --- | --- |")
    for name, times in rows.items():
        print(f"| {name} | {statistics.median(times):.2f} | {', '.join(f'{t:.2f}' for t in times)} |")


if __name__ == "__main__":
    main()
