"""Loading weights while they download, against a real HTTP origin on 127.0.0.1 that can hold, stall or die mid-body."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file as reference_load, save_file

from infra_inference.runtime.server import ServerSettings
from infra_inference.runtime.server.dataplane import DataPlane
from infra_inference.runtime.server.loading import cache, safetensors
from infra_inference.runtime.server.loading.cache import fetch_model, open_model
from infra_inference.runtime.server.model import InferRequest
from tests.runtime.server.support import wait_until
from tests.support.origin import HoldingOrigin

_KIB = 1024


@pytest.fixture
def origin() -> Iterator[HoldingOrigin]:
    server = HoldingOrigin()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Production chunks (8 MiB received, 64 MiB read) would make these ~100 KiB files one chunk each.
    monkeypatch.setattr(cache, "_CHUNK_BYTES", 4 * _KIB)
    monkeypatch.setattr(safetensors, "_CHUNK_BYTES", 16 * _KIB)


def _mlp_file(tmp_path: Path) -> tuple[bytes, dict[str, np.ndarray]]:
    """Three 64x64 FP32 layers (16 KiB weights each): identity, then 2x, then identity."""
    tensors = {}
    for i, scale in enumerate((1.0, 2.0, 1.0)):
        tensors[f"layers.{i}.weight"] = np.eye(64, dtype=np.float32) * scale
        tensors[f"layers.{i}.bias"] = np.full(64, i, dtype=np.float32)
    path = tmp_path / "mlp.safetensors"
    save_file(tensors, str(path))
    return path.read_bytes(), reference_load(str(path))


def _entry_files(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.rglob("*") if p.is_file() and p.name not in (".lock", ".users"))


def _settings(uri: str, cache_dir: Path, **overrides: Any) -> ServerSettings:
    return ServerSettings(model="safetensors-mlp", model_uri=uri, cache_dir=cache_dir, **overrides)


def _load(settings: ServerSettings) -> DataPlane:
    dataplane = DataPlane(settings)
    try:
        asyncio.run(dataplane.load())
    finally:
        dataplane.close()
    return dataplane


def _load_and_infer(settings: ServerSettings, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    dataplane = DataPlane(settings)

    async def load_and_infer() -> dict[str, np.ndarray]:
        await dataplane.load()
        return await dataplane.infer(dataplane.model_name, InferRequest(inputs))

    try:
        return asyncio.run(load_and_infer())
    finally:
        dataplane.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_tensors_are_read_while_the_rest_is_still_downloading(origin: HoldingOrigin, tmp_path: Path,
                                                              chunked: bool) -> None:
    origin.payload, expected = _mlp_file(tmp_path)
    origin.chunked = chunked
    origin.hold_at = len(origin.payload) // 2  # the header and the first layer, not the last one
    cache_dir = tmp_path / "cache"
    with open_model(origin.url, cache_dir) as source:
        assert source.weights is not None
        layout = safetensors.read_layout(source.weights)  # the header has landed: no need to wait for the rest
        buffer = np.empty(layout.data_bytes, dtype=np.uint8)
        tensors = safetensors.iter_tensors(source.weights, layout, buffer)
        name, first = next(tensors)
        np.testing.assert_array_equal(first, expected[name])
        # Meanwhile another replica on the node asks for the same model: it must wait for a complete entry.
        second: list[Path] = []
        other = threading.Thread(target=lambda: second.append(fetch_model(origin.url, cache_dir)))
        other.start()
        time.sleep(0.3)
        assert not second and all(f.startswith(".partial-") for f in _entry_files(cache_dir))
        origin.release.set()
        rest = dict(tensors)
        assert {name, *rest} == set(expected)
        for key, array in rest.items():
            np.testing.assert_array_equal(array, expected[key])
        path = source.cached()
    other.join(timeout=10)
    assert path.read_bytes() == origin.payload and second == [path]
    assert origin.gets == 1 and _entry_files(cache_dir) == [".manifest.json", "mlp.safetensors"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_origin_closing_mid_body_fails_the_load_and_caches_nothing(origin: HoldingOrigin, tmp_path: Path,
                                                                   chunked: bool) -> None:
    origin.payload, _ = _mlp_file(tmp_path)
    origin.chunked = chunked
    origin.die_at = len(origin.payload) // 2
    cache_dir = tmp_path / "cache"
    with pytest.raises(OSError, match=r"mlp\.safetensors: (got \d+ bytes, expected|the download stopped after)"):
        _load(_settings(origin.url, cache_dir))
    assert _entry_files(cache_dir) == []
    origin.die_at = None  # the origin recovers: the next start downloads and serves
    dataplane = _load(_settings(origin.url, cache_dir))
    assert dataplane.loaded() and origin.gets == 2
    # The cache entry is committed behind the load.
    wait_until(lambda: _entry_files(cache_dir) == [".manifest.json", "mlp.safetensors"])


def test_stalled_origin_fails_the_load_after_the_stall_timeout(origin: HoldingOrigin, tmp_path: Path) -> None:
    origin.payload, _ = _mlp_file(tmp_path)
    origin.hold_at = len(origin.payload) // 2  # and never released
    started = time.monotonic()
    with pytest.raises(OSError, match="the download stopped after .* timed out"):
        _load(_settings(origin.url, tmp_path / "cache", model_stall_timeout_s=0.5))
    assert time.monotonic() - started < 10
    assert _entry_files(tmp_path / "cache") == []


def test_the_model_is_not_served_before_the_download_is_verified(origin: HoldingOrigin, tmp_path: Path) -> None:
    weights, _ = _mlp_file(tmp_path)
    # Bytes after the last tensor, sent without a Content-Length: every tensor can load before they land.
    origin.payload = weights + bytes(4 * _KIB)
    origin.chunked = True
    origin.hold_at = len(weights)
    dataplane = DataPlane(_settings(f"{origin.url}#sha256={'0' * 64}", tmp_path / "cache"))
    failures: list[BaseException] = []

    def load() -> None:
        try:
            asyncio.run(dataplane.load())
        except BaseException as exc:  # noqa: BLE001 (handed to the test thread)
            failures.append(exc)

    loading = threading.Thread(target=load)
    loading.start()
    time.sleep(0.5)
    assert not dataplane.loaded()  # the tensors are in, the pin is not checked yet
    origin.release.set()
    loading.join(timeout=10)
    dataplane.close()
    assert len(failures) == 1 and "does not match the pinned" in str(failures[0])
    assert isinstance(failures[0], ValueError) and not dataplane.loaded()
    assert _entry_files(tmp_path / "cache") == []
    origin.hold_at = None
    pin = hashlib.sha256(origin.payload).hexdigest()
    assert _load(_settings(f"{origin.url}#sha256={pin}", tmp_path / "cache")).loaded()


def test_a_load_that_fails_early_stops_the_download_and_caches_nothing(origin: HoldingOrigin, tmp_path: Path) -> None:
    header = b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 99]}}'  # offsets do not fit the shape
    origin.payload = len(header).to_bytes(8, "little") + header + bytes(64 * _KIB)
    origin.hold_at = 8 + len(header)
    started = time.monotonic()
    with pytest.raises(ValueError, match="inconsistent with its shape"):
        _load(_settings(origin.url, tmp_path / "cache"))
    assert time.monotonic() - started < 10  # the origin holds the body for 30 s: the load did not wait for it
    origin.release.set()
    wait_until(lambda: _entry_files(tmp_path / "cache") == [])
    fetch_model(origin.url, tmp_path / "cache")  # and the entry's lock was released


@pytest.mark.parametrize("stream_weights", [True, False])
def test_streamed_and_downloaded_first_loads_answer_alike(origin: HoldingOrigin, tmp_path: Path,
                                                          stream_weights: bool) -> None:
    origin.payload, _ = _mlp_file(tmp_path)
    out = _load_and_infer(_settings(origin.url, tmp_path / "cache", stream_weights=stream_weights),
                          {"x": np.ones((1, 64), dtype=np.float32)})
    # relu(1 * x + 0) = 1 -> relu(2 * 1 + 1) = 3 -> 3 + 2 = 5
    np.testing.assert_array_equal(out["output"], np.full((1, 64), 5.0, dtype=np.float32))


def test_a_model_that_does_not_stream_is_built_on_the_complete_file(origin: HoldingOrigin, tmp_path: Path) -> None:
    origin.payload = b"w" * (100 * _KIB)
    settings = ServerSettings(model="tests.runtime.server.user_model:FileSize", model_uri=origin.url,
                              cache_dir=tmp_path / "cache")
    assert _load_and_infer(settings, {"x": np.ones(1)})["size"].tolist() == [100 * _KIB]
