"""Our concurrent safetensors reader returns exactly what the reference implementation does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file as reference_load, save_file

from infra_inference.runtime.server.loading import safetensors


def test_every_dtype_matches_the_reference_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    tensors = {
        f"t_{dtype}": (rng.standard_normal((7, 5)) * 50).astype(dtype)
        for dtype in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool")
    }
    tensors["empty"] = np.zeros((0, 3), dtype=np.float32)
    path = tmp_path / "t.safetensors"
    save_file(tensors, str(path), metadata={"format": "np"})
    # Tiny chunks, so the concurrent path really splits the file across threads.
    monkeypatch.setattr(safetensors, "_CHUNK_BYTES", 64)
    ours = safetensors.load_file(path, threads=3)
    expected = reference_load(str(path))
    assert ours.keys() == expected.keys()
    for name, array in expected.items():
        assert ours[name].dtype == array.dtype and ours[name].shape == array.shape
        np.testing.assert_array_equal(ours[name], array)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x05\x00",
        (10**12).to_bytes(8, "little") + b"{}",
        (7).to_bytes(8, "little") + b"not json",
        (16).to_bytes(8, "little") + b'{"w": {"x": 1}}',
        (37).to_bytes(8, "little") + b'{"w": {"dtype": "Q9", "shape": [1]}}',
    ],
)
def test_malformed_files_raise_value_error(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(blob)
    with pytest.raises(ValueError):
        safetensors.load_file(path)


def test_a_file_without_tensors_loads_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    path.write_bytes((2).to_bytes(8, "little") + b"{}")
    assert safetensors.load_file(path) == {}


def test_offsets_past_the_end_are_rejected(tmp_path: Path) -> None:
    header = b'{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}'
    path = tmp_path / "short.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\x00" * 8)
    with pytest.raises(ValueError, match="past the end"):
        safetensors.load_file(path)
