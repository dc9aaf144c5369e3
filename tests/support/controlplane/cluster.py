"""Start and stop a real Kubernetes control plane with kwok GPU nodes.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run as
local processes on 127.0.0.1 with free ports in a temporary directory. There
is no kubelet: kwok marks the nodes Ready and the pods bound to them Running,
so everything above the kubelet (admission, quota, RBAC, scheduling,
preemption, controllers) is the real Kubernetes code.
"""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.support.controlplane.binaries import ControlPlaneError
from tests.support.controlplane.nodes import KWOK_ANNOTATION, GpuNode
from tests.support.controlplane.pki import admin_kubeconfig, make_pki
from tests.support.controlplane.processes import Processes, http_ok
from tests.support.ports import free_ports


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
                 extra_args: Mapping[str, Sequence[str]] | None = None, advertise_address: str = "127.0.0.1") -> None:
        self.bin_dir = Path(bin_dir)
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="infra-inference-controlplane-"))
        self.keep_workdir = keep_workdir
        # Where pods reach the apiserver (the kubernetes Service's endpoint):
        # a host address when a real node runs pods (realnode.py), loopback otherwise.
        self.advertise_address = advertise_address
        self.pki = self.workdir / "pki"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.server = ""
        self._processes = Processes(self.bin_dir, self.workdir, extra_args or {})
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
        make_pki(self.pki, self.advertise_address)
        p = self.pki
        etcd_port, etcd_peer, api_port, kcm_port, sched_port, kwok_port = free_ports(6)
        self.server = f"https://127.0.0.1:{api_port}"
        self._write_kubeconfig()
        self._ssl = ssl.create_default_context(cafile=str(p / "ca.crt"))
        self._ssl.load_cert_chain(p / "admin.crt", p / "admin.key")
        insecure = ssl._create_unverified_context()  # KCM/scheduler serve self-signed certs of their own

        etcd_url = f"http://127.0.0.1:{etcd_port}"
        loopback = self.advertise_address == "127.0.0.1"
        self._processes.spawn("etcd", [
            "--name=default", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
            f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync=true",  # throwaway data; fsync only slows the tests
            "--log-level=warn",
        ])  # fmt: skip
        self._processes.wait("etcd", lambda: http_ok(f"{etcd_url}/health", None), timeout_s)

        self._processes.spawn("kube-apiserver", [
            f"--etcd-servers={etcd_url}",
            f"--bind-address={'127.0.0.1' if loopback else '0.0.0.0'}", f"--advertise-address={self.advertise_address}",
            f"--secure-port={api_port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=Node,RBAC",
            # The kubernetes Service's endpoints may not be loopback; with kwok
            # nodes only, nothing in the cluster dials it, so skip it then.
            *(["--endpoint-reconciler-type=none"] if loopback else []),
            "--profiling=false",
        ])  # fmt: skip
        self._processes.wait("kube-apiserver", lambda: http_ok(f"{self.server}/readyz", self._ssl), timeout_s)

        common = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--profiling=false",
        ]
        self._processes.spawn("kube-controller-manager", [
            *common, f"--secure-port={kcm_port}", f"--cert-dir={self.workdir / 'kcm-certs'}",
            f"--service-account-private-key-file={p / 'sa.key'}", f"--root-ca-file={p / 'ca.crt'}",
            "--controllers=*",
        ])  # fmt: skip
        self._processes.spawn("kube-scheduler", [
            *common, f"--secure-port={sched_port}", f"--cert-dir={self.workdir / 'sched-certs'}",
            # Async preemption (beta, on by default since 1.33) can park a
            # preemptor for the 5-minute unschedulable flush when several
            # preemptors pick the same victims and the last one is already
            # gone (kubernetes/kubernetes#141694, fix pending in #142294).
            # kwok deletes victims at once, which makes that race the common
            # case; synchronous preemption requeues on every victim's deletion.
            "--feature-gates=SchedulerAsyncPreemption=false",
        ])  # fmt: skip
        self._processes.spawn("kwok", [
            f"--kubeconfig={self.kubeconfig}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION[0]}={KWOK_ANNOTATION[1]}",
            "--manage-nodes-with-label-selector=", "--manage-single-node=",
            "--cidr=10.244.0.0/16", "--node-ip=127.0.0.1",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{kwok_port}",
            f"--config={self.bin_dir / 'kwok-stages.yaml'}",
        ], env={"HOME": str(self.workdir)})  # our stages only, never a ~/.kwok/kwok.yaml  # fmt: skip
        self._processes.wait("kube-controller-manager", lambda: http_ok(f"https://127.0.0.1:{kcm_port}/healthz", insecure), timeout_s)
        self._processes.wait("kube-scheduler", lambda: http_ok(f"https://127.0.0.1:{sched_port}/healthz", insecure), timeout_s)
        self._processes.wait("kwok", lambda: http_ok(f"http://127.0.0.1:{kwok_port}/healthz", None), timeout_s)
        # The "default" ServiceAccount is what most tests' pods need; its
        # controller runs in the controller-manager.
        self._processes.wait("kube-controller-manager", lambda: self._exists("/api/v1/namespaces/default/serviceaccounts/default"), timeout_s)

    def stop(self) -> None:
        """Stop every process this object started, in reverse order, then clean up."""
        self._processes.stop()
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
            self._processes.wait(f"node {name}", lambda name=name: self._node_schedulable(name), timeout_s)
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
        # JSON is valid YAML, and every kubeconfig reader accepts it.
        self.kubeconfig.write_text(json.dumps(admin_kubeconfig(self.server, self.pki), indent=2))
        self.kubeconfig.chmod(0o600)

    def _exists(self, path: str) -> bool:
        return bool(self.request("GET", path, allow=(404,)).get("metadata", {}).get("name"))

    def log_tail(self, name: str, lines: int = 40) -> str:
        """The last lines of a component's log."""
        return self._processes.log_tail(name, lines)
