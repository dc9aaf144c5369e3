"""Object URIs that may carry credentials: detect them in specs, redact them in logs and files.

A URI can carry a secret two ways: userinfo (`https://user:pass@host/m`) and
signed query parameters (an S3 presigned URL's `X-Amz-Signature`, a GCS
signed URL's `X-Goog-Signature`, an Azure SAS `sig`, a bare `token`). A spec
value lands in the pod spec, which anyone who may read Deployments reads, so
specs refuse such URIs and name the Secret field to use instead; at run time,
where a URI may still carry one (a local `serve --model-uri`), every log line,
error message and cache manifest gets the redacted form.
"""

from __future__ import annotations

from typing import Annotated
import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from pydantic import AfterValidator

REDACTED = "REDACTED"
_PIN = re.compile(r"sha256=[0-9a-fA-F]{64}")

# Query parameter names (compared lowercased) that carry a signature or a token.
SECRET_PARAMS = frozenset({
    "x-amz-signature", "x-amz-credential", "x-amz-security-token", "signature", "awsaccesskeyid",
    "x-goog-signature", "x-goog-credential", "googleaccessid",
    "sig",  # Azure SAS
    "token", "access_token", "api_key", "apikey", "key", "password", "secret",
})


def secret_parts(uri: str) -> list[str]:
    """What in `uri` is a credential: 'userinfo' and/or the names of secret query parameters."""
    parts = urlsplit(uri)
    found = ["userinfo"] if "@" in parts.netloc else []
    found += [k for k, _ in parse_qsl(parts.query, keep_blank_values=True) if k.lower() in SECRET_PARAMS]
    return found


def redact(uri: str) -> str:
    """`uri` fit for a log line: userinfo and secret query values replaced, the rest (host, path) kept.

    `https://u:p@h/m.bin?X-Amz-Signature=abc&v=2` -> `https://REDACTED@h/m.bin?X-Amz-Signature=REDACTED&v=2`.
    """
    parts = urlsplit(uri)
    if not secret_parts(uri):
        return uri
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = urlencode([(k, REDACTED if k.lower() in SECRET_PARAMS else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="")
    return parts._replace(netloc=netloc, query=query).geturl()


def _check(uri: str) -> str:
    found = secret_parts(uri)
    if found:
        raise ValueError(f"carries credentials ({', '.join(found)}), which would be written into the pod spec "
                         f"in clear; remove them and name a Secret holding them in credentials_secret")
    parts = urlsplit(uri)
    if parts.scheme not in ("", "file") and ".." in unquote(parts.path).split("/"):
        raise ValueError("'..' in a remote URI's path; name the object directly")
    if parts.fragment and not _PIN.fullmatch(parts.fragment):
        raise ValueError("the only fragment taken is a content pin, #sha256=<64 hex digits>")
    return uri


# A URI that a spec writes into a pod spec or a ConfigMap.
PlainUri = Annotated[str, AfterValidator(_check)]

# What the runtime's model sources read (runtime/server/loading/sources.py).
MODEL_SCHEMES = ("", "file", "http", "https", "s3", "gs")


def unreadable_scheme(uri: str) -> str | None:
    """Why our runtime could not fetch `uri` (a scheme it has no source for: `gcs://`, `hf://`), or None.

    Caught when planning, not when the replica starts and crash-loops on it."""
    scheme = urlsplit(uri).scheme
    if scheme in MODEL_SCHEMES:
        return None
    return f"our runtime reads no {scheme}:// URI; use a path, file://, http(s)://, s3:// or gs://"


def _readable(uri: str) -> str:
    problem = unreadable_scheme(uri)
    if problem:
        raise ValueError(problem)
    return uri


# A model URI that our runtime itself fetches (a StandbyPool's warm-up).
ModelUri = Annotated[str, AfterValidator(_check), AfterValidator(_readable)]
