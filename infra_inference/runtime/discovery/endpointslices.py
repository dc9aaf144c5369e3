"""Replica discovery in a cluster: ready addresses from the EndpointSlices of headless Services.

List, then watch from the list's resourceVersion; when the watch ends (its
timeout, a dropped connection, 410 Gone) list again. The kubernetes client is
synchronous, so this runs in a daemon thread and hands each change to the
event loop; the gateway's RBAC allows exactly get/list/watch on endpointslices.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, config, watch

from infra_inference.wire.names import DEFAULT_PORT

log = logging.getLogger(__name__)

SERVICE_LABEL = "kubernetes.io/service-name"
# Only slices the EndpointSlice controller wrote from the Service's selector: anyone who may create
# EndpointSlices in the namespace could otherwise label one `service-name: chat-replicas` and point
# the gateway (and its users' requests) at an address of their choosing.
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"
# A watch is re-issued this often even when healthy, and after an error, this long later.
WATCH_TIMEOUT_S = 60
RETRY_S = 1.0
# The client's own (connect, read) timeouts: WATCH_TIMEOUT_S is the API server's, and without these
# urllib3 waits forever on a connection that died half-open (a control-plane upgrade), and the
# replica set would freeze at what it was.
REQUEST_TIMEOUT_S = (5.0, WATCH_TIMEOUT_S + 10.0)


def ready_addresses(endpoint_slice: Any, default_port: int, *, pinned: bool = False) -> list[str]:
    """host:port of every ready endpoint (an unset `ready` means ready, as the API documents).

    The port is the slice's `http` port, else `default_port`; `pinned` keeps `default_port`, for a
    port the Service does not expose (the gateway's admin port, where the activator and metrics are).
    """
    port = default_port
    for p in [] if pinned else endpoint_slice.ports or []:
        if p.port is not None and (p.name in (None, "", "http")):
            port = p.port
            break
    out = []
    for ep in endpoint_slice.endpoints or []:
        ready = ep.conditions.ready if ep.conditions is not None else None
        if ready is False:
            continue
        out += [f"{address}:{port}" for address in ep.addresses]
    return out


class EndpointSliceDiscovery:
    """Watches the slices of `services` ({service name: (deployment, default port)}) in `namespace`;
    the services in `pinned_ports` are reached on their given port, never the slice's."""

    def __init__(self, api: client.ApiClient, namespace: str, services: dict[str, tuple[str, int]],
                 pinned_ports: frozenset[str] = frozenset()) -> None:
        self.api_client = api
        self._api = client.DiscoveryV1Api(api)
        self._namespace = namespace
        self._services = services
        self._pinned = pinned_ports
        self._selector = f"{SERVICE_LABEL} in ({','.join(sorted(services))}),{MANAGED_BY_LABEL}={CONTROLLER}"
        self._stop = threading.Event()

    @classmethod
    def in_cluster(cls, namespace: str, services: dict[str, tuple[str, int]],
                   pinned_ports: frozenset[str] = frozenset()) -> EndpointSliceDiscovery:
        """In a pod: its ServiceAccount; elsewhere: $KUBECONFIG or ~/.kube/config."""
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        return cls(client.ApiClient(), namespace, services, pinned_ports)

    async def run(self, publish: Callable[[str, list[str]], None]) -> None:
        loop = asyncio.get_running_loop()

        def emit(deployment: str, addresses: list[str]) -> None:
            loop.call_soon_threadsafe(publish, deployment, addresses)

        thread = threading.Thread(target=self._watch_forever, args=(emit,), daemon=True, name="endpointslices")
        thread.start()
        try:
            await asyncio.Event().wait()
        finally:
            self._stop.set()

    def _watch_forever(self, emit: Callable[[str, list[str]], None]) -> None:
        slices: dict[str, tuple[str, list[str]]] = {}  # slice name -> (service, addresses)
        published: dict[str, list[str]] = {}

        def publish_changes() -> None:
            for service, (deployment, _) in self._services.items():
                addresses = sorted(a for s, addrs in slices.values() if s == service for a in addrs)
                if published.get(service) != addresses:
                    published[service] = addresses
                    emit(deployment, addresses)

        while not self._stop.is_set():
            try:
                listed = self._api.list_namespaced_endpoint_slice(self._namespace, label_selector=self._selector,
                                                                  _request_timeout=REQUEST_TIMEOUT_S)
                slices = {s.metadata.name: self._entry(s) for s in listed.items}
                publish_changes()
                stream = watch.Watch().stream(
                    self._api.list_namespaced_endpoint_slice, self._namespace, label_selector=self._selector,
                    resource_version=listed.metadata.resource_version, timeout_seconds=WATCH_TIMEOUT_S,
                    _request_timeout=REQUEST_TIMEOUT_S)
                for event in stream:
                    s = event["object"]
                    if event["type"] == "DELETED":
                        slices.pop(s.metadata.name, None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        slices[s.metadata.name] = self._entry(s)
                    publish_changes()
                    if self._stop.is_set():
                        return
            except Exception as exc:  # the API may be briefly unreachable; keep the last view and retry
                log.warning("endpointslice watch in %s: %s; retrying", self._namespace, exc)
                time.sleep(RETRY_S)

    def _entry(self, endpoint_slice: Any) -> tuple[str, list[str]]:
        lbls = endpoint_slice.metadata.labels or {}
        if lbls.get(MANAGED_BY_LABEL) != CONTROLLER:  # the selector already says so; a watch event is re-checked
            return "", []
        service = lbls.get(SERVICE_LABEL, "")
        default_port = self._services.get(service, ("", DEFAULT_PORT))[1]
        return service, ready_addresses(endpoint_slice, default_port, pinned=service in self._pinned)
