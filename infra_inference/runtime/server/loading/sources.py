"""Remote model sources: one object per URI, opened as a byte stream with its size.

http(s) uses the standard library; ``s3://`` and ``gs://`` need the optional
extras (``infra-inference[s3]``, ``infra-inference[gcs]``) and use each
cloud's default credentials (IRSA / workload identity in a cluster).
"""

from __future__ import annotations

import urllib.request
from typing import IO
from urllib.parse import urlsplit

_TIMEOUT_S = 60.0


def open_remote(uri: str) -> tuple[IO[bytes], int | None]:
    """Open a remote object for streaming.

    Args:
        uri: ``http(s)://host/path``, ``s3://bucket/key`` or ``gs://bucket/key``.

    Returns:
        The byte stream and its size in bytes when the source says.

    Raises:
        ValueError: Unsupported scheme, or the scheme's extra is not installed.
        OSError: The source could not be read.
    """
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        response = urllib.request.urlopen(uri, timeout=_TIMEOUT_S)  # noqa: S310 (scheme checked above)
        length = response.headers.get("Content-Length")
        return response, int(length) if length else None
    if parts.scheme == "s3":
        try:
            import boto3
        except ImportError:
            raise ValueError(f"{uri}: s3:// needs the s3 extra (pip install 'infra-inference[s3]')") from None
        obj = boto3.client("s3").get_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))
        return obj["Body"], int(obj["ContentLength"])
    if parts.scheme == "gs":
        try:
            from google.cloud import storage
        except ImportError:
            raise ValueError(f"{uri}: gs:// needs the gcs extra (pip install 'infra-inference[gcs]')") from None
        blob = storage.Client().bucket(parts.netloc).get_blob(parts.path.lstrip("/"))
        if blob is None:
            raise FileNotFoundError(uri)
        return blob.open("rb"), blob.size
    raise ValueError(f"{uri}: unsupported scheme {parts.scheme!r}; use a path, file://, http(s)://, s3:// or gs://")
