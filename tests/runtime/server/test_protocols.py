"""OIP v2 and KServe v1 over real HTTP: round trips, metadata, health, and 4xx for bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from tests.runtime.server.support import post, request, server_in_thread, v2_body


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    with server_in_thread(model="echo") as (port, _):
        yield port


def test_v2_echo_round_trip_keeps_values_shape_datatype_and_id(echo_port: int) -> None:
    doc = {
        "id": "req-1",
        "inputs": [
            {"name": "a", "shape": [2, 2], "datatype": "INT32", "data": [1, 2, 3, 4]},
            {"name": "b", "shape": [3], "datatype": "BYTES", "data": ["x", "y", "z"]},
            {"name": "c", "shape": [1, 2], "datatype": "BOOL", "data": [[True, False]]},
        ],
    }
    reply = post(echo_port, "/v2/models/echo/infer", doc)
    assert reply.status == 200, reply.body
    body = reply.json()
    assert body["model_name"] == "echo" and body["id"] == "req-1"
    assert body["outputs"] == [
        {"name": "a", "datatype": "INT32", "shape": [2, 2], "data": [1, 2, 3, 4]},
        {"name": "b", "datatype": "BYTES", "shape": [3], "data": ["x", "y", "z"]},
        {"name": "c", "datatype": "BOOL", "shape": [1, 2], "data": [True, False]},
    ]


def test_v1_echo_round_trip(echo_port: int) -> None:
    reply = post(echo_port, "/v1/models/echo:predict", {"instances": [[1.5, 2.0], [3.0, 4.0]]})
    assert reply.status == 200
    assert reply.json() == {"predictions": [[1.5, 2.0], [3.0, 4.0]]}


def test_health_and_metadata_endpoints(echo_port: int) -> None:
    for path in ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/v2/models/echo/ready"):
        assert request(echo_port, "GET", path).status == 200, path
    assert request(echo_port, "GET", "/v2/models/echo").json()["name"] == "echo"
    assert request(echo_port, "GET", "/v2").json()["name"] == "infra-inference"
    assert request(echo_port, "GET", "/v2/models/other").status == 404
    assert request(echo_port, "GET", "/v2/models/other/ready").status == 404


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"inputs": []}', "non-empty list"),
        (b'{"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}]}', "needs 3"),
        (b'{"inputs": [{"name": "x", "shape": [2], "datatype": "INT32", "data": [1.5, 2]}]}', "not INT32"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "INT8", "data": [300]}]}', "outside the INT8 range"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": ["a"]}]}', "string values"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP8", "data": [1]}]}', "datatype must be one of"),
        (b'{"inputs": [{"name": "x", "shape": [-1], "datatype": "FP32", "data": [1]}]}', "non-negative"),
        (b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [[1], [2, 3]]}]}', "ragged"),
        (b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}], "parameters": 3}', "parameters"),
    ],
)
def test_malformed_v2_requests_get_400_saying_what_is_wrong(echo_port: int, body: bytes, fragment: str) -> None:
    reply = request(echo_port, "POST", "/v2/models/echo/infer", body)
    assert reply.status == 400
    assert fragment in reply.json()["error"]


def test_malformed_v1_requests_get_400(echo_port: int) -> None:
    for body in (b'{"instances": 3}', b'{"instances": []}', b'{"instances": [{"a": 1}]}', b"nope"):
        assert request(echo_port, "POST", "/v1/models/echo:predict", body).status == 400, body


def test_unknown_model_route_and_method(echo_port: int) -> None:
    assert post(echo_port, "/v2/models/resnet/infer", v2_body([1.0])).status == 404
    assert post(echo_port, "/v1/models/resnet:predict", {"instances": [1]}).status == 404
    assert post(echo_port, "/v3/whatever", {}).status == 404
    assert request(echo_port, "DELETE", "/v2/models/echo").status == 405


def test_oversized_body_gets_413() -> None:
    with server_in_thread(model="echo", max_request_bytes=1024) as (port, _):
        reply = post(port, "/v2/models/echo/infer", v2_body([1.0] * 1000))
        assert reply.status == 413


def _write_mlp(path: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    weights = {
        "layers.0.weight": rng.standard_normal((8, 4)).astype(np.float32),
        "layers.0.bias": rng.standard_normal(8).astype(np.float32),
        "layers.1.weight": rng.standard_normal((3, 8)).astype(np.float32),
        "layers.1.bias": rng.standard_normal(3).astype(np.float32),
    }
    save_file(weights, str(path))
    return weights


def _reference(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    h = np.maximum(x @ weights["layers.0.weight"].T + weights["layers.0.bias"], 0.0)
    return h @ weights["layers.1.weight"].T + weights["layers.1.bias"]


def test_safetensors_mlp_round_trips_v2_and_v1(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = _write_mlp(tmp_path / "mlp.safetensors", rng)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    with server_in_thread(model="safetensors-mlp", model_uri=str(tmp_path / "mlp.safetensors")) as (port, _):
        doc = {"inputs": [{"name": "x", "shape": [5, 4], "datatype": "FP32", "data": x.ravel().tolist()}]}
        reply = post(port, "/v2/models/safetensors-mlp/infer", doc)
        assert reply.status == 200, reply.body
        (output,) = reply.json()["outputs"]
        assert output["name"] == "output" and output["shape"] == [5, 3]
        np.testing.assert_allclose(np.reshape(output["data"], (5, 3)), _reference(weights, x), rtol=1e-5, atol=1e-5)

        v1 = post(port, "/v1/models/safetensors-mlp:predict", {"instances": x.tolist()})
        assert v1.status == 200
        np.testing.assert_allclose(v1.json()["predictions"], _reference(weights, x), rtol=1e-5, atol=1e-5)

        wrong_width = post(port, "/v1/models/safetensors-mlp:predict", {"instances": [[1.0, 2.0]]})
        assert wrong_width.status == 400 and "[rows, 4]" in wrong_width.json()["error"]


def test_user_model_class_is_served(tmp_path: Path) -> None:
    with server_in_thread(model="tests.runtime.server.user_model:Doubler", model_name="doubler") as (port, _):
        reply = post(port, "/v1/models/doubler:predict", {"instances": [1, 2, 3]})
        assert reply.status == 200 and reply.json() == {"predictions": [2, 4, 6]}
