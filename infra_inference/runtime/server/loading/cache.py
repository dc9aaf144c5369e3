"""The node-local model cache: fetch once per node, then every start is a local read.

Layout: ``<cache_dir>/<key>/<file name>`` plus ``.manifest.json``, where the
key is the pinned sha256 (`#sha256=` fragment) when there is one, so the same
bytes behind a rotating presigned URL are one entry, else the URI. The file
is downloaded to a temporary name in the same directory, hashed while it
streams, fsynced and renamed into place; the manifest (uri, size, sha256) is
written the same way, last. The download runs on a thread of its own
(`open_model`), so a loader reads the tensors from the temporary file as they
land (`FillingFile`) instead of waiting for the last byte; the model is ready
only once the whole file is verified, and the commit follows in the
background. So a manifest present means a complete, verified
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

The cache is bounded (`max_bytes`, the server's ``model_cache_max_bytes``):
before a download starts (its size known from the origin) and again before
it commits, the least recently used complete entries are evicted until every
file under the cache root, partial downloads included, fits. An entry is
evictable only when its ``.lock`` (held by a writer from the check to the
commit) and its ``.users`` (held shared by every replica on the node that
serves it, for the replica's life) can both be taken at once without
waiting; so neither another writer's partial file nor a served model is ever
removed. A model larger than the whole bound is refused with an error that
names the setting: its download would fill the disk past the bound before
any eviction could help. When the entries that cannot be evicted (served by
live replicas here) leave no room, the new entry is committed all the same
and a warning logged: the overshoot is only what this node's replicas serve,
and it goes at the next eviction once they stop. Evictions (and the commit that follows
them) run under one ``.evict.lock`` for the cache root, so two replicas
committing at once count each other's bytes.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

from infra_inference.runtime.server.loading.filling import FillingFile, reraise
from infra_inference.runtime.server.loading.sources import STALL_TIMEOUT_S, Credentials, open_remote
from infra_inference.specs.uris import redact

log = logging.getLogger(__name__)

_CHUNK_BYTES = 8 * 2**20
MANIFEST = ".manifest.json"
USERS = ".users"
_EVICT_LOCK = ".evict.lock"


def fetch_model(uri: str, cache_dir: Path, credentials: Credentials = Credentials(), *,
                max_bytes: int | None = None) -> Path:
    """Return a local path holding the model at ``uri``, downloading it on a cache miss.

    Args:
        uri: Local path, ``file://``, ``http(s)://``, ``s3://`` or ``gs://``. A
            ``#sha256=<hex>`` fragment pins the content: a download that does
            not match it is discarded.
        cache_dir: The node-local cache root.
        credentials: The source's credentials, when not the default chain.
        max_bytes: The cache root's bound (see the module docstring); None: unbounded.

    Returns:
        The local file, complete and (with a pin) verified.

    Raises:
        FileNotFoundError: A local path that does not exist.
        ValueError: Checksum mismatch, or an unsupported scheme.
        OSError: The download failed (nothing is cached then).
    """
    with open_model(uri, cache_dir, credentials, max_bytes=max_bytes) as model:
        return model.cached()


class ModelSource:
    """A model's weights on this node: complete already (a local path, a cache hit) or downloading.

    While it downloads, `weights` is the file as it fills, for a loader that
    reads tensors as they land; `path` is where the complete file will be.
    A cache entry stays pinned (never evicted) until `unpin`: a server keeps
    it pinned while it serves the model, so a restart on this node reads it
    from disk.

    Attributes:
        path: The complete file: exists now, or once `cached` returns.
        weights: The bytes as they land, while downloading; None when complete from the start.
    """

    def __init__(self, path: Path, download: _Download | None = None, use: IO[str] | None = None) -> None:
        self.path = path
        self._download = download
        self._use = use
        self.weights = download.file if download is not None else None

    @property
    def fetch_s(self) -> float | None:
        """Seconds from the request to the origin until every byte landed and was verified; None on a hit."""
        return self._download.fetch_s if self._download is not None else None

    def cached(self) -> Path:
        """Block until the file is complete, verified and committed to the cache; return its path.

        Raises:
            OSError, ValueError: What the download failed with (nothing is cached then).
        """
        if self._download is not None:
            self._download.wait_committed()
        return self.path

    def close(self) -> None:
        """Release the reader; an unfinished download stops and leaves nothing in the cache."""
        if self._download is not None:
            self._download.cancel()
            self._download.file.close()

    def unpin(self) -> None:
        """Let the cache entry be evicted again (a process that exits unpins too: the kernel drops its locks)."""
        if self._use is not None:
            self._use.close()
            self._use = None

    def __enter__(self) -> ModelSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if self._download is not None:
            self._download.wait_committed_quietly()  # the entry counts as used until its commit
        self.unpin()


def open_model(uri: str, cache_dir: Path, credentials: Credentials = Credentials(), *,
               stall_timeout_s: float = STALL_TIMEOUT_S, max_bytes: int | None = None) -> ModelSource:
    """The model at ``uri`` on this node: a hit or a local path at once, else a download started in the background.

    The download writes the cache entry's temporary file and commits it (fsync,
    rename, manifest) only once every byte is there and verified, holding the
    entry's lock until then: another replica on the node waits for that commit
    and then reads a complete entry, never the partial file.

    Args:
        uri: As for `fetch_model`.
        cache_dir: The node-local cache root.
        credentials: The source's credentials, when not the default chain.
        stall_timeout_s: An http(s) origin that sends nothing for this long fails the download.
        max_bytes: The cache root's bound (see the module docstring); None: unbounded.

    Raises:
        ModelTooLargeForCache: The model is larger than ``max_bytes``.
        FileNotFoundError, ValueError, OSError: As for `fetch_model`, for what is known before the body
            (the object is missing, the origin refuses); errors in the body come from `cached` and
            from the `weights`' waits.
    """
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        path = Path(unquote(parts.path) if parts.scheme else uri)
        if not path.exists():
            raise FileNotFoundError(f"model path {path} does not exist")
        return ModelSource(path)
    source = parts._replace(fragment="").geturl()
    expected = _pin(parts.fragment, source)
    name = _file_name(parts.path, source)
    entry = cache_dir / hashlib.sha256(f"{expected or source}/{name}".encode()).hexdigest()[:32]
    target = entry / name
    entry.mkdir(parents=True, exist_ok=True)
    lock: IO[str] | None = _lock(entry / ".lock")
    use: IO[str] | None = None
    try:
        # Taken under the entry's lock, which an evictor holds too: an entry is never evicted between
        # this check and its first user's pin.
        use = _lock(entry / USERS, fcntl.LOCK_SH)
        # Under the lock no one else writes here: any partial file is a crashed fetch's.
        for leftover in entry.glob(".partial-*"):
            leftover.unlink(missing_ok=True)
        if _is_cached(entry, target, expected):
            log.info("model cache hit for %s: %s", redact(source), target)
            _mark_used(entry)
            model, use = ModelSource(target, use=use), None
            return model
        download = _Download(source, entry, target, expected, credentials, stall_timeout_s, lock, max_bytes)
        lock = None  # the download's thread releases it after the commit
        model, use = ModelSource(target, download, use), None
        return model
    finally:
        if lock is not None:
            _unlock(lock)
        if use is not None:
            use.close()


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


class ModelTooLargeForCache(OSError):
    """The model alone is larger than the node cache's whole bound."""


def _lock(path: Path, mode: int = fcntl.LOCK_EX) -> IO[str]:
    """A lock on ``path`` (exclusive by default) until `_unlock`, by any thread: flock belongs to the open file."""
    handle = open(path, "a")  # noqa: SIM115 (released by _unlock, possibly on another thread)
    try:
        fcntl.flock(handle, mode)
    except BaseException:
        handle.close()
        raise
    return handle


def _unlock(handle: IO[str]) -> None:
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


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


class _Download:
    """One cache miss: the origin's body into the entry's temporary file on a thread of its own.

    Readers follow it through `file`; the bytes are verified (size, pin) before
    `file` finishes, so a loader never makes ready on bytes that a check
    would reject. The commit (fsync, rename, manifest) runs after that, behind
    the loader: fsyncing 1 GB can take seconds on a network disk, and nothing
    the model reads depends on it.
    """

    def __init__(self, source: str, entry: Path, target: Path, expected: str | None, credentials: Credentials,
                 stall_timeout_s: float, lock: IO[str], max_bytes: int | None) -> None:
        self._source, self._entry, self._target, self._expected = source, entry, target, expected
        self._lock = lock
        self._max_bytes = max_bytes
        self._cancelled = threading.Event()
        self._committed = threading.Event()
        self._error: BaseException | None = None
        self.fetch_s: float | None = None
        started = time.perf_counter()
        self._stream, self._size = open_remote(source, credentials, timeout_s=stall_timeout_s)
        self._partial = ""
        try:
            if max_bytes is not None and self._size is not None:
                self._refuse_beyond(self._size)
                with _locked(entry.parent / _EVICT_LOCK):
                    _make_room(entry.parent, self._size, max_bytes)
            fd, self._partial = tempfile.mkstemp(dir=entry, prefix=".partial-")
            self._out = os.fdopen(fd, "wb")
            self.file = FillingFile(Path(self._partial), self._size, redact(source))
        except BaseException:
            self._stream.close()
            if self._partial:
                Path(self._partial).unlink(missing_ok=True)
            raise
        # A daemon: a process exiting mid-download leaves only a .partial-* file, which the next
        # fetch of the entry removes; it must not hold the exit for a stalled origin.
        threading.Thread(target=self._run, name=f"fetch {target.name}", daemon=True, args=(started,)).start()

    def cancel(self) -> None:
        self._cancelled.set()

    def wait_committed_quietly(self) -> None:
        """Wait for the commit (or its failure: the caller has seen that through `file` or `cached`)."""
        self._committed.wait()

    def wait_committed(self) -> None:
        self._committed.wait()
        if self._error is not None:
            reraise(self._error)

    def _run(self, started: float) -> None:
        try:
            try:
                digest = self._receive()
            except BaseException as exc:
                self._error = exc
                self.file.fail(exc)
                return
            self.fetch_s = time.perf_counter() - started
            self.file.finish()
            try:
                self._commit(digest)
            except OSError as exc:  # the model is loaded by now; only the cache entry is lost
                log.error("model cache: could not commit %s (%s); the next start downloads it again",
                          self._target, exc)
                self._error = exc
        finally:
            Path(self._partial).unlink(missing_ok=True)  # gone already when the rename happened
            _unlock(self._lock)
            self._committed.set()

    def _receive(self) -> str:
        """The whole body into the temporary file; its sha256, once size and pin are checked."""
        label = redact(self._source)
        digest = hashlib.sha256()
        with self._stream, self._out:
            try:
                written = _copy(self._stream, self._out, digest, self._size, self._target.name, self._landed)
            except Exception as exc:  # the origin's socket, http.client, botocore alike
                raise OSError(f"{label}: the download stopped after {self.file.landed_bytes} of "
                              f"{self._size if self._size is not None else 'unknown'} bytes: "
                              f"{exc or type(exc).__name__}") from exc
        if self._size is not None and written != self._size:
            raise OSError(f"{label}: got {written} bytes, expected {self._size} (the origin closed early)")
        if self._expected is not None and digest.hexdigest() != self._expected:
            raise ValueError(f"{label}: sha256 {digest.hexdigest()} does not match the pinned {self._expected}")
        return digest.hexdigest()

    def _landed(self, written: int) -> None:
        if self._cancelled.is_set():
            raise OSError("cancelled: the loader stopped")
        if self._max_bytes is not None and self._size is None:
            self._refuse_beyond(written)  # no Content-Length: the bound is checked as the bytes land
        self.file.landed(written)

    def _refuse_beyond(self, size: int) -> None:
        assert self._max_bytes is not None
        if size > self._max_bytes:
            raise ModelTooLargeForCache(
                f"{redact(self._source)}: the model is at least {size} bytes, more than the node's whole model "
                f"cache (model_cache_max_bytes={self._max_bytes}); raise model_cache_max_bytes (the spec's "
                f"runtime.model_cache_max_bytes) above the model's size, on a node disk that holds it")

    def _commit(self, digest: str) -> None:
        with open(self._partial, "rb") as written:
            os.fsync(written.fileno())
        if self._max_bytes is None:
            self._publish(digest)
            return
        with _locked(self._entry.parent / _EVICT_LOCK):
            # The partial file is under the root already, so nothing more is needed than fitting.
            if not _make_room(self._entry.parent, 0, self._max_bytes):
                # Committed all the same: a loader that waits for the commit needs the file, and the
                # excess is only entries that live replicas here serve (each under the bound); the
                # next eviction takes them once those replicas stop.
                log.warning("model cache: the entries in use on this node keep it above model_cache_max_bytes="
                            "%d after committing %s", self._max_bytes, self._target)
            self._publish(digest)

    def _publish(self, digest: str) -> None:
        os.replace(self._partial, self._target)
        # The manifest is a file on the node's disk: the URI's credentials stay out of it.
        _write_atomically(self._entry / MANIFEST,
                          {"uri": redact(self._source), "size": self.file.landed_bytes, "sha256": digest})
        _mark_used(self._entry)


def _copy(stream: IO[bytes], out: IO[bytes], digest: "hashlib._Hash", size: int | None, label: str,
          landed: Callable[[int], None]) -> int:
    if not sys.stderr.isatty():
        return _pump(stream, out, digest, landed, lambda n: None)
    # Interactive: show progress, since a multi-GB fetch otherwise looks like a hang.
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), transient=True
    ) as progress:
        task = progress.add_task(f"fetch {label}", total=size)
        return _pump(stream, out, digest, landed, lambda n: progress.advance(task, n))


def _pump(stream: IO[bytes], out: IO[bytes], digest: "hashlib._Hash", landed: Callable[[int], None],
          advance: Callable[[int], None]) -> int:
    # An http body is read as it arrives (read1: one receive, up to the chunk), so what the origin
    # has sent is on disk for the loader even when the origin then stalls; read() would wait to
    # fill 8 MiB. s3 and gs bodies have no dependable read1.
    read = stream.read1 if isinstance(stream, http.client.HTTPResponse) else stream.read
    written = 0
    while chunk := read(_CHUNK_BYTES):
        out.write(chunk)
        out.flush()  # into the kernel, where the loader's positional reads see it
        digest.update(chunk)
        written += len(chunk)
        landed(written)
        advance(len(chunk))
    return written


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path`` for a ``with`` block."""
    handle = _lock(path)
    try:
        yield
    finally:
        _unlock(handle)


def _make_room(root: Path, incoming_bytes: int, max_bytes: int) -> bool:
    """Evict least recently used idle complete entries until the root's files plus ``incoming_bytes`` fit.

    The caller holds the root's eviction lock (`_EVICT_LOCK`).

    Returns whether they fit. Every file counts, partial downloads included: they are on the disk
    too. E.g. a 100 GiB bound holding 70 + 20 GiB with 30 GiB incoming: the older of the two goes
    (or both, when the older is the 20), if no replica serves it.
    """
    entries = [p for p in root.iterdir() if p.is_dir()]
    sizes = {entry: _bytes_under(entry) for entry in entries}
    used = sum(sizes.values()) + incoming_bytes
    for entry in sorted(entries, key=_last_use_ns):
        if used <= max_bytes:
            break
        if _evict(entry):
            log.info("model cache: evicted %s (%d bytes) to stay under %d bytes", entry, sizes[entry], max_bytes)
            used -= sizes[entry]
    return used <= max_bytes


def _bytes_under(entry: Path) -> int:
    total = 0
    for f in entry.iterdir():
        try:
            total += f.stat().st_size
        except FileNotFoundError:  # a partial file renamed or removed meanwhile
            pass
    return total


def _mark_used(entry: Path) -> None:
    """The manifest's mtime is the entry's last use, for eviction: set from the clock in ns, since the
    kernel stamps files at its tick (~4 ms), and a hit that soon after a commit would tie with it."""
    now = time.time_ns()
    os.utime(entry / MANIFEST, ns=(now, now))


def _last_use_ns(entry: Path) -> float:
    try:
        return (entry / MANIFEST).stat().st_mtime_ns
    except FileNotFoundError:
        return float("inf")  # incomplete: never a candidate, whatever its age (see _evict)


def _evict(entry: Path) -> bool:
    """Remove a complete entry's files if no writer holds it and no replica serves it; whether it did."""
    handles = []
    try:
        for name in (".lock", USERS):
            try:
                handles.append(_lock(entry / name, fcntl.LOCK_EX | fcntl.LOCK_NB))
            except BlockingIOError:
                return False
        if not (entry / MANIFEST).exists():
            return False  # a crashed fetch's leftovers: its next fetch removes them
        # The manifest first: an entry without one is a miss, never a truncated hit.
        (entry / MANIFEST).unlink()
        for f in entry.iterdir():
            if f.name not in (".lock", USERS):  # the lock files stay: a waiter may hold them open
                f.unlink(missing_ok=True)
        return True
    finally:
        for handle in handles:
            _unlock(handle)


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
