"""A faked Kubernetes HTTP API: the few routes the actuator and EndpointSlice discovery call, over real HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from kubernetes import client


class FakeKube:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.replicas: dict[str, int] = {}
        self.ready: dict[str, int] = {}
        self.patches: list[tuple[str, str, Any]] = []  # (deployment, content-type, body)
        self.slices: dict[str, dict[str, Any]] = {}
        self.watch_events: list[dict[str, Any]] = []
        self.requests: list[str] = []

    def scale_doc(self, name: str) -> dict[str, Any]:
        n = self.replicas[name]
        return {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": name, "namespace": self.namespace},
                "spec": {"replicas": n}, "status": {"replicas": n}}

    def deployment_doc(self, name: str) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": self.namespace},
                "spec": {"replicas": self.replicas[name], "selector": {"matchLabels": {"app": name}},
                         "template": {"metadata": {"labels": {"app": name}},
                                      "spec": {"containers": [{"name": "c", "image": "x"}]}}},
                "status": {"readyReplicas": self.ready.get(name, 0)}}


def endpoint_slice(name: str, service: str, ready: dict[str, bool | None], port: int = 8080,
                   managed_by: str = "endpointslice-controller.k8s.io") -> dict[str, Any]:
    endpoints = [{"addresses": [ip], "conditions": {} if r is None else {"ready": r}} for ip, r in ready.items()]
    lbls = {"kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": managed_by}
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name, "labels": lbls, "resourceVersion": "1"},
            "endpoints": endpoints, "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}


def _handler(kube: FakeKube) -> type[BaseHTTPRequestHandler]:
    apps = f"/apis/apps/v1/namespaces/{kube.namespace}/deployments/"
    slices = f"/apis/discovery.k8s.io/v1/namespaces/{kube.namespace}/endpointslices"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, doc: Any, status: int = 200) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            kube.requests.append(f"GET {self.path}")
            if url.path.startswith(apps):
                name, _, sub = url.path[len(apps):].partition("/")
                if name not in kube.replicas:
                    return self._json({"kind": "Status", "code": 404, "reason": "NotFound"}, 404)
                return self._json(kube.scale_doc(name) if sub == "scale" else kube.deployment_doc(name))
            if url.path == slices:
                if parse_qs(url.query).get("watch") == ["true"]:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.end_headers()
                    for event in kube.watch_events:
                        self.wfile.write(json.dumps(event).encode() + b"\n")
                    kube.watch_events = []
                    return None
                return self._json({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList",
                                   "metadata": {"resourceVersion": "1"}, "items": list(kube.slices.values())})
            return self._json({"kind": "Status", "code": 404}, 404)

        def do_PATCH(self) -> None:
            url = urlparse(self.path)
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            name = url.path[len(apps):].partition("/")[0]
            kube.patches.append((name, self.headers["content-type"], body))
            kube.replicas[name] = body["spec"]["replicas"]
            return self._json(kube.scale_doc(name))

    return Handler


@contextmanager
def fake_kube(namespace: str = "inference") -> Iterator[tuple[FakeKube, client.ApiClient]]:
    kube = FakeKube(namespace)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(kube))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    try:
        with client.ApiClient(config) as api:
            yield kube, api
    finally:
        server.shutdown()
        server.server_close()
