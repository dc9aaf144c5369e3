"""Property tests of the request decoders: any body is either a request or a BadRequest, never a crash."""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra_inference.runtime.server import codec
from infra_inference.runtime.server.errors import BadRequest
from infra_inference.runtime.server.model import InferRequest
from tests.runtime.server.support import request, server_in_thread

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
_DATATYPES = st.sampled_from(["BOOL", "INT8", "INT32", "INT64", "UINT8", "UINT64", "FP16", "FP32", "FP64", "BYTES", "X"])
_TENSORISH = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=4) | st.integers(),
        "shape": st.lists(st.integers(-2, 4), max_size=6) | _JSON,
        "datatype": _DATATYPES | _JSON,
        "data": st.lists(_SCALARS, max_size=8) | st.lists(st.lists(_SCALARS, max_size=3), max_size=3) | _JSON,
    },
)
# Shapes a decoder must refuse without trying: dimensions past int64 or whose product overflows
# once zeros are skipped, and more dimensions than numpy has; with data that matches their
# element count (often none), so the shape itself is what gets tested.
_WIDE_SHAPES = (
    st.lists(st.integers(0, 4), max_size=8)
    | st.lists(st.sampled_from([0, 1, 2, 2**31, 2**62, 2**63, 2**64]) | st.integers(0, 2**65), max_size=5)
    | st.lists(st.integers(0, 1), min_size=30, max_size=70)
)
_SHAPED_TENSOR = _WIDE_SHAPES.flatmap(
    lambda shape: st.fixed_dictionaries({
        "name": st.just("t"),
        "shape": st.just(shape),
        "datatype": _DATATYPES,
        "data": st.just([0] * math.prod(shape)) if math.prod(shape) <= 64 else st.lists(_SCALARS, max_size=4),
    })
)
_BODIES = (
    st.fixed_dictionaries({"inputs": st.lists(_SHAPED_TENSOR, min_size=1, max_size=2)})
    .map(lambda doc: json.dumps(doc).encode())
    | st.binary(max_size=64)
    | _JSON.map(lambda doc: json.dumps(doc).encode())
    | st.fixed_dictionaries({"inputs": st.lists(_TENSORISH, max_size=3)}, optional={"id": _JSON, "parameters": _JSON})
    .map(lambda doc: json.dumps(doc).encode())
    | st.fixed_dictionaries({"instances": _JSON}).map(lambda doc: json.dumps(doc).encode())
)


def _decode_or_bad_request(decode: Any, body: bytes) -> InferRequest | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # FP16 overflow to inf is a valid decode
            return decode(body)  # type: ignore[no-any-return]
    except BadRequest:
        return None


@settings(max_examples=400, deadline=None)
@given(_BODIES)
def test_v2_decoder_returns_a_request_or_raises_bad_request(body: bytes) -> None:
    decoded = _decode_or_bad_request(codec.decode_v2, body)
    if decoded is not None:
        assert decoded.inputs and all(isinstance(a, np.ndarray) for a in decoded.inputs.values())


@settings(max_examples=300, deadline=None)
@given(_BODIES)
def test_v1_decoder_returns_a_request_or_raises_bad_request(body: bytes) -> None:
    _decode_or_bad_request(codec.decode_v1, body)


_VALID = st.sampled_from(["INT32", "FP64", "BOOL", "BYTES"]).flatmap(
    lambda dt: st.tuples(
        st.just(dt),
        st.lists(
            {"INT32": st.integers(-(2**31), 2**31 - 1), "FP64": st.floats(allow_nan=False, allow_infinity=False),
             "BOOL": st.booleans(), "BYTES": st.text(max_size=4)}[dt],
            min_size=1,
            max_size=6,
        ),
    )
)


@settings(max_examples=200, deadline=None)
@given(_VALID)
def test_valid_tensors_survive_decode_then_encode(case: tuple[str, list[Any]]) -> None:
    datatype, data = case
    body = json.dumps({"inputs": [{"name": "t", "shape": [len(data)], "datatype": datatype, "data": data}]})
    decoded = codec.decode_v2(body.encode())
    out = json.loads(codec.encode_v2("m", decoded, decoded.inputs))["outputs"][0]
    assert out == {"name": "t", "datatype": datatype, "shape": [len(data)], "data": data}


def test_fuzzed_bodies_never_get_a_5xx_from_a_live_server() -> None:
    with server_in_thread(model="echo") as (port, _):

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(_BODIES, st.sampled_from(["/v2/models/echo/infer", "/v1/models/echo:predict"]))
        def check(body: bytes, path: str) -> None:
            reply = request(port, "POST", path, body)
            assert reply.status in (200, 400), (reply.status, reply.body)
            assert "error" in reply.json() or reply.status == 200

        check()
