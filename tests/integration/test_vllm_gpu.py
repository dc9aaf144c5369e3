"""vLLM on a GPU behind our gateway, through the vllm preset's contract: TTFT and throughput, gateway vs direct.

Runs only where vLLM and a GPU exist and INFRA_INFERENCE_VLLM_MODEL names a
local model directory (a small one: the test measures the hop, not the
model). No GPU device was lent to the task that wrote this test, so on this
project's CI it is skipped with that reason.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from infra_inference.runtime.transport.ports import free_port
from infra_inference.specs.runtimes import PRESETS
from tests.runtime.gateway.support import backend, config, gateway_in_thread
from tests.runtime.server.support import request, scrape, wait_until

MODEL = os.environ.get("INFRA_INFERENCE_VLLM_MODEL", "")

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed (no GPU device was "
                       "lent to this task; pip install vllm where one is)"),
    pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="no NVIDIA GPU here"),
    pytest.mark.skipif(not MODEL or not Path(MODEL).is_dir(), reason="INFRA_INFERENCE_VLLM_MODEL names no local "
                       "model directory"),
]


def _ttft_and_rate(base_url: str, n: int = 8) -> tuple[float, float]:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    ttfts, rates = [], []
    for _ in range(n):
        start = time.perf_counter()
        first, tokens = 0.0, 0
        for chunk in client.completions.create(model="llm", prompt="Hello", max_tokens=64, stream=True,
                                               extra_body={"ignore_eos": True}):
            if chunk.choices and chunk.choices[0].text:
                first = first or time.perf_counter()
                tokens += 1
        ttfts.append(first - start)
        rates.append(tokens / (time.perf_counter() - first))
    return statistics.median(ttfts), statistics.median(rates)


def test_vllm_streams_through_the_gateway_with_its_preset() -> None:
    preset = PRESETS["vllm"]
    port = free_port()
    args = [a.format(model_uri=MODEL, model_name="llm", port=port) for a in preset.args]
    server = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", *args,
                              "--gpu-memory-utilization", "0.5"])
    try:
        wait_until(lambda: _healthy(port, preset.readiness_path), timeout_s=600, interval_s=1)
        with gateway_in_thread(config([backend(endpoints=[f"127.0.0.1:{port}"])])) as (gport, admin, _):
            direct = _ttft_and_rate(f"http://127.0.0.1:{port}/v1")
            through = _ttft_and_rate(f"http://127.0.0.1:{gport}/v1")
            print(f"vLLM TTFT p50 direct {direct[0] * 1e3:.1f} ms, via gateway {through[0] * 1e3:.1f} ms; "
                  f"tokens/s direct {direct[1]:.0f}, via gateway {through[1]:.0f}")
            assert through[0] < direct[0] + 0.05 and through[1] > 0.8 * direct[1]
            metrics = scrape(admin)
            assert metrics['infra_inference_time_to_first_token_seconds_count{deployment="svc",service="svc",variant="main"}'] >= 8
            replica = request(port, "GET", preset.metrics_path).body.decode()
            assert preset.queue_metric in replica
    finally:
        server.terminate()
        server.wait(timeout=60)


def _healthy(port: int, path: str) -> bool:
    try:
        return request(port, "GET", path, timeout_s=2).status == 200
    except OSError:
        return False
