"""Start and stop a real Kubernetes control plane with kwok GPU nodes.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run as
local processes on 127.0.0.1 with free ports in a temporary directory. There
is no kubelet: kwok marks the nodes Ready and the pods bound to them Running,
so everything above the kubelet (admission, quota, RBAC, scheduling,
preemption, controllers) is the real Kubernetes code.

The binaries come from ``tools/controlplane/build.sh`` (Go modules pinned in
that folder, built once into a cache outside the repository).
"""

from __future__ import annotations

import base64
import ctypes
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
BIN_ENV = "INFRA_INFERENCE_CONTROLPLANE_BIN"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
ZONE_LABEL = "topology.kubernetes.io/zone"
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")


class ControlPlaneError(RuntimeError):
    """A control-plane binary is missing, failed to start, or did not become healthy."""


class BinariesUnavailable(ControlPlaneError):
    """The binaries are not built and cannot be built here (the reason says why)."""


def _build_script() -> Path:
    # <repo>/infra_inference/devcluster/_controlplane.py -> <repo>/tools/controlplane/build.sh
    return Path(__file__).resolve().parents[2] / "tools" / "controlplane" / "build.sh"


def find_binaries(*, build: bool = True) -> Path:
    """Return the directory holding the control-plane binaries.

    ``$INFRA_INFERENCE_CONTROLPLANE_BIN`` wins when set. Otherwise the build
    script's cache is used, building it first when ``build`` is true and Go
    is installed.

    Raises:
        BinariesUnavailable: with the reason, when there are no binaries.
    """
    override = os.environ.get(BIN_ENV)
    if override:
        bin_dir = Path(override)
        missing = [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)]
        if missing:
            raise BinariesUnavailable(f"${BIN_ENV}={bin_dir} lacks {', '.join(missing)}")
        return bin_dir
    script = _build_script()
    if not script.exists():
        raise BinariesUnavailable(f"{script} not found (not running from a source checkout); set ${BIN_ENV}")
    if subprocess.run([script, "--check"], check=False).returncode == 0:
        return Path(subprocess.check_output([script, "--dir"], text=True).strip())
    if not build:
        raise BinariesUnavailable(f"control-plane binaries not built; run {script}")
    if shutil.which("go") is None:
        raise BinariesUnavailable(f"control-plane binaries not built and 'go' is not on PATH; install Go >= 1.26 and run {script}")
    done = subprocess.run([script], stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise BinariesUnavailable(f"{script} failed (exit {done.returncode}); run it to see the error")
    return Path(done.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class GpuNode:
    """A simulated GPU node, shaped like one of a GpuPool's nodes.

    ``gpu_slots`` is the allocatable count of ``gpu_resource``: whole GPUs, or
    the shared slots a time-slicing/MPS device plugin advertises (4 GPUs with
    4 replicas each advertise 16).
    """

    name: str
    zone: str
    gpu_slots: int = 4
    gpu_resource: str = "nvidia.com/gpu"
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[Mapping[str, str]] = (GPU_TAINT,)
    cpu: str = "32"
    memory: str = "256Gi"
    pods: int = 110

    def manifest(self) -> dict[str, Any]:
        """The v1 Node object (kwok manages it through its annotation)."""
        resources = {"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods)}
        if self.gpu_slots:
            resources[self.gpu_resource] = str(self.gpu_slots)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "annotations": {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1], "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                    ZONE_LABEL: self.zone,
                    **self.labels,
                },
            },
            "spec": {"taints": [dict(t) for t in self.taints]},
            "status": {"capacity": resources, "allocatable": dict(resources)},
        }


def gpu_pool_nodes(
    pool: str,
    *,
    zones: Sequence[str] = ("zone-a", "zone-b"),
    nodes: int = 3,
    gpu_slots: int = 4,
    gpu_resource: str = "nvidia.com/gpu",
    labels: Mapping[str, str] | None = None,
) -> list[GpuNode]:
    """``nodes`` GpuNodes named ``{pool}-{i}``, spread round-robin over ``zones``."""
    return [
        GpuNode(
            name=f"{pool}-{i}",
            zone=zones[i % len(zones)],
            gpu_slots=gpu_slots,
            gpu_resource=gpu_resource,
            labels=dict(labels or {}),
        )
        for i in range(nodes)
    ]


def cpu_nodes(pool: str = "cpu", *, zones: Sequence[str] = ("zone-a", "zone-b"), nodes: int = 2) -> list[GpuNode]:
    """Untainted nodes without GPUs (a cluster's system pool: gateways, autoscalers)."""
    return [GpuNode(name=f"{pool}-{i}", zone=zones[i % len(zones)], gpu_slots=0, taints=()) for i in range(nodes)]


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (all held open while choosing, so none repeats)."""
    # They are released before the servers bind them; on a test machine the
    # window is harmless, and a collision shows up as a start failure.
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _die_with_parent() -> None:
    """Linux: SIGKILL the child if the test process dies without tearing down."""
    os.setsid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ControlPlaneError(f"openssl {' '.join(args)} failed: {done.stderr.strip()}")


def _make_pki(d: Path) -> None:
    """A CA, the apiserver's serving cert, an admin client cert, SA signing keys."""
    if shutil.which("openssl") is None:
        raise BinariesUnavailable("'openssl' is not on PATH (needed for the control plane's certificates)")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
             "-subj", "/CN=infra-inference-test-ca", cwd=d)  # fmt: skip
    leaves = {
        "apiserver": ("/CN=kube-apiserver",
                      "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,IP:10.96.0.1\n"
                      "extendedKeyUsage=serverAuth\n"),
        "admin": ("/O=system:masters/CN=infra-inference-admin", "extendedKeyUsage=clientAuth\n"),
    }  # fmt: skip
    for name, (subject, ext) in leaves.items():
        (d / f"{name}.ext").write_text(ext)
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "365", "-extfile", f"{name}.ext", cwd=d)  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


class ControlPlane:
    """A local Kubernetes control plane; a context manager.

    >>> with ControlPlane(find_binaries()) as cp:           # doctest: +SKIP
    ...     cp.add_nodes(gpu_pool_nodes("gpu-l4"))
    ...     print(cp.kubeconfig)

    Attributes:
        kubeconfig: path of the admin kubeconfig (group system:masters).
        server: the apiserver URL, ``https://127.0.0.1:<port>``.
        workdir: the temporary directory with certificates, data and logs
            (``<component>.log``); removed by ``stop()`` unless ``keep_workdir``.
    """

    def __init__(self, bin_dir: Path, *, workdir: Path | None = None, keep_workdir: bool = False,
                 extra_args: Mapping[str, Sequence[str]] | None = None) -> None:
        self.bin_dir = Path(bin_dir)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="infra-inference-controlplane-"))
        self.keep_workdir = keep_workdir
        self.extra_args = {k: list(v) for k, v in (extra_args or {}).items()}  # e.g. {"kube-scheduler": ["-v=4"]}
        self.pki = self.workdir / "pki"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.server = ""
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._ssl: ssl.SSLContext | None = None
        self._discovery: dict[str, dict[str, tuple[str, bool]]] = {}

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, *, timeout_s: float = 120.0) -> None:
        """Start every component and wait until each reports healthy.

        Raises:
            ControlPlaneError: naming the component, with its log's tail; all
                processes already started are stopped first.
        """
        try:
            self._start(timeout_s)
        except BaseException:
            self.keep_workdir = True  # keep the logs for the error message's pointer
            self.stop()
            raise

    def _start(self, timeout_s: float) -> None:
        self.pki.mkdir(parents=True, exist_ok=True)
        _make_pki(self.pki)
        p = self.pki
        etcd_port, etcd_peer, api_port, kcm_port, sched_port, kwok_port = _free_ports(6)
        self.server = f"https://127.0.0.1:{api_port}"
        self._write_kubeconfig()
        self._ssl = ssl.create_default_context(cafile=str(p / "ca.crt"))
        self._ssl.load_cert_chain(p / "admin.crt", p / "admin.key")
        insecure = ssl._create_unverified_context()  # KCM/scheduler serve self-signed certs of their own

        etcd_url = f"http://127.0.0.1:{etcd_port}"
        self._spawn("etcd", [
            "--name=default", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync=true",  # throwaway data; fsync only slows the tests
            "--log-level=warn",
        ])  # fmt: skip
        self._wait("etcd", lambda: self._http_ok(f"{etcd_url}/health", None), timeout_s)

        self._spawn("kube-apiserver", [
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=Node,RBAC",
            # The kubernetes Service's endpoints may not be loopback; nothing
            # in the cluster dials it (no kubelet, no in-cluster pods), so skip it.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
        ])  # fmt: skip
        self._wait("kube-apiserver", lambda: self._http_ok(f"{self.server}/readyz", self._ssl), timeout_s)

        common = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--profiling=false",
        ]
        self._spawn("kube-controller-manager", [
            *common, f"--secure-port={kcm_port}", f"--cert-dir={self.workdir / 'kcm-certs'}",
            f"--service-account-private-key-file={p / 'sa.key'}", f"--root-ca-file={p / 'ca.crt'}",
            "--controllers=*",
        ])  # fmt: skip
        self._spawn("kube-scheduler", [
            *common, f"--secure-port={sched_port}", f"--cert-dir={self.workdir / 'sched-certs'}",
            # Async preemption (beta, on by default since 1.33) can park a
            # preemptor for the 5-minute unschedulable flush when several
            # preemptors pick the same victims and the last one is already
            # gone (kubernetes/kubernetes#141694, fix pending in #142294).
            # kwok deletes victims at once, which makes that race the common
            # case; synchronous preemption requeues on every victim's deletion.
            "--feature-gates=SchedulerAsyncPreemption=false",
        ])  # fmt: skip
        self._spawn("kwok", [
            f"--kubeconfig={self.kubeconfig}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION[0]}={KWOK_ANNOTATION[1]}",
            "--manage-nodes-with-label-selector=", "--manage-single-node=",
            "--cidr=10.244.0.0/16", "--node-ip=127.0.0.1",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{kwok_port}",
            f"--config={self.bin_dir / 'kwok-stages.yaml'}",
        ], env={"HOME": str(self.workdir)})  # our stages only, never a ~/.kwok/kwok.yaml  # fmt: skip
        self._wait("kube-controller-manager", lambda: self._http_ok(f"https://127.0.0.1:{kcm_port}/healthz", insecure), timeout_s)
        self._wait("kube-scheduler", lambda: self._http_ok(f"https://127.0.0.1:{sched_port}/healthz", insecure), timeout_s)
        self._wait("kwok", lambda: self._http_ok(f"http://127.0.0.1:{kwok_port}/healthz", None), timeout_s)
        # The "default" ServiceAccount is what most tests' pods need; its
        # controller runs in the controller-manager.
        self._wait("kube-controller-manager", lambda: self._exists("/api/v1/namespaces/default/serviceaccounts/default"), timeout_s)

    def stop(self) -> None:
        """Stop every process this object started, in reverse order, then clean up."""
        # One at a time: the apiserver shuts down quickly while etcd is still
        # there, but waits out its timeouts when etcd went first.
        for _name, proc in reversed(self._procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=10)
                except ProcessLookupError:
                    pass
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self._procs.clear()
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- nodes -------------------------------------------------------------

    def add_nodes(self, nodes: Iterable[GpuNode], *, timeout_s: float = 60.0) -> list[str]:
        """Create the nodes and wait until kwok reports each Ready and untainted by the node controller."""
        names = []
        for node in nodes:
            self.request("POST", "/api/v1/nodes", node.manifest())
            names.append(node.name)
        for name in names:
            self._wait(f"node {name}", lambda name=name: self._node_schedulable(name), timeout_s)
        return names

    def delete_nodes(self, names: Iterable[str]) -> None:
        for name in names:
            self.request("DELETE", f"/api/v1/nodes/{name}", allow=(404,))

    def _node_schedulable(self, name: str) -> bool:
        node = self.request("GET", f"/api/v1/nodes/{name}")
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))
        # TaintNodesByCondition adds not-ready on create; the node-lifecycle
        # controller lifts it once kwok reports Ready.
        not_ready_taint = any(t["key"].startswith("node.kubernetes.io/") for t in node["spec"].get("taints", []))
        return ready and not not_ready_taint

    # -- objects -----------------------------------------------------------

    def apply(self, obj: Mapping[str, Any], *, field_manager: str = "infra-inference") -> dict[str, Any]:
        """Server-side apply ``obj`` as cluster admin, with strict field validation.

        Raises:
            ControlPlaneError: with the apiserver's message when the object is
                rejected (unknown or duplicate fields, validation, admission).
        """
        path = self.object_path(obj)
        query = f"?fieldManager={field_manager}&fieldValidation=Strict"
        return self.request("PATCH", path + query, obj, content_type="application/apply-patch+yaml")

    def delete(self, obj: Mapping[str, Any]) -> None:
        """Delete ``obj`` (background propagation); a missing object is fine."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        self.request("DELETE", self.object_path(obj), body, allow=(404,))

    def object_path(self, obj: Mapping[str, Any]) -> str:
        """The REST path of ``obj`` (resource names come from discovery)."""
        api_version, kind, meta = obj["apiVersion"], obj["kind"], obj["metadata"]
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if api_version not in self._discovery:
            found = self.request("GET", base)["resources"]
            self._discovery[api_version] = {r["kind"]: (r["name"], r["namespaced"]) for r in found if "/" not in r["name"]}
        try:
            plural, namespaced = self._discovery[api_version][kind]
        except KeyError:
            raise ControlPlaneError(f"the apiserver serves no {kind} in {api_version}") from None
        ns = f"/namespaces/{meta.get('namespace') or 'default'}" if namespaced else ""
        return f"{base}{ns}/{plural}/{meta['name']}"

    # -- a tiny admin REST client (stdlib only) ----------------------------

    def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                allow: Sequence[int] = ()) -> dict[str, Any]:  # fmt: skip
        """Call the apiserver as cluster admin; returns the decoded JSON body.

        Raises:
            ControlPlaneError: on a status >= 400 not listed in ``allow``.
        """
        host, port = self.server.removeprefix("https://").split(":")
        conn = http.client.HTTPSConnection(host, int(port), context=self._ssl, timeout=30)
        try:
            data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            conn.request(method, path, body=data, headers={"Content-Type": content_type, "Accept": "application/json"})
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        if resp.status >= 400 and resp.status not in allow:
            raise ControlPlaneError(f"{method} {path}: {resp.status} {raw.decode(errors='replace')[:500]}")
        return json.loads(raw) if raw else {}

    # -- internals ---------------------------------------------------------

    def _write_kubeconfig(self) -> None:
        p = self.pki
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {"server": self.server, "certificate-authority-data": _b64(p / "ca.crt")}}],
            "users": [{"name": "admin", "user": {"client-certificate-data": _b64(p / "admin.crt"), "client-key-data": _b64(p / "admin.key")}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
            "current-context": "local",
        }
        # JSON is valid YAML, and every kubeconfig reader accepts it.
        self.kubeconfig.write_text(json.dumps(cfg, indent=2))
        self.kubeconfig.chmod(0o600)

    def _spawn(self, name: str, args: list[str], env: Mapping[str, str] | None = None) -> None:
        binary = self.bin_dir / name
        if not os.access(binary, os.X_OK):
            raise BinariesUnavailable(f"{binary} is missing")
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        with log:
            proc = subprocess.Popen([str(binary), *args, *self.extra_args.get(name, [])], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.workdir, env={**os.environ, **(env or {})}, preexec_fn=_die_with_parent)  # fmt: skip
        self._procs.append((name, proc))

    def _wait(self, name: str, ready: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            for pname, proc in self._procs:
                if proc.poll() is not None:
                    raise ControlPlaneError(f"{pname} exited with {proc.returncode}:\n{self.log_tail(pname)}")
            try:
                if ready():
                    return
            except (OSError, ControlPlaneError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{name} not ready after {timeout_s:.0f}s:\n{self.log_tail(name.split()[0])}")
            time.sleep(0.2)

    def _http_ok(self, url: str, ctx: ssl.SSLContext | None) -> bool:
        scheme, rest = url.split("://", 1)
        hostport, _, path = rest.partition("/")
        host, port = hostport.split(":")
        cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        kwargs = {"context": ctx} if scheme == "https" else {}
        conn = cls(host, int(port), timeout=5, **kwargs)
        try:
            conn.request("GET", "/" + path)
            return conn.getresponse().status == 200
        finally:
            conn.close()

    def _exists(self, path: str) -> bool:
        return bool(self.request("GET", path, allow=(404,)).get("metadata", {}).get("name"))

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last lines of a component's log."""
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return f"(no log at {path})"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + f"\n(full log: {path})"
