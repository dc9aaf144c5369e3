"""JSON bodies <-> tensors for the Open Inference Protocol (v2) and KServe v1.

Decoding is strict: every way a body can be wrong raises ``BadRequest`` with a
message naming the field, and nothing else (the fuzz test holds it to that).
Values are never silently coerced: 1.5 is not an INT32, true is not an FP32.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from infra_inference.runtime.server.errors import BadRequest, ModelFailed
from infra_inference.runtime.server.model import InferRequest, Tensors

# OIP datatype -> numpy dtype, and the numpy kinds a JSON value may arrive as.
_DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_DATATYPES: dict[np.dtype[Any], str] = {dt: name for name, dt in _DTYPES.items()}
_ACCEPTED_KINDS = {"b": "b", "u": "iu", "i": "iu", "f": "iuf", "O": "U"}
_NUMPY_OPT = orjson.OPT_SERIALIZE_NUMPY
# Up to this many values, a flat list of JSON numbers for a float datatype is checked in Python
# and converted with one numpy call (each numpy call costs microseconds on a cold cache, and
# small requests are where the server's own overhead shows); beyond it numpy checks faster.
_SMALL_FLAT = 64


def _load_object(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"body must be a JSON object, got {type(doc).__name__}")
    return doc


def _as_array(data: Any, where: str) -> np.ndarray:
    if not isinstance(data, list):
        raise BadRequest(f"{where} must be a list")
    try:
        return np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"{where} must be a rectangular (not ragged) array of scalars") from None


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        raise BadRequest(f"{where}.shape must be a list of non-negative integers")
    return tuple(value)


def _decode_tensor(doc: Any, where: str) -> tuple[str, np.ndarray]:
    if not isinstance(doc, dict):
        raise BadRequest(f"{where} must be an object with name, shape, datatype and data")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name must be a non-empty string")
    shape = _shape(doc.get("shape"), where)
    datatype = doc.get("datatype")
    dtype = _DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise BadRequest(f"{where}.datatype must be one of {', '.join(_DTYPES)}, got {datatype!r}")
    data = doc.get("data")
    expected = math.prod(shape)
    if (
        dtype.kind == "f"
        and type(data) is list
        and len(data) == expected <= _SMALL_FLAT
        and all(type(v) is float or type(v) is int for v in data)  # not bool: True is no FP32
    ):
        return name, np.array(data, dtype=dtype).reshape(shape)  # orjson's numbers all fit a double
    raw = _as_array(data, f"{where}.data")
    if raw.size != expected:
        raise BadRequest(f"{where}.data has {raw.size} elements but shape {list(shape)} needs {expected}")
    if raw.size and raw.dtype.kind not in _ACCEPTED_KINDS[dtype.kind]:
        raise BadRequest(f"{where}.data holds {_kind_name(raw)} values, not {datatype}")
    if dtype.kind in "iu" and raw.size:
        info = np.iinfo(dtype)
        if raw.min() < info.min or raw.max() > info.max:
            raise BadRequest(f"{where}.data has values outside the {datatype} range [{info.min}, {info.max}]")
    if dtype.kind == "O":
        # From the JSON strings themselves: numpy's fixed-width str arrays drop trailing NULs ("\x00" -> "").
        return name, np.array(doc["data"], dtype=object).reshape(shape)
    return name, raw.astype(dtype, copy=False).reshape(shape)


def _kind_name(raw: np.ndarray) -> str:
    return {"b": "boolean", "i": "integer", "u": "integer", "f": "float", "U": "string"}.get(
        raw.dtype.kind, "mixed or non-scalar"
    )


def decode_v2(body: bytes) -> InferRequest:
    """Decode an OIP ``POST /v2/models/{name}/infer`` body.

    Raises:
        BadRequest: The body is not a valid inference request.
    """
    doc = _load_object(body)
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("inputs must be a non-empty list of tensors")
    tensors: Tensors = {}
    for i, item in enumerate(inputs):
        name, array = _decode_tensor(item, f"inputs[{i}]")
        if name in tensors:
            raise BadRequest(f"inputs[{i}].name {name!r} is used twice")
        tensors[name] = array
    parameters = doc.get("parameters", {})
    if not isinstance(parameters, dict):
        raise BadRequest("parameters must be an object")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest("id must be a string")
    return InferRequest(tensors, parameters, request_id)


def decode_v1(body: bytes) -> InferRequest:
    """Decode a KServe v1 ``:predict`` body; the instances become the tensor ``instances``.

    Raises:
        BadRequest: The body is not ``{"instances": [...]}`` with a rectangular array.
    """
    doc = _load_object(body)
    raw = _as_array(doc.get("instances"), "instances")
    if raw.size == 0:
        raise BadRequest("instances must not be empty")
    if raw.dtype.kind not in "biufU":
        raise BadRequest("instances must hold numbers, booleans or strings")
    return InferRequest({"instances": raw})


def _output(name: str, value: Any) -> dict[str, Any]:
    array = np.asarray(value)
    datatype = _DATATYPES.get(array.dtype) or ("BYTES" if array.dtype.kind == "U" else None)
    if datatype is None:
        raise ModelFailed(f"model output {name!r} has dtype {array.dtype}, which OIP cannot carry")
    # orjson writes numeric arrays natively (fast; ravel gives it the contiguous array it
    # needs); strings go through Python lists.
    data = array.ravel().tolist() if datatype == "BYTES" else array.ravel()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def encode_v2(model_name: str, request: InferRequest, outputs: Tensors) -> bytes:
    """Serialize a model's outputs as an OIP inference response."""
    doc: dict[str, Any] = {"model_name": model_name, "outputs": [_output(k, v) for k, v in outputs.items()]}
    if request.id is not None:
        doc["id"] = request.id
    return orjson.dumps(doc, option=_NUMPY_OPT)


def encode_v1(outputs: Tensors) -> bytes:
    """Serialize the first output tensor as KServe v1 ``predictions``."""
    if not outputs:
        raise ModelFailed("model returned no outputs")
    first = np.asarray(next(iter(outputs.values())))
    if first.dtype.kind in "OU":
        return orjson.dumps({"predictions": first.tolist()})
    return orjson.dumps({"predictions": np.ascontiguousarray(first)}, option=_NUMPY_OPT)


def encode_json(doc: Any) -> bytes:
    """Serialize a small control-plane document (metadata, errors)."""
    return orjson.dumps(doc)
