"""Assemble an OCI image archive from gzipped layer tars; no registry, no engine.

    python3 tools/image/oci.py OUT_ARCHIVE --ref REF --config CONFIG.json LAYER.tar.gz:DIFF_ID ...

CONFIG.json holds the image's runtime config (the `config` object of the OCI
image config: Entrypoint, Cmd, User, Env, WorkingDir, ExposedPorts, Volumes,
Labels). Each layer is the gzipped tar and the sha256 of its uncompressed
form (the diff id the image config lists). The archive is a tar of an OCI
image layout with one manifest whose index entry names REF both ways
readers look for it (`org.opencontainers.image.ref.name`, read by `podman
load`, and `io.containerd.image.name`, read by `ctr images import`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class _Layout:
    """An OCI image layout directory being filled with content-addressed blobs."""

    def __init__(self, root: Path) -> None:
        self.blobs = root / "blobs" / "sha256"
        self.blobs.mkdir(parents=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def add_json(self, media_type: str, obj: Any) -> dict[str, Any]:
        data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(data).hexdigest()
        (self.blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    def add_file(self, media_type: str, path: Path) -> dict[str, Any]:
        digest = _sha256(path)
        shutil.copyfile(path, self.blobs / digest)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": path.stat().st_size}


def write_image(out: Path, ref: str, runtime_config: dict[str, Any], layers: list[tuple[Path, str]]) -> str:
    """Write the archive; return the manifest digest (what ``image@sha256:...`` pins)."""
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        layout = _Layout(Path(tmp))
        config = {
            "architecture": "amd64",
            "os": "linux",
            # A fixed creation time: equal inputs give an equal config digest.
            "created": "1970-01-01T00:00:00Z",
            "config": runtime_config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id in layers]},
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": layout.add_json(OCI_CONFIG, config),
            "layers": [layout.add_file(OCI_LAYER_GZIP, path) for path, _ in layers],
        }
        descriptor = layout.add_json(OCI_MANIFEST, manifest)
        tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else "latest"
        descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag, "io.containerd.image.name": ref}
        descriptor["platform"] = {"architecture": "amd64", "os": "linux"}
        (Path(tmp) / "index.json").write_text(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [descriptor]}))
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            for name in ("oci-layout", "index.json", "blobs"):
                tar.add(Path(tmp) / name, arcname=name)
        partial.rename(out)
    return descriptor["digest"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--ref", required=True, help="the image reference the archive names, e.g. localhost/infra-inference/runtime:0.1.0")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("layers", nargs="+", help="LAYER.tar.gz:sha256:<diff id>")
    args = parser.parse_args()
    layers = [(Path(spec.split(":", 1)[0]), spec.split(":", 1)[1]) for spec in args.layers]
    print(write_image(args.out, args.ref, json.loads(args.config.read_text()), layers))


if __name__ == "__main__":
    main()
