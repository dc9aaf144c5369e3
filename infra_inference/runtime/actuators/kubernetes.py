"""Kubernetes actuator: read and patch a Deployment's scale subresource.

Only `spec.replicas` through `deployments/scale`, which is all the autoscaler's
Role allows (get/patch/update on deployments/scale, get on deployments for
`status.readyReplicas`): the Deployment's template stays the user's. A tick
reads the Deployment alone, which carries both `spec.replicas` (what the
scale subresource shows) and `status.readyReplicas`: one API read per
deployment per tick (1 a second at the default tick), not two. Ready
replica URLs come from the EndpointSlices of `<deployment>-replicas`, the
headless Service render/service.py creates per variant.
"""

from __future__ import annotations

import asyncio
import logging

from kubernetes import client
from kubernetes.client.rest import ApiException
from urllib3.exceptions import HTTPError

from infra_inference.runtime.actuators.base import Replicas

log = logging.getLogger(__name__)

# A read or patch that has not answered in this long is not coming: without a client-side timeout
# urllib3 waits forever on a half-open connection, and the autoscaler's tick with it.
API_TIMEOUT_S = 10.0


class KubernetesActuator:
    """Scales Deployments in `namespace`; `urls` gives a deployment's ready replica URLs (from EndpointSlices)."""

    def __init__(self, api: client.ApiClient, namespace: str,
                 urls: dict[str, list[str]] | None = None) -> None:
        self._apps = client.AppsV1Api(api)
        self._namespace = namespace
        self.urls = urls if urls is not None else {}

    async def replicas(self, deployment: str) -> Replicas | None:
        try:
            dep = await asyncio.to_thread(self._apps.read_namespaced_deployment, deployment, self._namespace,
                                          _request_timeout=API_TIMEOUT_S)
        except (ApiException, HTTPError, OSError) as exc:
            log.warning("cannot read %s/%s: %s", self._namespace, deployment, exc)
            return None
        ready = (dep.status.ready_replicas or 0) if dep.status is not None else 0
        return Replicas(dep.spec.replicas or 0, ready)

    def ready_urls(self, deployment: str) -> list[str]:
        return list(self.urls.get(deployment, ()))

    async def scale(self, deployment: str, replicas: int) -> None:
        await asyncio.to_thread(self._apps.patch_namespaced_deployment_scale, deployment, self._namespace,
                                {"spec": {"replicas": replicas}}, _request_timeout=API_TIMEOUT_S)

    async def close(self) -> None:
        pass
