"""Bad tensors cost a 400 and little memory or time: shapes, element types, strings, sizes."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from typing import Any

import numpy as np
import pytest

from infra_inference.runtime.server import codec
from infra_inference.runtime.server.codec import TensorLimits
from infra_inference.runtime.server.errors import BadRequest
from tests.runtime.server.support import post, request, server_in_thread


def _v2(shape: list[int], datatype: str, data: Any) -> bytes:
    return json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": data}]}).encode()


# The body: one 20,000-character string and 10,000 empty ones (~60 KB).
STRINGS = ["a" * 20_000] + [""] * 10_000


def test_strings_decode_into_an_object_array_without_padding_to_the_longest() -> None:
    tracemalloc.start()
    try:
        decoded = codec.decode_v2(_v2([len(STRINGS)], "BYTES", STRINGS))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    array = decoded.inputs["x"]
    assert array.dtype == object and array[0] == STRINGS[0] and array[1] == ""
    # Fixed-width unicode would be 10,001 x 20,000 x 4 bytes = 800 MB.
    assert peak < 5 * 2**20, peak


def test_v1_strings_are_an_object_array_too() -> None:
    body = json.dumps({"instances": STRINGS}).encode()
    tracemalloc.start()
    try:
        array = codec.decode_v1(body).inputs["instances"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert array.dtype == object and array.shape == (len(STRINGS),) and peak < 5 * 2**20


@pytest.mark.parametrize(
    ("datatype", "data", "named"),
    [
        ("BYTES", [1, "a"], "integer"),
        ("BYTES", [None, "a"], "null"),
        ("FP32", [1.0, True], "boolean"),
        ("FP32", [1.0, "2.0"], "string"),
        ("INT32", [1, 2.0], "float"),
        ("BOOL", [True, 1], "integer"),
    ],
)
def test_elements_of_the_wrong_type_are_refused_not_coerced(datatype: str, data: list[Any], named: str) -> None:
    with pytest.raises(BadRequest, match=f"holds {named} values, not {datatype}"):
        codec.decode_v2(_v2([2], datatype, data))


@pytest.mark.parametrize("instances", [[1, "a"], [True, 1.0], [[1, 2], ["a", "b"]]])
def test_v1_instances_of_mixed_kinds_are_refused(instances: list[Any]) -> None:
    with pytest.raises(BadRequest, match="one kind only"):
        codec.decode_v1(json.dumps({"instances": instances}).encode())


def test_v1_keeps_large_integers_exact_or_refuses_them() -> None:
    assert codec.decode_v1(b'{"instances": [-1, 9007199254740993]}').inputs["instances"].tolist() == [
        -1, 9007199254740993]
    with pytest.raises(BadRequest, match="outside the int64 range"):
        codec.decode_v1(b'{"instances": [-1, 9223372036854775808]}')


@pytest.mark.parametrize(
    "shape", [[0, 2**63], [1] * 65, [0, 2**62, 2**62], [2**64], [0] * 33], ids=["2^63", "65-dims", "2^62x2^62", "2^64", "33-dims"]
)
def test_absurd_shapes_are_a_bad_request(shape: list[int]) -> None:
    with pytest.raises(BadRequest, match=r"inputs\[0\]\.shape"):
        codec.decode_v2(_v2(shape, "FP32", []))


def test_absurd_shapes_get_400_from_a_live_server() -> None:
    with server_in_thread(model="echo") as (port, _):
        for shape in ([0, 2**63], [1] * 65, [0, 2**62, 2**62]):
            reply = request(port, "POST", "/v2/models/echo/infer", _v2(shape, "FP32", []))
            assert reply.status == 400 and "shape" in reply.json()["error"], (shape, reply.body)


def test_tensors_past_the_element_and_character_limits_are_refused() -> None:
    limits = TensorLimits(max_elements=100, max_chars=1000)
    with pytest.raises(BadRequest, match="max_tensor_elements=100"):
        codec.decode_v2(_v2([101], "FP32", [0.0] * 101), limits)
    with pytest.raises(BadRequest, match="max_tensor_chars=1000"):
        codec.decode_v2(_v2([2], "BYTES", ["a" * 600, "b" * 600]), limits)
    with pytest.raises(BadRequest, match="max_tensor_elements=100"):
        codec.decode_v1(json.dumps({"instances": [[0.0] * 11] * 10}).encode(), limits)
    assert codec.decode_v2(_v2([2], "BYTES", ["a" * 500, "b" * 500]), limits).inputs["x"].tolist() == [
        "a" * 500, "b" * 500]


def test_nested_data_decodes_row_major_and_ragged_data_is_refused() -> None:
    decoded = codec.decode_v2(_v2([2, 2], "BYTES", [["a", "b"], ["c", "d"]]))
    assert decoded.inputs["x"].tolist() == [["a", "b"], ["c", "d"]]
    assert codec.decode_v2(_v2([2, 2], "INT8", [[1, 2], [3, 4]])).inputs["x"].dtype == np.int8
    with pytest.raises(BadRequest, match="ragged"):
        codec.decode_v2(_v2([3], "BYTES", [["a"], ["b", "c"]]))
    with pytest.raises(BadRequest, match="ragged"):  # a list beside a scalar
        codec.decode_v1(json.dumps({"instances": [[1, 2], 3]}).encode())


def test_a_large_body_is_decoded_off_the_event_loop_so_probes_stay_fast() -> None:
    values = [0.5] * 6_000_000  # ~25 MB of JSON: a second or more to decode and encode
    body = _v2([len(values)], "FP64", values)
    with server_in_thread(model="echo", max_request_bytes=64 * 2**20, max_tensor_elements=2**23) as (port, _):
        answer: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: answer.update(
            status=request(port, "POST", "/v2/models/echo/infer", body, timeout_s=120).status))
        start = time.monotonic()
        worker.start()
        slowest = 0.0
        while worker.is_alive():
            probe_start = time.monotonic()
            assert request(port, "GET", "/readyz", timeout_s=30).status == 200
            slowest = max(slowest, time.monotonic() - probe_start)
            time.sleep(0.02)
        took = time.monotonic() - start
        assert answer["status"] == 200
        # A probe waits for the GIL at times (the codec thread holds it through one C call: an
        # orjson parse, a slice), never through the whole decode and encode as on the loop.
        assert slowest < took / 2, (slowest, took)  # on the loop: 0.9 x took here


def test_small_bodies_still_answer_inline() -> None:
    with server_in_thread(model="echo") as (port, _):
        reply = post(port, "/v2/models/echo/infer", {"inputs": [{"name": "s", "shape": [2], "datatype": "BYTES",
                                                                  "data": ["x", ""]}]})
        assert reply.status == 200 and reply.json()["outputs"][0]["data"] == ["x", ""]
