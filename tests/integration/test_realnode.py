"""The rendered stack as real containers: our image on a kubelet node of the local control plane.

The quickstart's service on CPU (no GPU here): replicas start from the image
tools/image/build.sh made (imported into the node's containerd, pinned by
digest, imagePullPolicy Never), under the rendered securityContext, and turn
Ready through their probes; the gateway finds them through EndpointSlices
with real pod IPs; requests through the gateway's Service are answered.
Replicas survive deletion and the gateway a rollout under load; the autoscaler
pod scales from zero; a model fetched from an HTTP origin by the first replica
is read from the node cache by the second.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from safetensors.numpy import save_file
from tests.integration.cluster_helpers import wait_until
from tests.support.controlplane.realnode import POD_SUBNET, RealNode, node_ip, pod_summary, unavailable_reason

from tests.support.controlplane import BinariesUnavailable, ControlPlane, find_binaries
from tests.support.origin import Origin
from infra_inference.render import render_stack
from infra_inference.render.common import MODEL_CACHE_HOST_PATH

pytestmark = pytest.mark.controlplane

REPO = Path(__file__).resolve().parents[2]
IMAGE_BUILD = REPO / "tools" / "image" / "build.sh"
START_S = 240.0  # a guard against hanging on a loaded 2-core machine, never an assertion about speed


@pytest.fixture(scope="module")
def runtime_image() -> dict[str, str]:
    """The image archive of this source tree, its reference and digest (built on first use, then cached)."""
    if os.geteuid() != 0:
        pytest.skip("building the image needs root (debootstrap, chroot); run tools/image/build.sh as root")
    if shutil.which("debootstrap") is None:
        pytest.skip("building the image needs debootstrap; run tools/realnode/setup.sh")
    done = subprocess.run([str(IMAGE_BUILD)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"tools/image/build.sh failed:\n{done.stderr[-3000:]}")
    archive = Path(done.stdout.strip().splitlines()[-1])
    return {"archive": str(archive), "ref": (archive.parent / "ref").read_text().strip(),
            "digest": (archive.parent / "digest").read_text().strip()}


@pytest.fixture(scope="module")
def node(runtime_image: dict[str, str]) -> Iterator[RealNode]:
    try:
        bin_dir = find_binaries(build=os.environ.get("INFRA_INFERENCE_CONTROLPLANE_BUILD", "1") != "0")
    except BinariesUnavailable as e:
        pytest.skip(f"Kubernetes binaries unavailable: {e}")
    reason = unavailable_reason(bin_dir)
    if reason:
        pytest.skip(f"no real node on this machine: {reason}")
    cp = ControlPlane(bin_dir, advertise_address=node_ip())
    try:
        cp.start()
        n = RealNode(cp, bin_dir)
        n.start()
        try:
            n.import_image(Path(runtime_image["archive"]))
            yield n
        finally:
            n.stop()
    finally:
        cp.stop()


def _quickstart_on_cpu(image: dict[str, str], replicas: int | None = None,
                       autoscale: dict[str, Any] | None = None, **service: Any) -> list[dict[str, Any]]:
    """examples/quickstart/spec.yaml with the service on CPU (the echo model, unless `service` says
    otherwise) and the image just built: `replicas` fixed, or the quickstart's autoscale policy updated
    by `autoscale`."""
    doc = yaml.safe_load((REPO / "examples" / "quickstart" / "spec.yaml").read_text())
    registry, _, name = image["ref"].partition("/")
    doc["platform"]["runtime_image"] = {"registry": registry, "image": name, "digest": image["digest"],
                                        "image_pull_policy": "Never"}
    chat = doc["services"]["chat"]
    for key in ("pool", "gpu_fraction"):
        chat.pop(key)
    chat.update(model={"uri": "echo", "format": "python", "name": "chat"}, cpu="250m", memory="256Mi")
    chat.update(service)
    if replicas is not None:
        del chat["autoscale"]
        chat["replicas"] = replicas
    else:
        chat["autoscale"].update(autoscale or {})
    return [o for o in render_stack({"platform": doc["platform"], "services": doc["services"]})]


@contextlib.contextmanager
def _applied(cp: ControlPlane, objs: list[dict[str, Any]]) -> Iterator[None]:
    """The objects applied, then deleted with their pods gone (the node has 2 CPUs for every test's pods)."""
    for obj in sorted(objs, key=lambda o: o["kind"] != "Namespace"):
        cp.apply(obj)
    try:
        yield
    finally:
        for obj in objs:
            if obj["kind"] not in ("Namespace", "PriorityClass"):
                cp.delete(obj)
        ns = "inference"
        wait_until(lambda: not _pods(cp, ns, "infra-inference.dev/service=chat"),
                   "the test's pods gone", START_S, lambda: "")


def _pods(cp: ControlPlane, ns: str, selector: str) -> list[dict[str, Any]]:
    return cp.request("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")["items"]


def _describer(cp: ControlPlane, ns: str, *more: str) -> Callable[[], str]:
    """For failure messages: one line per pod of the service (and of the `more` selectors)."""
    selectors = ("infra-inference.dev/service=chat", *more)
    return lambda: "\n".join(pod_summary(p) for sel in selectors for p in _pods(cp, ns, sel))


def _ready_count(cp: ControlPlane, ns: str, deployment: str) -> int:
    d = cp.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{deployment}", allow=(404,))
    return int(d.get("status", {}).get("readyReplicas") or 0)


def _ready_slice_ips(cp: ControlPlane, ns: str, service: str) -> set[str]:
    slices = cp.request("GET", f"/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices"
                               f"?labelSelector=kubernetes.io/service-name={service}")["items"]
    return {a for s in slices for e in s.get("endpoints") or [] if e["conditions"].get("ready") for a in e["addresses"]}


def _post(host: str, port: int, path: str, body: Any) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(host, port, timeout=120)  # a wake from zero starts a container first
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def _get(host: str, port: int, path: str) -> str:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def _host_pid(node: RealNode, container_id: str) -> int:
    """The host PID of a container's init process, from containerd."""
    out = subprocess.run(["ctr", "--address", str(node.socket), "-n", "k8s.io", "tasks", "ls"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    for line in out.splitlines()[1:]:
        task, pid, status = line.split()
        if task == container_id.removeprefix("containerd://"):
            return int(pid)
    raise AssertionError(f"no task {container_id} in\n{out}")


def test_quickstart_replicas_run_our_image_hardened_and_answer_through_the_gateway(
        node: RealNode, runtime_image: dict[str, str]) -> None:
    cp = node.cp
    with _applied(cp, _quickstart_on_cpu(runtime_image, replicas=2)):
        _check_quickstart(node, runtime_image)


def _check_quickstart(node: RealNode, runtime_image: dict[str, str]) -> None:
    cp, ns = node.cp, "inference"
    pods = _describer(cp, ns)
    events = lambda: pods() + "\n" + node.log_tail("kubelet", 15)  # noqa: E731
    wait_until(lambda: _ready_count(cp, ns, "chat") == 2, "2 ready replicas (readiness probe /readyz)", START_S, events)
    wait_until(lambda: _ready_count(cp, ns, "chat-gateway") >= 1, "a ready gateway", START_S, events)

    replicas = _pods(cp, ns, "app.kubernetes.io/name=chat")
    assert len(replicas) == 2
    for pod in replicas:
        # The image we built, pinned by digest; on the real node, at a bridge address.
        status = pod["status"]["containerStatuses"][0]
        assert status["imageID"].endswith(runtime_image["digest"]), status
        assert pod["spec"]["nodeName"] == node.name and pod["status"]["podIP"].startswith(POD_SUBNET.rsplit(".", 2)[0])
        # The kernel's view of the server process: UID 10001, no capabilities, read-only root.
        pid = _host_pid(node, status["containerID"])
        proc = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)
        assert proc["Uid"].split()[:2] == ["10001", "10001"], proc["Uid"]
        assert int(proc["CapEff"], 16) == 0 and int(proc["CapPrm"], 16) == 0
        root = next(line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines() if line.split()[4] == "/")
        assert "ro" in root[5].split(","), root

    # The gateway learns the replicas from their EndpointSlices: the same pod IPs (the
    # EndpointSlice controller follows the pods' readiness a moment after the Deployment does).
    pod_ips = {p["status"]["podIP"] for p in replicas}
    wait_until(lambda: _ready_slice_ips(cp, ns, "chat-replicas") == pod_ips,
               f"EndpointSlices with {pod_ips}", 30, lambda: str(_ready_slice_ips(cp, ns, "chat-replicas")))

    # Requests through the gateway's Service (ClusterIP, via kube-proxy) are answered by both replicas.
    svc = cp.request("GET", f"/api/v1/namespaces/{ns}/services/chat-gateway")
    ip, port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["port"]
    path = "/v1/models/chat:predict"
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda i: _post(ip, port, path, {"instances": [[i, i + 1]]}), range(200)))
    assert [code for code, _ in answers] == [200] * 200, answers[:3]
    assert [body["predictions"] for _, body in answers] == [[[i, i + 1]] for i in range(200)]
    served = {p["status"]["podIP"]: _get(p["status"]["podIP"], 8080, "/metrics") for p in replicas}
    for pod_ip, metrics in served.items():
        ok = [ln for ln in metrics.splitlines() if ln.startswith("infra_inference_requests_total") and 'code="200"' in ln]
        assert ok and float(ok[0].split()[-1]) > 0, f"replica {pod_ip} served nothing:\n{metrics[:1500]}"


class _Load:
    """Requests through one address from a few threads until stopped; every answer's status kept."""

    def __init__(self, host: str, port: int, threads: int = 4) -> None:
        self.host, self.port, self.codes, self._stop = host, port, [], False
        self._pool = ThreadPoolExecutor(threads)
        self._futures = [self._pool.submit(self._run, t) for t in range(threads)]

    def _run(self, t: int) -> None:
        i = 0
        while not self._stop:
            try:
                code, body = _post(self.host, self.port, "/v1/models/chat:predict", {"instances": [[t, i]]})
                ok = code == 200 and body["predictions"] == [[t, i]]
                self.codes.append(code if ok else -code)
            except OSError as e:  # a refused or reset connection is a lost request too
                self.codes.append(f"{type(e).__name__}: {e}")
            i += 1

    def stop(self) -> list[Any]:
        self._stop = True
        for f in self._futures:
            f.result()
        self._pool.shutdown()
        return self.codes


def _assert_none_lost(codes: list[Any]) -> None:
    lost = [c for c in codes if c != 200]
    print(f"{len(codes)} requests under load, {len(lost)} lost")
    assert len(codes) > 100 and lost == [], f"{len(lost)} of {len(codes)} requests failed: {lost[:5]}"


def test_deleting_a_replica_under_load_loses_no_request(node: RealNode, runtime_image: dict[str, str]) -> None:
    with _applied(node.cp, _quickstart_on_cpu(runtime_image, replicas=2)):
        _check_drain(node)


def _check_drain(node: RealNode) -> None:
    cp, ns = node.cp, "inference"
    describe = _describer(cp, ns)
    wait_until(lambda: _ready_count(cp, ns, "chat") == 2 and _ready_count(cp, ns, "chat-gateway") >= 1,
               "2 ready replicas and a gateway", START_S, describe)
    svc = cp.request("GET", f"/api/v1/namespaces/{ns}/services/chat-gateway")
    load = _Load(svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["port"])
    try:
        time.sleep(2)
        victim = _pods(cp, ns, "app.kubernetes.io/name=chat")[0]["metadata"]["name"]
        # preStop sleeps while readiness turns false and the EndpointSlice drops the pod;
        # then SIGTERM drains what the replica accepted.
        cp.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{victim}")
        wait_until(lambda: victim not in {p["metadata"]["name"] for p in _pods(cp, ns, "app.kubernetes.io/name=chat")},
                   f"{victim} gone", START_S, describe)
        wait_until(lambda: _ready_count(cp, ns, "chat") == 2, "the replacement replica ready", START_S, describe)
        time.sleep(2)
    finally:
        codes = load.stop()
    _assert_none_lost(codes)


def test_scale_from_zero_in_cluster_answers_every_request_and_returns_to_zero(
        node: RealNode, runtime_image: dict[str, str]) -> None:
    """The autoscaler pod (its own ServiceAccount token, the rendered Role) wakes the Deployment for a burst."""
    cp, ns = node.cp, "inference"
    policy = {"min_replicas": 0, "max_replicas": 2, "scale_to_zero_after_s": 10, "scale_down_window_s": 5}
    with _applied(cp, _quickstart_on_cpu(runtime_image, autoscale=policy)):
        describe = _describer(cp, ns, "app.kubernetes.io/name=chat-autoscaler")
        wait_until(lambda: _ready_count(cp, ns, "chat-gateway") >= 1 and _ready_count(cp, ns, "chat-autoscaler") == 1,
                   "a ready gateway and the autoscaler", START_S, describe)
        # Replicas are left to the autoscaler (Kubernetes starts one); idle, it scales them to zero.
        wait_until(lambda: _deployment_replicas(cp, ns, "chat") == 0 and not _pods(cp, ns, "app.kubernetes.io/name=chat"),
                   "the idle service at 0 replicas", 120, describe)
        svc = cp.request("GET", f"/api/v1/namespaces/{ns}/services/chat-gateway")
        ip, port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["port"]
        start = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: (_post(ip, port, "/v1/models/chat:predict", {"instances": [[i]]}),
                                               time.monotonic() - start), range(24)))
        codes = [a[0][0] for a in answers]
        assert codes == [200] * 24, f"{codes}\n{describe()}"
        first_s = min(t for _, t in answers)
        print(f"scale from zero on the real node: first answer after {first_s:.1f}s, all 24 after "
              f"{max(t for _, t in answers):.1f}s")
        # Idle again: back to zero after the grace period (10 s) and the window.
        wait_until(lambda: _deployment_replicas(cp, ns, "chat") == 0, "chat back to 0 replicas", 120, describe)


def _deployment_replicas(cp: ControlPlane, ns: str, name: str) -> int:
    return int(cp.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/{name}")["spec"].get("replicas") or 0)


def test_gateway_rollout_under_load_loses_no_request(node: RealNode, runtime_image: dict[str, str]) -> None:
    cp, ns = node.cp, "inference"
    with _applied(cp, _quickstart_on_cpu(runtime_image, replicas=2)):
        describe = _describer(cp, ns)
        wait_until(lambda: _ready_count(cp, ns, "chat") == 2 and _ready_count(cp, ns, "chat-gateway") == 2,
                   "2 ready replicas and 2 gateways", START_S, describe)
        old = {p["metadata"]["name"] for p in _pods(cp, ns, "app.kubernetes.io/name=chat-gateway")}
        svc = cp.request("GET", f"/api/v1/namespaces/{ns}/services/chat-gateway")
        load = _Load(svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["port"])
        try:
            time.sleep(2)
            # A new template (what `pulumi up` of a new image does): a rolling update, one surge pod at a time.
            patch = {"spec": {"template": {"metadata": {"annotations": {"infra-inference.test/rollout": "1"}}}}}
            cp.request("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/chat-gateway", patch,
                       content_type="application/strategic-merge-patch+json")
            gateways = lambda: {p["metadata"]["name"] for p in _pods(cp, ns, "app.kubernetes.io/name=chat-gateway")}  # noqa: E731
            wait_until(lambda: not old & gateways() and _ready_count(cp, ns, "chat-gateway") == 2,
                       "the gateway rolled over", START_S, describe)
            time.sleep(2)
        finally:
            codes = load.stop()
    _assert_none_lost(codes)


MLP_SIDE = 2048  # 2048 x 2048 FP32: 16 MiB a layer
MLP_LAYERS = 16  # 256 MiB of weights, as benchmarks/cold_start.py: a fetch that shows beside a container start


def _mlp(path: Path) -> int:
    """A safetensors MLP for `safetensors-mlp`; returns its size in bytes."""
    rng = np.random.default_rng(0)
    tensors: dict[str, np.ndarray] = {}
    for i in range(MLP_LAYERS):
        tensors[f"layers.{i}.weight"] = rng.standard_normal((MLP_SIDE, MLP_SIDE), dtype=np.float32) / MLP_SIDE
        tensors[f"layers.{i}.bias"] = np.zeros(MLP_SIDE, dtype=np.float32)
    save_file(tensors, str(path))
    return path.stat().st_size


@contextlib.contextmanager
def _node_cache_restored(namespace: str) -> Iterator[Path]:
    """This machine's node cache directory of `namespace` (the replicas' hostPath), put back as it was after
    the test: the entries its replicas wrote removed, the owner the cache-owner init container changed
    restored, the directories the kubelet created for it removed."""
    ns_dir = Path(MODEL_CACHE_HOST_PATH) / namespace
    created = [d for d in (ns_dir, *ns_dir.parents) if not d.exists()]  # deepest first
    before = set(ns_dir.iterdir()) if ns_dir.exists() else set()
    owner = (ns_dir.stat().st_uid, ns_dir.stat().st_gid) if ns_dir.exists() else None
    try:
        yield ns_dir
    finally:
        if ns_dir.exists():
            for entry in set(ns_dir.iterdir()) - before:
                shutil.rmtree(entry, ignore_errors=True)
            if owner is not None:
                os.chown(ns_dir, *owner)
        for d in created:
            with contextlib.suppress(OSError):
                d.rmdir()


def _start(cp: ControlPlane, pod: dict[str, Any]) -> dict[str, float]:
    """A replica's start: pod created -> Ready (the API's timestamps, whole seconds), and the server's
    own load phases (fetch, read, total) from its /metrics."""
    ready = next(c["lastTransitionTime"] for c in pod["status"]["conditions"] if c["type"] == "Ready")
    stamp = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()  # noqa: E731
    out = {"ready_s": stamp(ready) - stamp(pod["metadata"]["creationTimestamp"])}
    for line in _get(pod["status"]["podIP"], 8080, "/metrics").splitlines():
        if line.startswith("infra_inference_model_load_seconds{"):
            out[line.split('"')[1]] = float(line.split()[-1])
    return out


def test_a_second_replica_loads_the_model_from_the_node_cache_the_first_filled(
        node: RealNode, runtime_image: dict[str, str], tmp_path: Path) -> None:
    """A safetensors model from an HTTP origin on this machine (at the node's IP, which pods reach): the
    first replica's server fetches it into the node cache (the namespace's hostPath, handed to UID 10001
    by the cache-owner init container); the second replica on the node reads it from there."""
    cp, ns = node.cp, "inference"
    (tmp_path / "origin").mkdir()
    size = _mlp(tmp_path / "origin" / "mlp.safetensors")
    origin = Origin(tmp_path / "origin", host=node.ip)
    model = {"uri": f"{origin.url}/mlp.safetensors", "format": "safetensors", "name": "chat"}
    objs = _quickstart_on_cpu(runtime_image, replicas=1, model=model, cpu="400m", memory="1Gi")
    try:
        with _node_cache_restored(ns) as cache, _applied(cp, objs):
            describe = _describer(cp, ns)
            replicas = lambda: _pods(cp, ns, "app.kubernetes.io/name=chat")  # noqa: E731
            wait_until(lambda: _ready_count(cp, ns, "chat") == 1, "the first replica ready", START_S, describe)
            [first] = replicas()
            assert origin.gets == 1, origin.paths
            # The weights are on the node's disk, in the namespace's directory, written by the runtime user.
            [entry] = [d for d in cache.iterdir() if (d / "mlp.safetensors").exists()]
            assert (entry / "mlp.safetensors").stat().st_size == size and (entry / ".manifest.json").exists()
            assert (cache.stat().st_uid, (entry / "mlp.safetensors").stat().st_uid) == (10001, 10001)

            cp.request("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/chat/scale", {"spec": {"replicas": 2}},
                       content_type="application/merge-patch+json")
            wait_until(lambda: _ready_count(cp, ns, "chat") == 2, "the second replica ready", START_S, describe)
            [second] = [p for p in replicas() if p["metadata"]["name"] != first["metadata"]["name"]]
            assert origin.gets == 1, f"the second replica fetched again: {origin.paths}"
            # Both serve the same weights.
            x = {"instances": [[1.0] * MLP_SIDE]}
            answers = [_post(p["status"]["podIP"], 8080, "/v1/models/chat:predict", x) for p in (first, second)]
            assert answers[0][0] == 200 and answers[0] == answers[1], [a[0] for a in answers]

            starts = [_start(cp, p) for p in (first, second)]
            print(f"node cache, {size / 1e6:.0f} MB safetensors MLP from {origin.url}:")
            for name, s in zip(("first (fetch)", "second (cache)"), starts, strict=True):
                print(f"  {name}: pod created -> Ready {s['ready_s']:.0f} s; server load: fetch {s['fetch']:.2f} s, "
                      f"read {s['read']:.2f} s, total {s['total']:.2f} s")
    finally:
        origin.close()
