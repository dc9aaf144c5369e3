"""The control plane's certificates, made with ``openssl``, and the admin kubeconfig that uses them."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.support.controlplane.binaries import BinariesUnavailable, ControlPlaneError

_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed: {done.stderr.strip()}")


def make_pki(d: Path, apiserver_ip: str = "127.0.0.1") -> None:
    """A CA, the apiserver's serving cert (also for ``apiserver_ip``), an admin client cert, SA signing keys."""
    if shutil.which("openssl") is None:
        raise BinariesUnavailable("'openssl' is not on PATH (needed for the control plane's certificates)")
    _openssl("req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
             "-subj", "/CN=infra-inference-test-ca", cwd=d)  # fmt: skip
    leaves = {
        "apiserver": ("/CN=kube-apiserver",
                      f"subjectAltName=IP:127.0.0.1,IP:{apiserver_ip},DNS:localhost,DNS:kubernetes,"
                      "DNS:kubernetes.default,IP:10.96.0.1\n"
                      "extendedKeyUsage=serverAuth\n"),
        "admin": ("/O=system:masters/CN=infra-inference-admin", "extendedKeyUsage=clientAuth\n"),
    }  # fmt: skip
    for name, (subject, ext) in leaves.items():
        issue_cert(d, name, subject, ext)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


def issue_cert(d: Path, name: str, subject: str, ext: str) -> None:
    """``<name>.key`` and ``<name>.crt`` in ``d`` for ``subject``, signed by ``d``'s CA (``ext``: x509v3 lines)."""
    (d / f"{name}.ext").write_text(ext)
    _openssl("req", *_EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.crt", "-days", "365", "-extfile", f"{name}.ext", cwd=d)  # fmt: skip


def admin_kubeconfig(server: str, pki: Path) -> dict[str, Any]:
    """A kubeconfig for ``server`` as the admin of ``make_pki`` (group system:masters), certificates inline."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority-data": _b64(pki / "ca.crt")}}],
        "users": [{"name": "admin", "user": {"client-certificate-data": _b64(pki / "admin.crt"), "client-key-data": _b64(pki / "admin.key")}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
        "current-context": "local",
    }


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()
