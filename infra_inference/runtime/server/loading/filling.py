"""A file that fills while readers read it: one writer thread announces how far the bytes have landed.

A download writes the model to its cache entry's temporary file and calls
`landed` after each write; a loader reads the same file with positional reads
through `fd`, calling `wait_for(end)` first, so it starts on the first tensor
while the last one is still on the wire. The bytes cross memory once on the
way to the loader's buffer: written into the page cache by the download, read
from it by the loader (the kernel may evict them under pressure, they are
never held twice in process memory).

The reader's descriptor is opened before the writer can rename the file, so a
rename into the cache entry does not disturb it. A complete local file is
the same object with everything landed (`FillingFile.complete`), so the
reader has one code path.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType


class EndedEarly(OSError):
    """The file is complete, and shorter than a reader needs."""


class FillingFile:
    """The bytes of a file as they land, for readers on other threads.

    Args:
        path: The file being written (it must exist).
        size_bytes: Its final size when the source said, else None.
        label: How errors name the file (a redacted URI, or the path).
    """

    def __init__(self, path: Path, size_bytes: int | None, label: str) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.size_bytes = size_bytes
        self.label = label
        self._landed = 0
        self._finished = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()

    @classmethod
    def complete(cls, path: Path) -> FillingFile:
        """An existing local file, all of it landed."""
        size = path.stat().st_size
        done = cls(path, size, str(path))
        done.landed(size)
        done.finish()
        return done

    @property
    def finished(self) -> bool:
        """Every byte has landed and was verified: no wait blocks any more."""
        return self._finished

    @property
    def landed_bytes(self) -> int:
        """How many bytes from the start are readable now."""
        return self._landed

    def landed(self, total_bytes: int) -> None:
        """Writer: bytes ``[0, total_bytes)`` are written (to the kernel, not a user-space buffer)."""
        with self._changed:
            self._landed = total_bytes
            self._changed.notify_all()

    def finish(self) -> None:
        """Writer: every byte has landed and was verified (size, and the pin when there is one)."""
        with self._changed:
            self._finished = True
            self._changed.notify_all()

    def fail(self, error: BaseException) -> None:
        """Writer: the bytes will not all land; every wait raises ``error``'s message (which names the source)."""
        with self._changed:
            self._error = error
            self._changed.notify_all()

    def wait_for(self, end: int) -> None:
        """Block until bytes ``[0, end)`` can be read at ``fd``.

        Raises:
            EndedEarly: The file is complete and shorter than ``end``.
            OSError: The download failed.
            ValueError: The download failed verification (a pinned sha256 that does not match).
        """
        with self._changed:
            self._changed.wait_for(lambda: self._error is not None or self._landed >= end or self._finished)
            self._raise_if_failed()
            if self._landed < end:
                raise EndedEarly(f"{self.label}: the file ends at byte {self._landed}, before byte {end} "
                              f"that its header points to (truncated?)")

    def wait_finished(self) -> None:
        """Block until every byte has landed and was verified; raise what the writer failed with."""
        with self._changed:
            self._changed.wait_for(lambda: self._error is not None or self._finished)
            self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            reraise(self._error)

    def close(self) -> None:
        """Close the reader's descriptor (the writer's file is its own)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> FillingFile:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


def reraise(error: BaseException) -> None:
    """Raise a writer thread's failure in a waiting thread: a fresh exception per waiter (several
    wait at once), ValueError for bad data and OSError for the rest; the writer's message already
    names the source."""
    kind = ValueError if isinstance(error, ValueError) else OSError
    raise kind(str(error)) from error
