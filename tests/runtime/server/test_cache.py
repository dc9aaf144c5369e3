"""The node-local cache against a real HTTP server on 127.0.0.1 that counts reads."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from infra_inference.runtime.server.loading.cache import fetch_model
from infra_inference.runtime.server.loading.sources import Credentials
from tests.runtime.server.support import post, scrape, server_in_thread
from tests.support.origin import Origin


def _publish(origin: Origin, name: str, payload: bytes) -> str:
    (origin.root / name).write_bytes(payload)
    return f"{origin.url}/{name}"


def test_second_fetch_of_the_same_uri_reads_nothing_remote(origin: Origin, tmp_path: Path) -> None:
    payload = np.random.default_rng(1).bytes(3 * 2**20)
    uri = _publish(origin, "weights.bin", payload)
    first = fetch_model(uri, tmp_path / "cache")
    assert first.read_bytes() == payload and origin.gets == 1
    second = fetch_model(uri, tmp_path / "cache")
    assert second == first and origin.gets == 1


def test_pinned_checksum_mismatch_caches_nothing(origin: Origin, tmp_path: Path) -> None:
    uri = _publish(origin, "weights.bin", b"actual bytes")
    with pytest.raises(ValueError, match="does not match"):
        fetch_model(f"{uri}#sha256={'0' * 64}", tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.name not in (".lock", ".users")]
    good = hashlib.sha256(b"actual bytes").hexdigest()
    assert fetch_model(f"{uri}#sha256={good}", tmp_path / "cache").read_bytes() == b"actual bytes"
    assert origin.gets == 2


def test_truncated_cache_entry_is_fetched_again(origin: Origin, tmp_path: Path) -> None:
    uri = _publish(origin, "weights.bin", b"x" * 1000)
    cached = fetch_model(uri, tmp_path / "cache")
    cached.write_bytes(b"x" * 10)  # e.g. a disk-full copy by some other tool
    assert fetch_model(uri, tmp_path / "cache").read_bytes() == b"x" * 1000
    assert origin.gets == 2


def test_missing_remote_object_raises_and_caches_nothing(origin: Origin, tmp_path: Path) -> None:
    with pytest.raises(OSError):
        fetch_model(f"{origin.url}/absent.bin", tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob(".manifest.json"))


def test_local_paths_are_used_in_place(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"local")
    assert fetch_model(str(path), tmp_path / "cache") == path
    assert fetch_model(path.as_uri(), tmp_path / "cache") == path
    with pytest.raises(FileNotFoundError):
        fetch_model(str(tmp_path / "absent"), tmp_path / "cache")


def test_server_restart_serves_from_cache_without_remote_reads(origin: Origin, tmp_path: Path) -> None:
    weights = {"layers.0.weight": np.eye(2, dtype=np.float32), "layers.0.bias": np.ones(2, dtype=np.float32)}
    save_file(weights, str(origin.root / "mlp.safetensors"))
    settings = {"model": "safetensors-mlp", "model_uri": f"{origin.url}/mlp.safetensors", "cache_dir": tmp_path / "c"}
    for expected_gets in (1, 1):
        with server_in_thread(**settings) as (port, _):
            reply = post(port, "/v1/models/safetensors-mlp:predict", {"instances": [[1.0, 2.0]]})
            assert reply.json() == {"predictions": [[2.0, 3.0]]}
            phases = scrape(port)
            assert {"fetch", "read", "to_device", "total"} <= {
                k.split('"')[1] for k in phases if k.startswith("infra_inference_model_load_seconds{")
            }
        assert origin.gets == expected_gets


def test_credentials_directory_supplies_the_authorization_header(origin: Origin, tmp_path: Path) -> None:
    uri = _publish(origin, "weights.bin", b"private")
    origin.authorization = "Bearer s3cr3t"
    with pytest.raises(OSError, match="401"):
        fetch_model(uri, tmp_path / "cache")
    creds = tmp_path / "creds"  # as Kubernetes mounts the model's credentials Secret: one file per key
    creds.mkdir()
    (creds / "authorization").write_text("Bearer s3cr3t\n")
    assert fetch_model(uri, tmp_path / "cache", Credentials(creds)).read_bytes() == b"private"


def test_uri_credentials_never_reach_the_manifest_logs_or_errors(origin: Origin, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    uri = _publish(origin, "weights.bin", b"w").replace("http://", "http://alice:hunter2@")
    signed = f"{uri}?X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature=f00dfeed&v=2"
    fetch_model(signed, tmp_path / "cache")
    fetch_model(signed, tmp_path / "cache")  # a hit: logged too
    assert origin.paths[0].endswith("X-Amz-Signature=f00dfeed&v=2")  # the origin got the real URL
    with pytest.raises(OSError) as err:
        fetch_model(signed.replace("weights.bin", "absent.bin"), tmp_path / "cache")
    written = "".join(p.read_text() for p in (tmp_path / "cache").rglob(".manifest.json"))
    seen = written + caplog.text + str(err.value)
    assert "127.0.0.1" in written and "v=2" in written  # still says where the model came from
    for secret in ("hunter2", "alice", "AKIAEXAMPLE", "f00dfeed"):
        assert secret not in seen


def _entry_of(cache: Path) -> Path:
    [manifest] = cache.rglob(".manifest.json")
    return manifest.parent


def test_pinned_hit_is_hashed_again_so_rewritten_weights_and_manifest_do_not_pass(origin: Origin,
                                                                                  tmp_path: Path) -> None:
    payload = b"the real weights" * 1000
    pin = hashlib.sha256(payload).hexdigest()
    uri = f"{_publish(origin, 'weights.bin', payload)}#sha256={pin.upper()}"  # pins compare in any case
    cache = tmp_path / "cache"
    target = fetch_model(uri, cache)
    # Whoever can write the cache swaps the file and makes the manifest claim the pinned hash (issue 15, item 8).
    entry = _entry_of(cache)
    evil = b"backdoored weights"
    target.write_bytes(evil)
    manifest = json.loads((entry / ".manifest.json").read_text())
    (entry / ".manifest.json").write_text(json.dumps({**manifest, "size": len(evil), "sha256": pin}))
    assert fetch_model(uri, cache).read_bytes() == payload
    assert origin.gets == 2  # detected, fetched again from the origin
    assert fetch_model(uri, cache).read_bytes() == payload and origin.gets == 2  # and a clean hit after


def test_same_pinned_bytes_behind_another_url_are_one_entry(origin: Origin, tmp_path: Path) -> None:
    payload = b"w" * 4096
    pin = hashlib.sha256(payload).hexdigest()
    uri = _publish(origin, "weights.bin", payload)
    first = fetch_model(f"{uri}?X-Amz-Signature=one#sha256={pin}", tmp_path / "cache")
    second = fetch_model(f"{uri}?X-Amz-Signature=two#sha256={pin}", tmp_path / "cache")  # a rotated presigned URL
    assert first == second and origin.gets == 1


def test_partial_files_of_a_crashed_fetch_are_removed(origin: Origin, tmp_path: Path) -> None:
    uri = _publish(origin, "weights.bin", b"w" * 100)
    cache = tmp_path / "cache"
    fetch_model(uri, cache)
    entry = _entry_of(cache)
    (entry / ".partial-abc123").write_bytes(b"x" * 50)  # what a kill -9 mid-download leaves
    fetch_model(uri, cache)
    assert not list(entry.glob(".partial-*"))


@pytest.mark.parametrize("fragment", ["sha256=abc", "md5=" + "0" * 32, "sha256=" + "g" * 64])
def test_malformed_pin_is_refused_before_any_fetch(origin: Origin, tmp_path: Path, fragment: str) -> None:
    uri = _publish(origin, "weights.bin", b"w")
    with pytest.raises(ValueError, match="sha256=<64 hex digits>"):
        fetch_model(f"{uri}#{fragment}", tmp_path / "cache")
    assert origin.gets == 0


@pytest.mark.parametrize("path", ["/a/../../etc/passwd", "/m/%2e%2e", "/.manifest.json", "/.lock"])
def test_object_names_that_leave_or_collide_with_the_entry_are_refused(origin: Origin, tmp_path: Path,
                                                                       path: str) -> None:
    (tmp_path / "cache").mkdir()
    with pytest.raises(ValueError):
        fetch_model(f"{origin.url}{path}", tmp_path / "cache")
    assert origin.gets == 0 and not list((tmp_path / "cache").iterdir())


def test_s3_model_is_fetched_with_the_credentials_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("moto.server", reason="needs the test extra (moto[server])")
    from tests.support.objectstore import s3_server

    with s3_server() as s3:
        s3.client().create_bucket(Bucket="models")
        s3.client().put_object(Bucket="models", Key="chat/weights.bin", Body=b"s3 weights")
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        creds = tmp_path / "creds"
        creds.mkdir()
        (creds / "aws_access_key_id").write_text(s3.access_key_id)
        (creds / "aws_secret_access_key").write_text(s3.secret_access_key)
        pin = hashlib.sha256(b"s3 weights").hexdigest()
        path = fetch_model(f"s3://models/chat/weights.bin#sha256={pin}", tmp_path / "cache", Credentials(creds))
        assert path.read_bytes() == b"s3 weights"
        with pytest.raises(FileNotFoundError):
            fetch_model("s3://models/chat/absent.bin", tmp_path / "cache", Credentials(creds))
