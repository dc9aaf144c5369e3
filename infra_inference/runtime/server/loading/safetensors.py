"""A fast safetensors reader: one buffer, filled by concurrent positional reads.

The format is an 8-byte little-endian header length, a JSON header
(``name -> {dtype, shape, data_offsets}``) and one contiguous data section.
So the whole data section is read into a single preallocated buffer with
``os.preadv`` from several threads at once (the syscall releases the GIL, and
parallel reads keep the page cache or NVMe queue busy), and every tensor is
a zero-copy view into it. On a GPU the caller passes a pinned host buffer, so
the copy to the device runs at full DMA speed.

Worked numbers: a 1 GiB file in 64 MiB chunks is 16 reads; with 4 threads
each thread issues 4, and the buffer is full when the slowest thread is done.
"""

from __future__ import annotations

import math
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

# safetensors dtype -> numpy dtype. BF16 has no numpy type: it is returned as raw uint16
# bits, which torch reinterprets (``.view(torch.bfloat16)``).
NUMPY_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype(np.uint8),
    "I8": np.dtype(np.int8),
    "U16": np.dtype(np.uint16),
    "I16": np.dtype(np.int16),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(np.uint16),
    "U32": np.dtype(np.uint32),
    "I32": np.dtype(np.int32),
    "F32": np.dtype(np.float32),
    "U64": np.dtype(np.uint64),
    "I64": np.dtype(np.int64),
    "F64": np.dtype(np.float64),
}
_CHUNK_BYTES = 64 * 2**20
_MAX_HEADER_BYTES = 100 * 2**20  # the reference implementation's limit


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """Where one tensor lives in the data section."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True, slots=True)
class Layout:
    """A parsed safetensors header.

    Attributes:
        tensors: Tensor name -> location and type.
        data_offset: Byte offset of the data section in the file.
        data_bytes: Length of the data section.
    """

    tensors: dict[str, TensorInfo]
    data_offset: int
    data_bytes: int


def read_layout(path: Path) -> Layout:
    """Parse the header of a safetensors file.

    Raises:
        ValueError: The file is not a well-formed safetensors file.
    """
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise ValueError(f"{path}: too short for a safetensors file")
        (header_bytes,) = struct.unpack("<Q", prefix)
        if header_bytes > _MAX_HEADER_BYTES:
            raise ValueError(f"{path}: header of {header_bytes} bytes is implausibly large")
        header = orjson.loads(handle.read(header_bytes))  # JSONDecodeError is a ValueError
        size = os.fstat(handle.fileno()).st_size
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is not a JSON object")
    data_offset = 8 + header_bytes
    tensors: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = entry["data_offsets"]
            info = TensorInfo(entry["dtype"], tuple(entry["shape"]), begin, end)
            expected_bytes = math.prod(info.shape) * NUMPY_DTYPES[info.dtype].itemsize
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: tensor {name!r} has a malformed entry {entry!r}") from None
        if end - begin != expected_bytes or begin < 0:
            raise ValueError(f"{path}: tensor {name!r} has offsets inconsistent with its shape")
        tensors[name] = info
    data_bytes = size - data_offset
    if any(info.end > data_bytes for info in tensors.values()):
        raise ValueError(f"{path}: tensor data runs past the end of the file")
    return Layout(tensors, data_offset, data_bytes)


def read_into(path: Path, layout: Layout, buffer: np.ndarray, *, threads: int = 4) -> None:
    """Fill ``buffer`` (uint8, ``layout.data_bytes`` long) with the data section, reading concurrently."""
    if buffer.nbytes < layout.data_bytes:
        raise ValueError(f"buffer of {buffer.nbytes} bytes is smaller than the data ({layout.data_bytes})")
    view = memoryview(buffer.reshape(-1))  # type: ignore[arg-type]
    starts = range(0, layout.data_bytes, _CHUNK_BYTES)
    fd = os.open(path, os.O_RDONLY)
    try:

        def read_chunk(start: int) -> None:
            stop = min(start + _CHUNK_BYTES, layout.data_bytes)
            while start < stop:
                got = os.preadv(fd, [view[start:stop]], layout.data_offset + start)
                if got == 0:
                    raise OSError(f"{path}: unexpected end of file")
                start += got

        with ThreadPoolExecutor(max(1, threads)) as pool:
            for _ in pool.map(read_chunk, starts):
                pass
    finally:
        os.close(fd)


def views(layout: Layout, buffer: np.ndarray) -> dict[str, np.ndarray]:
    """Zero-copy numpy views of every tensor in a filled buffer."""
    out: dict[str, np.ndarray] = {}
    for name, info in layout.tensors.items():
        out[name] = buffer[info.begin : info.end].view(NUMPY_DTYPES[info.dtype]).reshape(info.shape)
    return out


def load_file(path: Path, *, threads: int = 4) -> dict[str, np.ndarray]:
    """Read a whole safetensors file into host memory as numpy arrays.

    Args:
        path: The file.
        threads: Concurrent readers.

    Returns:
        Tensor name -> array (views into one buffer; BF16 comes back as uint16 bits).
    """
    layout = read_layout(path)
    buffer = np.empty(layout.data_bytes, dtype=np.uint8)
    read_into(path, layout, buffer, threads=threads)
    return views(layout, buffer)
