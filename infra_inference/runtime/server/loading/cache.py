"""The node-local model cache: fetch once per node, then every start is a local read.

Layout: ``<cache_dir>/<key>/<file name>`` plus ``.manifest.json``, where the
key is the pinned sha256 (`#sha256=` fragment) when there is one, so the same
bytes behind a rotating presigned URL are one entry, else the URI. The file
is downloaded to a temporary name in the same directory, hashed while it
streams, fsynced and renamed into place; the manifest (uri, size, sha256) is
written the same way, last. So a manifest present means a complete, verified
file, and a crash at any point leaves at most a stray ``.partial-*`` file,
never a truncated model; the next fetch of the entry removes those. An
exclusive lock per entry makes concurrent replicas on one node download once.

A hit with a pin is hashed again before it is used (a 5 GB file at ~1.5 GB/s
is ~3.5 s, against ~40 s to fetch it at 1 Gbps): the manifest only says what
was written, and whoever can write the cache directory can rewrite both. The
rendered pods mount one cache directory per namespace (render/common.py), so
only a tenant's own pods can write its entries; the pin is what a tenant's
own mistakes cannot get past either.

Local paths and ``file://`` URIs are returned as they are: they are already
node-local, and copying would only double the read.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from infra_inference.runtime.server.loading.sources import Credentials, open_remote
from infra_inference.specs.uris import redact

log = logging.getLogger(__name__)

_CHUNK_BYTES = 8 * 2**20
MANIFEST = ".manifest.json"


def fetch_model(uri: str, cache_dir: Path, credentials: Credentials = Credentials()) -> Path:
    """Return a local path holding the model at ``uri``, downloading it on a cache miss.

    Args:
        uri: Local path, ``file://``, ``http(s)://``, ``s3://`` or ``gs://``. A
            ``#sha256=<hex>`` fragment pins the content: a download that does
            not match it is discarded.
        cache_dir: The node-local cache root.
        credentials: The source's credentials, when not the default chain.

    Returns:
        The local file.

    Raises:
        FileNotFoundError: A local path that does not exist.
        ValueError: Checksum mismatch, or an unsupported scheme.
        OSError: The download failed (nothing is cached then).
    """
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        path = Path(unquote(parts.path) if parts.scheme else uri)
        if not path.exists():
            raise FileNotFoundError(f"model path {path} does not exist")
        return path
    source = parts._replace(fragment="").geturl()
    expected = _pin(parts.fragment, source)
    name = _file_name(parts.path, source)
    entry = cache_dir / hashlib.sha256(f"{expected or source}/{name}".encode()).hexdigest()[:32]
    target = entry / name
    entry.mkdir(parents=True, exist_ok=True)
    with _locked(entry / ".lock"):
        # Under the lock no one else writes here: any partial file is a crashed fetch's.
        for leftover in entry.glob(".partial-*"):
            leftover.unlink(missing_ok=True)
        if _is_cached(entry, target, expected):
            log.info("model cache hit for %s: %s", redact(source), target)
            return target
        _download(source, entry, target, expected, credentials)
    return target


def _pin(fragment: str, source: str) -> str | None:
    """The `#sha256=<hex>` pin, lowercased (hex digests are written in either case), or None."""
    if not fragment:
        return None
    pin = fragment.removeprefix("sha256=").lower()
    if not fragment.startswith("sha256=") or len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
        raise ValueError(f"{redact(source)}: the fragment must be #sha256=<64 hex digits>, not #{fragment[:80]}")
    return pin


def _file_name(path: str, source: str) -> str:
    """The cached file's name: the object's last path segment, never a way out of its entry."""
    segments = unquote(path).split("/")
    if ".." in segments or "\\" in path:
        raise ValueError(f"{redact(source)}: '..' in a model URI's path; name the object directly")
    name = segments[-1] or "model"
    if name.startswith("."):  # the entry's own files (.lock, .manifest.json, .partial-*) start with a dot
        raise ValueError(f"{redact(source)}: the object's name {name!r} starts with '.'; rename it")
    return name


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_cached(entry: Path, target: Path, expected: str | None) -> bool:
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        size = target.stat().st_size
    except (OSError, ValueError):
        return False
    if size != manifest.get("size"):
        return False
    if expected is None:
        return True
    actual = _sha256_of(target)
    if actual != expected:
        log.warning("model cache entry %s does not hash to its pin (%s, pinned %s): fetching again",
                    target, actual, expected)
    return actual == expected


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _download(source: str, entry: Path, target: Path, expected: str | None, credentials: Credentials) -> None:
    stream, size = open_remote(source, credentials)
    digest = hashlib.sha256()
    fd, partial = tempfile.mkstemp(dir=entry, prefix=".partial-")
    try:
        with stream, os.fdopen(fd, "wb") as out:
            written = _copy(stream, out, digest, size, label=target.name)
            out.flush()
            os.fsync(out.fileno())
        if size is not None and written != size:
            raise OSError(f"{redact(source)}: got {written} bytes, expected {size}")
        if expected is not None and digest.hexdigest() != expected:
            raise ValueError(f"{redact(source)}: sha256 {digest.hexdigest()} does not match the pinned {expected}")
        os.replace(partial, target)
        # The manifest is a file on the node's disk: the URI's credentials stay out of it.
        _write_atomically(entry / MANIFEST,
                          {"uri": redact(source), "size": written, "sha256": digest.hexdigest()})
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def _copy(stream: IO[bytes], out: IO[bytes], digest: "hashlib._Hash", size: int | None, label: str) -> int:
    if not sys.stderr.isatty():
        return _pump(stream, out, digest, lambda n: None)
    # Interactive: show progress, since a multi-GB fetch otherwise looks like a hang.
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True
    ) as progress:
        task = progress.add_task(f"fetch {label}", total=size)
        return _pump(stream, out, digest, lambda n: progress.advance(task, n))


def _pump(stream: IO[bytes], out: IO[bytes], digest: "hashlib._Hash", advance: Callable[[int], None]) -> int:
    written = 0
    while chunk := stream.read(_CHUNK_BYTES):
        digest.update(chunk)
        out.write(chunk)
        written += len(chunk)
        advance(len(chunk))
    return written


def _write_atomically(path: Path, doc: dict[str, object]) -> None:
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=".partial-")
    with os.fdopen(fd, "w") as out:
        json.dump(doc, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)
    # The rename is durable only once the directory entry is.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
