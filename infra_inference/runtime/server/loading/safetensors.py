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

The same reader takes a file that is still downloading (`FillingFile`): the
header is parsed once its bytes land, each chunk is read once it has landed,
and `iter_tensors` hands over each tensor when its chunks are in. From an
origin at 200 MB/s a 64 MiB chunk lands every ~0.34 s and is read in ~10 ms,
so the load finishes one chunk read after the download does.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from infra_inference.runtime.server.loading.filling import EndedEarly, FillingFile

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


def read_layout(source: Path | FillingFile) -> Layout:
    """Parse the header of a safetensors file; of a file still filling, as soon as the header has landed.

    Raises:
        ValueError: The file is not a well-formed safetensors file.
        OSError: A filling file's download failed before the header landed.
    """
    with _opened(source) as file:
        label = file.label
        try:
            file.wait_for(8)
            (header_bytes,) = struct.unpack("<Q", os.pread(file.fd, 8, 0))
            if header_bytes > _MAX_HEADER_BYTES:
                raise ValueError(f"{label}: header of {header_bytes} bytes is implausibly large")
            file.wait_for(8 + header_bytes)
        except EndedEarly:
            raise ValueError(f"{label}: too short for a safetensors file") from None
        header = orjson.loads(os.pread(file.fd, header_bytes, 8))  # JSONDecodeError is a ValueError
        size = file.size_bytes
    if not isinstance(header, dict):
        raise ValueError(f"{label}: header is not a JSON object")
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
            raise ValueError(f"{label}: tensor {name!r} has a malformed entry {entry!r}") from None
        if end - begin != expected_bytes or begin < 0:
            raise ValueError(f"{label}: tensor {name!r} has offsets inconsistent with its shape")
        tensors[name] = info
    # A download of unknown size (no Content-Length) ends where the last tensor does; if it ends
    # earlier, the reader's wait for that tensor says so.
    data_bytes = size - data_offset if size is not None else max((t.end for t in tensors.values()), default=0)
    if any(info.end > data_bytes for info in tensors.values()):
        raise ValueError(f"{label}: tensor data runs past the end of the file")
    return Layout(tensors, data_offset, data_bytes)


def read_into(source: Path | FillingFile, layout: Layout, buffer: np.ndarray, *, threads: int = 4) -> None:
    """Fill ``buffer`` (uint8, ``layout.data_bytes`` long) with the data section, reading concurrently."""
    for _ in iter_tensors(source, layout, buffer, threads=threads):
        pass


def iter_tensors(source: Path | FillingFile, layout: Layout, buffer: np.ndarray, *,
                 threads: int = 4) -> Iterator[tuple[str, np.ndarray]]:
    """Read the data section into ``buffer`` concurrently, yielding each tensor as soon as its bytes are in.

    Tensors come in file order, each a zero-copy view into ``buffer``. From a
    filling file each chunk is read once it has landed, so a caller that
    moves each tensor on (to a GPU) does so while the rest downloads.

    Raises:
        ValueError: ``buffer`` is too small.
        OSError: The file ended early, or a filling file's download failed.
    """
    if buffer.nbytes < layout.data_bytes:
        raise ValueError(f"buffer of {buffer.nbytes} bytes is smaller than the data ({layout.data_bytes})")
    view = memoryview(buffer.reshape(-1))  # type: ignore[arg-type]
    starts = range(0, layout.data_bytes, _CHUNK_BYTES)
    with _opened(source) as file:

        def read_chunk(start: int) -> None:
            stop = min(start + _CHUNK_BYTES, layout.data_bytes)
            file.wait_for(layout.data_offset + stop)
            while start < stop:
                got = os.preadv(file.fd, [view[start:stop]], layout.data_offset + start)
                if got == 0:
                    raise OSError(f"{file.label}: unexpected end of file")
                start += got

        pool = ThreadPoolExecutor(max(1, threads))
        try:
            # Chunks are submitted in file order and every thread waits for the earliest
            # chunk not yet taken, so the reads follow the download's front.
            chunks = [pool.submit(read_chunk, start) for start in starts]
            for name, info in sorted(layout.tensors.items(), key=lambda item: item[1].end):
                if info.end > info.begin:
                    for chunk in chunks[info.begin // _CHUNK_BYTES : (info.end - 1) // _CHUNK_BYTES + 1]:
                        chunk.result()
                yield name, _view(buffer, info)
            for chunk in chunks:  # bytes past the last tensor, if any
                chunk.result()
        finally:
            # On an error (or a caller that stops early) the reads still queued are dropped. One
            # waiting for bytes that have not landed is left behind rather than waited for: it
            # returns when its download ends, which closing the model's source makes happen.
            pool.shutdown(wait=file.finished, cancel_futures=True)


def _view(buffer: np.ndarray, info: TensorInfo) -> np.ndarray:
    return buffer[info.begin : info.end].view(NUMPY_DTYPES[info.dtype]).reshape(info.shape)


@contextmanager
def _opened(source: Path | FillingFile) -> Iterator[FillingFile]:
    """A filling file as it is (its owner closes it), or a local path opened for the call."""
    if isinstance(source, FillingFile):
        yield source
        return
    with FillingFile.complete(source) as file:
        yield file


def views(layout: Layout, buffer: np.ndarray) -> dict[str, np.ndarray]:
    """Zero-copy numpy views of every tensor in a filled buffer."""
    return {name: _view(buffer, info) for name, info in layout.tensors.items()}


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
