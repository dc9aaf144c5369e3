"""A replica's real cold start on this machine: exec -> ready, the model from its origin vs from the node cache.

Builds a safetensors MLP (`--size-mb`, square FP32 layers), serves it from a
local HTTP origin on 127.0.0.1 (this script's own, which can hold each
response to `--rate-mb-s`: loopback is far faster than a real origin, so
the overlap of download and load only shows at a realistic rate), and times
`infra-inference serve --model safetensors-mlp` from exec until `/readyz`
answers 200:

- from the origin, download then load (`--no-stream-weights`: the whole file
  into the node cache, fsynced and committed, then read into memory);
- from the origin, streamed (the default: tensors are read as they land, ready
  once the download is verified; the cache entry is committed behind it,
  "committed" is when its manifest appeared);
- from the node cache the streamed start left (load only);
- the echo model (no weights: process start alone).

Medians of `--rounds`; "load s" is the server's own
`infra_inference_model_load_seconds` (total: fetch and load, without the
process start, which is noisy on a shared machine; fetch and read overlap
when streamed). These are the parts of the cold-start budget
(`decide/coldstart.py`) a laptop can measure; provisioning and image pulls
need a cloud. No `#sha256=` pin: a pinned cache hit also hashes the file.

Run: .venv/bin/python benchmarks/cold_start.py [--size-mb 256] [--rounds 3] [--rate-mb-s 0,200,64]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra_inference.runtime.transport.ports import free_port  # noqa: E402

SIDE = 2048  # 2048 x 2048 FP32: 16 MiB a layer
_PIECE_BYTES = 2**20


def build(path: Path, size_mb: int) -> None:
    layers = max(1, size_mb // 16)
    rng = np.random.default_rng(0)
    tensors = {}
    for i in range(layers):
        tensors[f"layers.{i}.weight"] = rng.standard_normal((SIDE, SIDE), dtype=np.float32)
        tensors[f"layers.{i}.bias"] = np.zeros(SIDE, dtype=np.float32)
    save_file(tensors, str(path))


class _RateLimited(BaseHTTPRequestHandler):
    """GET of one file, sent in 1 MiB pieces, never ahead of `rate` bytes/s (0: as fast as it goes)."""

    protocol_version = "HTTP/1.1"

    def __init__(self, *args: object, path: Path, rate: float) -> None:
        self.file, self.rate = path, rate
        super().__init__(*args)  # type: ignore[arg-type]

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(self.file.stat().st_size))
        self.end_headers()
        started, sent = time.monotonic(), 0
        with open(self.file, "rb") as f:
            while piece := f.read(_PIECE_BYTES):
                self.wfile.write(piece)
                sent += len(piece)
                ahead_s = sent / self.rate - (time.monotonic() - started) if self.rate else 0.0
                if ahead_s > 0:
                    time.sleep(ahead_s)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Start:
    ready_s: float             # exec -> /readyz 200
    phases: dict[str, float]   # the server's own model_load_seconds by phase: total is without the process start
    committed_s: float | None  # exec -> the cache entry's manifest, when asked to wait for it


def _load_phases(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        metrics = r.read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r'model_load_seconds\{phase="(\w+)"\} (\S+)', metrics)}


def time_to_ready(args: list[str], cache: Path | None = None, limit_s: float = 300.0) -> Start:
    """Seconds from exec to /readyz 200; with `cache`, also until its manifest appeared (the commit)."""
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "infra_inference", "serve", "--host", "127.0.0.1",
                             "--port", str(port), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready = None
        while time.monotonic() - started < limit_s:
            if ready is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                        if r.status == 200:
                            ready = time.monotonic() - started
                except OSError:
                    pass
            if ready is not None and (cache is None or list(cache.rglob(".manifest.json"))):
                committed = time.monotonic() - started if cache is not None else None
                return Start(ready, _load_phases(port), committed)
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited with {proc.returncode}: {args}")
            time.sleep(0.02)
        raise RuntimeError(f"not ready within {limit_s:g} s: {args}")
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate-mb-s", default="0,200,64", help="origin rates to run, comma-separated; 0 = unlimited")
    args = parser.parse_args()
    rates = [float(r) for r in args.rate_mb_s.split(",")]
    rows: dict[str, list[Start]] = {"echo (no weights)": []}
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        root = Path(tmp)
        model = root / "model.safetensors"
        build(model, args.size_mb)
        size = model.stat().st_size
        for rate in rates:
            origin = ThreadingHTTPServer(("127.0.0.1", 0), partial(_RateLimited, path=model, rate=rate * 1e6))
            origin.daemon_threads = True
            threading.Thread(target=origin.serve_forever, daemon=True).start()
            uri = f"http://127.0.0.1:{origin.server_address[1]}/model.safetensors"
            at = f"origin {rate:g} MB/s" if rate else "origin unlimited (loopback)"
            try:
                for r in range(args.rounds):
                    old, new = root / f"old-{rate:g}-{r}", root / f"new-{rate:g}-{r}"
                    mlp = ["--model", "safetensors-mlp", "--model-uri", uri, "--cache-dir"]
                    rows.setdefault(f"{at}: download, then load", []).append(
                        time_to_ready([*mlp, str(old), "--no-stream-weights"]))
                    rows.setdefault(f"{at}: streamed", []).append(time_to_ready([*mlp, str(new)], cache=new))
                    rows.setdefault(f"{at}: from the node cache", []).append(time_to_ready([*mlp, str(new)]))
                    if rate == rates[0]:
                        rows["echo (no weights)"].append(time_to_ready(["--model", "echo"]))
            finally:
                origin.shutdown()
                origin.server_close()
    print(f"model {size / 1e6:.0f} MB ({args.size_mb // 16} layers of {SIDE}x{SIDE} FP32), origin on 127.0.0.1; "
          f"median of {args.rounds}\n")
    print("| start | exec -> ready s | runs | load s: total (fetch, read) | cache committed s |")
    print("| --- | --- | --- | --- | --- |")
    for name, starts in rows.items():
        med = lambda values: f"{statistics.median(values):.2f}"  # noqa: E731
        phase = lambda key: med([s.phases.get(key, 0.0) for s in starts])  # noqa: E731
        committed = [s.committed_s for s in starts if s.committed_s is not None]
        print(f"| {name} | {med([s.ready_s for s in starts])} | {', '.join(f'{s.ready_s:.2f}' for s in starts)} "
              f"| {phase('total')} ({phase('fetch')}, {phase('read')}) | {med(committed) if committed else ''} |")


if __name__ == "__main__":
    main()
