"""The provider's hands on the cluster: server-side apply, drift checks and deletes of rendered objects.

Objects are addressed by a key that survives in Terraform state without the
rendered object: `apps/v1/Deployment/inference/chat`, `v1/Namespace/inference`
(apiVersion, kind, namespace if any, name), so a prune or a destroy can delete
an object that the current arguments no longer render.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from urllib3.exceptions import HTTPError

from infra_inference.render.common import Obj

FIELD_MANAGER = "infra-inference"
# Applied first: what other objects live in or refer to. Pod-owning kinds last, as
# components/kube.py does, so a ReplicaSet never starts before its ServiceAccount exists.
_FIRST = ("Namespace", "PriorityClass", "ResourceQuota", "ServiceAccount", "Role", "RoleBinding", "ConfigMap")
_LAST = ("Deployment", "DaemonSet", "Job")
# Kinds whose spec the apiserver will not change in place (a Job's pod template): a changed one is
# deleted and created again, as `pulumi up` replaces it. Anything else refused stays an error.
RECREATED = ("Job",)
RECREATE_WAIT_S = 60.0
# Metadata the apiserver owns; two reads of an unchanged object differ only there.
_VOLATILE_META = ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid", "selfLink")


def key(o: Obj) -> str:
    meta = o["metadata"]
    parts = [o["apiVersion"], o["kind"], meta.get("namespace"), meta["name"]]
    return "/".join(p for p in parts if p)


def digest(o: Obj) -> str:
    """What the objects map records per object: changes exactly when the rendered object changes."""
    return hashlib.sha256(json.dumps(o, sort_keys=True).encode()).hexdigest()[:16]


def apply_order(objects: list[Obj]) -> list[Obj]:
    def rank(o: Obj) -> int:
        kind = o["kind"]
        return _FIRST.index(kind) if kind in _FIRST else len(_FIRST) + (1 + _LAST.index(kind) if kind in _LAST else 0)
    return sorted(objects, key=rank)  # stable: render order within a rank


def delete_order(keys: list[str]) -> list[str]:
    """Reverse apply order: workloads first, the namespace they live in last."""
    by_rank = apply_order([_stub(k) for k in keys])
    return [key(o) for o in reversed(by_rank)]


def _stub(k: str) -> Obj:
    """The addressing fields of an object from its key."""
    parts = k.split("/")
    kind_at = next(i for i, p in enumerate(parts) if p[:1].isupper())
    api_version, kind, rest = "/".join(parts[:kind_at]), parts[kind_at], parts[kind_at + 1:]
    meta = {"namespace": rest[0], "name": rest[1]} if len(rest) == 2 else {"name": rest[0]}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


def _plural(kind: str) -> str:
    low = kind.lower()
    if low.endswith("y"):
        return low[:-1] + "ies"  # NetworkPolicy -> networkpolicies
    if low.endswith("s"):
        return low + "es"  # PriorityClass -> priorityclasses
    return low + "s"


def _path(o: Obj, with_name: bool = True) -> str:
    api = o["apiVersion"]
    base = f"/api/{api}" if "/" not in api else f"/apis/{api}"
    ns = o["metadata"].get("namespace")
    path = f"{base}/namespaces/{ns}/{_plural(o['kind'])}" if ns else f"{base}/{_plural(o['kind'])}"
    return f"{path}/{o['metadata']['name']}" if with_name else path


def _comparable(o: Obj) -> Obj:
    out = {k: v for k, v in o.items() if k != "status"}
    out["metadata"] = {k: v for k, v in o["metadata"].items() if k not in _VOLATILE_META}
    return out


class ClusterError(RuntimeError):
    """The apiserver refused a request (`status`), or could not be reached (`status` None); the message says why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Connection:
    """Where the provider's kubeconfig comes from: explicit settings first, then the usual variables."""

    kubeconfig_path: str | None = None
    kubeconfig: str | None = None
    context: str | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Connection:
        env = os.environ
        path = config.get("kubeconfig_path") or env.get("KUBE_CONFIG_PATH") \
            or (env.get("KUBE_CONFIG_PATHS") or "").split(os.pathsep)[0] or None
        return cls(kubeconfig_path=path, kubeconfig=config.get("kubeconfig"),
                   context=config.get("context") or env.get("KUBE_CTX") or None)

    def client(self) -> Cluster:
        import kubernetes
        import yaml

        path = self.kubeconfig_path or (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0] \
            or str(Path.home() / ".kube" / "config")
        try:
            if self.kubeconfig:
                api = kubernetes.config.new_client_from_config_dict(yaml.safe_load(self.kubeconfig),
                                                                    context=self.context)
            else:
                api = kubernetes.config.new_client_from_config(config_file=os.path.expanduser(path),
                                                               context=self.context)
        except (kubernetes.config.ConfigException, yaml.YAMLError) as exc:
            raise ClusterError(f"kubeconfig: {exc}") from None
        return Cluster(api)


class Cluster:
    def __init__(self, api: Any) -> None:
        self._api = api

    def _call(self, method: str, path: str, body: Obj | None = None, query: list[tuple[str, str]] | None = None,
              content_type: str = "application/json") -> Obj | None:
        """One request through the client's auth and TLS settings; None for 404."""
        # The client encodes a dict only for a JSON content type; an apply patch goes as a JSON string
        # (JSON is YAML, which apply-patch+yaml reads).
        if body is not None and "json" not in content_type:
            body = json.dumps(body)  # type: ignore[assignment]
        request = self._api.param_serialize(
            method, path, query_params=query or [], body=body,
            header_params={"Content-Type": content_type, "Accept": "application/json"}, auth_settings=["BearerToken"])
        try:
            resp = self._api.call_api(*request)
            resp.read()
        except HTTPError as exc:  # refused, reset, timed out: urllib3's, none of them an OSError
            raise ClusterError(f"{method} {path}: {exc}") from None
        if resp.status == 404:
            return None
        if not 200 <= resp.status < 300:
            raise ClusterError(f"{method} {path}: {resp.status} {_reason(resp.data)}", resp.status)
        return json.loads(resp.data)

    def apply(self, o: Obj, *, dry_run: bool = False) -> Obj:
        """Server-side apply as our field manager, taking over fields another manager set.

        A RECREATED kind the apiserver refuses to change (422: a field is immutable) is deleted and
        created again; a batch service whose input changed runs as a new Job.
        """
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")] + ([("dryRun", "All")] if dry_run else [])
        try:
            out = self._call("PATCH", _path(o), o, query, content_type="application/apply-patch+yaml")
        except ClusterError as exc:
            if dry_run or exc.status != 422 or o["kind"] not in RECREATED:
                raise
            self._recreate(key(o))
            out = self._call("PATCH", _path(o), o, query, content_type="application/apply-patch+yaml")
        if out is None:
            raise ClusterError(f"apply {key(o)}: not found (does namespace {o['metadata'].get('namespace')!r} exist?)")
        return out

    def get(self, k: str) -> Obj | None:
        return self._call("GET", _path(_stub(k)))

    def drift(self, o: Obj) -> str | None:
        """None when the live object is what applying `o` gives; else 'missing' or 'changed'."""
        live = self.get(key(o))
        if live is None:
            return "missing"
        try:
            applied = self.apply(o, dry_run=True)
        except ClusterError as exc:
            if exc.status != 422:
                raise
            # The apiserver refuses `o` over what is live (an immutable field): not what is live, and a refresh
            # must say so rather than fail, or no plan could ever run again to fix it.
            return "changed"
        return None if _comparable(applied) == _comparable(live) else "changed"

    def delete(self, k: str) -> None:
        """Delete; an object already gone is fine (a destroy after a partial apply)."""
        self._call("DELETE", _path(_stub(k)), {"propagationPolicy": "Background"})

    def _recreate(self, k: str) -> None:
        """Delete `k` and wait until the apiserver no longer has it, so the same name can be created again."""
        self.delete(k)
        deadline = time.monotonic() + RECREATE_WAIT_S
        while self.get(k) is not None:
            if time.monotonic() > deadline:
                raise ClusterError(f"replace {k}: still there {RECREATE_WAIT_S:g} s after its delete")
            time.sleep(0.2)


def _reason(body: Any) -> str:
    try:
        return str(json.loads(body).get("message", body))
    except (TypeError, ValueError):
        return str(body)
