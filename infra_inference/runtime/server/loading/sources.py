"""Objects behind URIs: model sources and batch input read as streams, prefixes listed, batch output written.

http(s) uses the standard library; ``s3://`` and ``gs://`` need the optional
extras (``infra-inference[s3]``, ``infra-inference[gcs]``). Credentials come
from a directory of files (the model's credentials Secret, mounted read-only:
see `Credentials`), else each cloud's default chain (IRSA / workload identity
in a cluster, ``AWS_*`` variables locally; ``AWS_ENDPOINT_URL`` points s3:// at
any S3-compatible store). Errors name the URI only in its redacted form.
"""

from __future__ import annotations

import base64
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import SplitResult, unquote, urlsplit

from infra_inference.specs.uris import redact, unreadable_scheme

# Seconds an origin may send nothing (connect, or between reads) before the fetch fails: the default of
# the server's model_stall_timeout_s.
STALL_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Credentials:
    """What a credentials directory holds, one file per key (as Kubernetes mounts a Secret).

    `authorization`: the HTTP Authorization header value for http(s)
    (``Bearer ...``); `aws_access_key_id`, `aws_secret_access_key` and
    optionally `aws_session_token` for s3; `gcs_service_account.json` for gs.
    """

    directory: Path | None = None

    def read(self, key: str) -> str | None:
        if self.directory is None:
            return None
        try:
            return (self.directory / key).read_text().strip()
        except FileNotFoundError:
            return None

    def s3_client(self) -> Any:
        try:
            import boto3
        except ImportError:
            raise ValueError("s3:// needs the s3 extra (pip install 'infra-inference[s3]')") from None
        key_id, secret = self.read("aws_access_key_id"), self.read("aws_secret_access_key")
        if key_id and secret:
            return boto3.client("s3", aws_access_key_id=key_id, aws_secret_access_key=secret,
                                aws_session_token=self.read("aws_session_token"))
        return boto3.client("s3")

    def gcs_client(self) -> Any:
        try:
            from google.cloud import storage
        except ImportError:
            raise ValueError("gs:// needs the gcs extra (pip install 'infra-inference[gcs]')") from None
        key_file = self.directory / "gcs_service_account.json" if self.directory else None
        if key_file is not None and key_file.exists():
            return storage.Client.from_service_account_json(str(key_file))
        return storage.Client()


def _http_request(parts: SplitResult, credentials: Credentials, **kw: Any) -> urllib.request.Request:
    """The request with its Authorization header: the credentials' `authorization`, else the URI's userinfo
    as Basic auth (urllib does not take userinfo in the URL; curl and browsers send it this way)."""
    request = urllib.request.Request(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl(), **kw)
    authorization = credentials.read("authorization")
    if authorization is None and "@" in parts.netloc:
        userinfo = unquote(parts.netloc.rsplit("@", 1)[0]).encode()
        authorization = f"Basic {base64.b64encode(userinfo).decode()}"
    if authorization:
        request.add_header("Authorization", authorization)
    return request


def open_remote(uri: str, credentials: Credentials = Credentials(),
                timeout_s: float = STALL_TIMEOUT_S) -> tuple[IO[bytes], int | None]:
    """Open a remote object for streaming.

    Args:
        uri: ``http(s)://host/path``, ``s3://bucket/key`` or ``gs://bucket/key``.
        credentials: Where the source's credentials are, if not the default chain.
        timeout_s: http(s): the longest wait for the connection, or for any read of the body
            (an origin that stalls mid-body fails after this long); s3 and gs use their client's.

    Returns:
        The byte stream and its size in bytes when the source says.

    Raises:
        ValueError: Unsupported scheme, or the scheme's extra is not installed.
        OSError: The source could not be read.
    """
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        try:
            response = urllib.request.urlopen(_http_request(parts, credentials), timeout=timeout_s)  # noqa: S310
        except OSError as exc:
            raise OSError(f"{redact(uri)}: {exc}") from None
        length = response.headers.get("Content-Length")
        return response, int(length) if length else None
    if parts.scheme == "s3":
        client = credentials.s3_client()
        try:
            obj = client.get_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))
        except client.exceptions.NoSuchKey:
            raise FileNotFoundError(redact(uri)) from None
        except Exception as exc:  # botocore's ClientError and its connection errors
            raise OSError(f"{redact(uri)}: {exc}") from None
        return obj["Body"], int(obj["ContentLength"])
    if parts.scheme == "gs":
        blob = credentials.gcs_client().bucket(parts.netloc).get_blob(parts.path.lstrip("/"))
        if blob is None:
            raise FileNotFoundError(redact(uri))
        return blob.open("rb"), blob.size
    raise ValueError(f"{redact(uri)}: {unreadable_scheme(uri)}")


def _local(parts: SplitResult, uri: str) -> Path | None:
    if parts.scheme not in ("", "file"):
        return None
    return Path(unquote(parts.path) if parts.scheme else uri)


def read_object(uri: str, credentials: Credentials = Credentials()) -> bytes:
    """The whole object at `uri`: a local path, file://, or anything `open_remote` opens."""
    path = _local(urlsplit(uri), uri)
    if path is not None:
        return path.read_bytes()
    stream, _ = open_remote(uri, credentials)
    with stream:
        return stream.read()


def list_prefix(prefix: str, credentials: Credentials = Credentials()) -> list[str]:
    """Every object under `prefix` (a directory, s3:// or gs:// prefix), as URIs in name order.

    Names starting with '.' or '_' (markers such as `_SUCCESS`, temporary files) are skipped.
    """
    parts = urlsplit(prefix)
    path = _local(parts, prefix)
    visible = lambda name: not name.rsplit("/", 1)[-1].startswith((".", "_"))  # noqa: E731
    if path is not None:
        return [str(p) for p in sorted(path.iterdir()) if p.is_file() and visible(p.name)]
    key = parts.path.lstrip("/")
    if parts.scheme == "s3":
        client = credentials.s3_client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=parts.netloc, Prefix=key)
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    elif parts.scheme == "gs":
        keys = [b.name for b in credentials.gcs_client().list_blobs(parts.netloc, prefix=key)]
    else:
        raise ValueError(f"{redact(prefix)}: a {parts.scheme or 'local'} prefix cannot be listed; give one object, "
                         f"or a directory, s3:// or gs:// prefix ending in '/'")
    return [f"{parts.scheme}://{parts.netloc}/{k}" for k in sorted(keys) if not k.endswith("/") and visible(k)]


def write_object(uri: str, data: bytes, credentials: Credentials = Credentials()) -> None:
    """Put `data` at `uri` whole: a local file (renamed into place), s3://, gs:// or an http(s) PUT."""
    parts = urlsplit(uri)
    path = _local(parts, uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
        return
    key = parts.path.lstrip("/")
    try:
        if parts.scheme == "s3":
            credentials.s3_client().put_object(Bucket=parts.netloc, Key=key, Body=data)
        elif parts.scheme == "gs":
            credentials.gcs_client().bucket(parts.netloc).blob(key).upload_from_string(data)
        elif parts.scheme in ("http", "https"):
            request = _http_request(parts, credentials, data=data, method="PUT")
            urllib.request.urlopen(request, timeout=STALL_TIMEOUT_S).close()  # noqa: S310 (scheme checked above)
        else:
            raise ValueError(f"{redact(uri)}: unsupported scheme {parts.scheme!r}")
    except ValueError:
        raise
    except Exception as exc:  # botocore, google-api-core and urllib errors alike
        raise OSError(f"{redact(uri)}: {exc}") from None
