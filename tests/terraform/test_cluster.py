"""The provider's cluster calls when the apiserver refuses or cannot be reached (the control-plane tests cover
the apiserver that answers)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from urllib3.exceptions import MaxRetryError, ProtocolError

from infra_inference.errors import SpecError
from infra_inference.terraform.cluster import Cluster, ClusterError
from infra_inference.terraform.resources import RESOURCES

JOB = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "score", "namespace": "inference"},
       "spec": {"template": {"spec": {"containers": [{"name": "c", "args": ["--input", "s3://b/in2"]}]}}}}
IMMUTABLE = (422, {"message": 'Job.batch "score" is invalid: spec.template: field is immutable'})


class _Answer:
    def __init__(self, status: int, body: Any) -> None:
        self.status, self.data = status, json.dumps(body).encode()

    def read(self) -> None:
        pass


class FakeApi:
    """The two calls Cluster makes of a kubernetes ApiClient, answering from a script and keeping the objects."""

    def __init__(self, refuse: list[tuple[int, Any]] | None = None, fail: Exception | None = None) -> None:
        self.objects: dict[str, Any] = {}
        self.calls: list[tuple[str, str]] = []
        self._refuse, self._fail = list(refuse or []), fail

    def param_serialize(self, method: str, path: str, body: Any = None, **_: Any) -> tuple[str, str, Any]:
        return method, path, body

    def call_api(self, method: str, path: str, body: Any) -> _Answer:
        self.calls.append((method, path))
        if self._fail is not None:
            raise self._fail
        if method == "PATCH" and self._refuse:
            return _Answer(*self._refuse.pop(0))
        if method == "PATCH":
            self.objects[path] = json.loads(body)
            return _Answer(200, self.objects[path])
        if method == "DELETE":
            self.objects.pop(path, None)
            return _Answer(200, {})
        return _Answer(200, self.objects[path]) if path in self.objects else _Answer(404, {})


@pytest.mark.parametrize("failure", [MaxRetryError(None, "/api", "connection refused"),  # type: ignore[arg-type]
                                     ProtocolError("Connection aborted.")])
def test_an_unreachable_apiserver_is_a_cluster_error_so_state_keeps_what_was_applied(failure: Exception) -> None:
    """urllib3's errors are not OSErrors: uncaught, they escaped the apply and Terraform got no state at all,
    orphaning every object applied before the connection dropped."""
    with pytest.raises(ClusterError) as err:
        Cluster(FakeApi(fail=failure)).apply(JOB)
    assert err.value.status is None


def test_a_job_the_apiserver_will_not_change_is_replaced() -> None:
    """A Job's pod template is immutable: a batch service whose input changed runs as a new Job (as `pulumi up`
    replaces it) instead of failing every apply."""
    api = FakeApi(refuse=[IMMUTABLE])
    applied = Cluster(api).apply(JOB)
    assert applied["spec"]["template"]["spec"]["containers"][0]["args"][1] == "s3://b/in2"
    assert [m for m, _ in api.calls] == ["PATCH", "DELETE", "GET", "PATCH"]


def test_other_kinds_refused_as_immutable_stay_an_error() -> None:
    deployment = {**JOB, "apiVersion": "apps/v1", "kind": "Deployment"}
    with pytest.raises(ClusterError) as err:
        Cluster(FakeApi(refuse=[IMMUTABLE])).apply(deployment)
    assert err.value.status == 422 and "field is immutable" in str(err.value)


def test_a_refresh_of_an_object_the_apiserver_refuses_reports_drift_not_an_error() -> None:
    """Left an error, the refresh of every later plan failed and nothing could fix the resource."""
    api = FakeApi(refuse=[IMMUTABLE])
    api.objects["/apis/batch/v1/namespaces/inference/jobs/score"] = JOB  # live, as applied before the change
    assert Cluster(api).drift(JOB) == "changed"


def test_a_standby_pool_imported_by_id_asks_for_its_pool_instead_of_crashing() -> None:
    with pytest.raises(SpecError) as err:
        RESOURCES["infra_inference_standby_pool"].plan({"name": "warm"})
    assert err.value.paths == ["pool"]
