"""The node cache's bound (model_cache_max_bytes): least recently used idle entries go, served and partial ones stay.

Real HTTP origins on 127.0.0.1, and real processes where a replica on the node holds an entry.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from infra_inference.runtime.server.loading.cache import ModelTooLargeForCache, fetch_model, open_model
from tests.runtime.server.support import ServerProcess, request, wait_until
from tests.support.origin import HoldingOrigin, Origin

_MIB = 2**20
# Three 1 MiB models do not fit under 2.5 MiB; two do (the lock files and manifests are ~100 bytes each).
_BOUND = 5 * _MIB // 2


@pytest.fixture
def holding() -> Iterator[HoldingOrigin]:
    server = HoldingOrigin()
    yield server
    server.close()


def _publish(origin: Origin, *names: str) -> list[str]:
    for i, name in enumerate(names):
        (origin.root / name).write_bytes(bytes([i]) * _MIB)
    return [f"{origin.url}/{name}" for name in names]


def _cached_bytes(cache: Path) -> int:
    return sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())


def _cached_names(cache: Path) -> set[str]:
    return {f.name for f in cache.rglob("*") if f.is_file() and not f.name.startswith(".")}


def test_cache_stays_under_its_bound_by_evicting_the_least_recently_used(origin: Origin, tmp_path: Path) -> None:
    a, b, c = _publish(origin, "a.bin", "b.bin", "c.bin")
    cache = tmp_path / "cache"
    fetch_model(a, cache, max_bytes=_BOUND)
    fetch_model(b, cache, max_bytes=_BOUND)
    fetch_model(a, cache, max_bytes=_BOUND)  # a hit: a is now the more recently used
    assert origin.gets == 2
    fetch_model(c, cache, max_bytes=_BOUND)
    assert _cached_names(cache) == {"a.bin", "c.bin"}  # b, the least recently used, went
    assert _cached_bytes(cache) <= _BOUND
    assert fetch_model(a, cache, max_bytes=_BOUND).read_bytes() == bytes([0]) * _MIB and origin.gets == 3
    assert fetch_model(b, cache, max_bytes=_BOUND).read_bytes() == bytes([1]) * _MIB and origin.gets == 4


_REPLICA = """
import sys
from pathlib import Path
from infra_inference.runtime.server.loading.cache import open_model
source = open_model(sys.argv[1], Path(sys.argv[2]), max_bytes=int(sys.argv[3]))
source.cached()
source.close()  # as the server does after loading: the reader goes, the pin stays
print("serving", flush=True)
sys.stdin.read()  # until the test closes stdin: the replica stops
"""


def test_an_entry_another_replica_process_serves_is_never_evicted(origin: Origin, tmp_path: Path) -> None:
    a, b, c = _publish(origin, "a.bin", "b.bin", "c.bin")
    cache = tmp_path / "cache"
    replica = subprocess.Popen([sys.executable, "-c", _REPLICA, a, str(cache), str(_BOUND)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert replica.stdout is not None and replica.stdout.readline() == "serving\n"
        fetch_model(b, cache, max_bytes=_BOUND)
        fetch_model(c, cache, max_bytes=_BOUND)
        assert _cached_names(cache) == {"a.bin", "c.bin"}  # a is the oldest, but served: b went instead
    finally:
        assert replica.stdin is not None
        replica.stdin.close()
        replica.wait(timeout=30)
    fetch_model(b, cache, max_bytes=_BOUND)  # the replica stopped: a is evictable again, and oldest
    assert _cached_names(cache) == {"b.bin", "c.bin"}


def test_a_partial_download_of_another_writer_is_never_evicted(origin: Origin, holding: HoldingOrigin,
                                                               tmp_path: Path) -> None:
    slow = holding
    slow.payload = b"s" * _MIB
    slow.hold_at = _MIB // 2
    cache = tmp_path / "cache"
    (a,) = _publish(origin, "a.bin")
    fetch_model(a, cache, max_bytes=2 * _BOUND)
    with open_model(slow.url, cache, max_bytes=2 * _BOUND) as downloading:
        assert downloading.weights is not None
        downloading.weights.wait_for(_MIB // 2)
        # Half of the slow model is on disk; a 4 MiB model needs every evictable byte of the 5 MiB bound.
        (origin.root / "big.bin").write_bytes(b"b" * 4 * _MIB)
        fetch_model(f"{origin.url}/big.bin", cache, max_bytes=2 * _BOUND)
        assert _cached_names(cache) == {"big.bin"}  # a went
        assert list(cache.rglob(".partial-*"))  # the writer's partial file did not
        slow.release.set()
        assert downloading.cached().read_bytes() == slow.payload


def test_a_model_larger_than_the_whole_bound_is_refused_naming_the_setting(origin: Origin, tmp_path: Path) -> None:
    (a,) = _publish(origin, "a.bin")
    with pytest.raises(ModelTooLargeForCache, match=r"model_cache_max_bytes=1000\); raise model_cache_max_bytes"):
        fetch_model(a, tmp_path / "cache", max_bytes=1000)
    assert _cached_bytes(tmp_path / "cache") == 0  # not a byte written before the refusal


def test_a_model_of_unknown_size_is_refused_once_its_bytes_pass_the_bound(holding: HoldingOrigin,
                                                                        tmp_path: Path) -> None:
    chunked = holding
    chunked.payload = b"c" * 4 * _MIB
    chunked.chunked = True  # no Content-Length: the bound is checked as the bytes land
    with pytest.raises(OSError, match="model_cache_max_bytes"):
        fetch_model(chunked.url, tmp_path / "cache", max_bytes=_MIB)
    assert _cached_bytes(tmp_path / "cache") == 0


_WARMER = """
import sys
from pathlib import Path
from infra_inference.runtime.server.loading.cache import fetch_model
sys.stdin.readline()  # start together
fetch_model(sys.argv[1], Path(sys.argv[2]), max_bytes=int(sys.argv[3]))
"""


def test_two_replicas_committing_at_once_keep_the_cache_under_its_bound(origin: Origin, tmp_path: Path) -> None:
    names = [f"m{i}.bin" for i in range(6)]
    uris = _publish(origin, *names)
    cache = tmp_path / "cache"
    for uri in uris[:2]:
        fetch_model(uri, cache, max_bytes=_BOUND)
    for round_ in range(2):  # two rounds: each pair of new models pushes both older entries out
        pair = uris[2 + 2 * round_: 4 + 2 * round_]
        procs = [subprocess.Popen([sys.executable, "-c", _WARMER, uri, str(cache), str(_BOUND)],
                                  stdin=subprocess.PIPE, text=True) for uri in pair]
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.close()
        assert [p.wait(timeout=60) for p in procs] == [0, 0]
        assert _cached_bytes(cache) <= _BOUND
        assert _cached_names(cache) == {names[2 + 2 * round_], names[3 + 2 * round_]}


def test_a_serving_replica_pins_its_model_until_it_exits(origin: Origin, tmp_path: Path) -> None:
    # `infra-inference serve` as a process: its model is the oldest entry, but it is served, so the
    # bound takes the other one; once the replica exits, its model is the one to go.
    weights = {"layers.0.weight": np.eye(512, dtype=np.float32), "layers.0.bias": np.zeros(512, dtype=np.float32)}
    save_file(weights, str(origin.root / "mlp.safetensors"))  # 1 MiB
    b, c = _publish(origin, "b.bin", "c.bin")
    cache = tmp_path / "cache"
    server = ServerProcess("--model", "safetensors-mlp", "--model-uri", f"{origin.url}/mlp.safetensors",
                           "--cache-dir", str(cache), "--model-cache-max-bytes", str(_BOUND))
    try:
        wait_until(lambda: request(server.port, "GET", "/readyz").status == 200)
        fetch_model(b, cache, max_bytes=_BOUND)
        fetch_model(c, cache, max_bytes=_BOUND)
        assert _cached_names(cache) == {"mlp.safetensors", "c.bin"}
        server.terminate()
        assert server.wait() == 0
    finally:
        server.kill()
    fetch_model(b, cache, max_bytes=_BOUND)
    assert _cached_names(cache) == {"b.bin", "c.bin"}


def test_a_replica_whose_model_is_larger_than_the_bound_fails_to_start_naming_the_setting(origin: Origin,
                                                                                         tmp_path: Path) -> None:
    (a,) = _publish(origin, "a.bin")
    serve = subprocess.run([sys.executable, "-c", "from infra_inference.cli import main; main()", "serve",
                            "--host", "127.0.0.1", "--port", "0", "--model", "safetensors-mlp", "--model-uri", a,
                            "--cache-dir", str(tmp_path / "cache"), "--model-cache-max-bytes", "1000"],
                           capture_output=True, text=True, timeout=60)
    assert serve.returncode != 0
    assert "model_cache_max_bytes=1000); raise model_cache_max_bytes" in serve.stderr
