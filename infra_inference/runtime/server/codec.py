"""JSON bodies <-> tensors for the Open Inference Protocol (v2) and KServe v1.

Decoding is strict: every way a body can be wrong raises ``BadRequest`` with a
message naming the field, and nothing else (the fuzz test holds it to that).
Values are never silently coerced: 1.5 is not an INT32, true is not an FP32.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson

from infra_inference.runtime.server.errors import BadRequest, ModelFailed
from infra_inference.runtime.server.model import InferRequest, Tensors

# OIP datatype -> numpy dtype, and the Python types a JSON value of it may arrive as.
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
# type(True) is bool, not int: a boolean is never a number here, nor a number a string.
_ACCEPTED_TYPES: dict[str, frozenset[type]] = {"b": frozenset({bool}), "i": frozenset({int}), "u": frozenset({int}),
                                               "f": frozenset({int, float}), "O": frozenset({str})}
# KServe v1 has no datatypes: what each mix of JSON scalars becomes (numpy's own choice is lossy:
# [-1, 2**63] would become float64).
_V1_DTYPES: dict[frozenset[type], np.dtype[Any]] = {
    frozenset({bool}): np.dtype(np.bool_),
    frozenset({int}): np.dtype(np.int64),
    frozenset({float}): np.dtype(np.float64),
    frozenset({int, float}): np.dtype(np.float64),
}
_TYPE_NAMES = {bool: "boolean", int: "integer", float: "float", str: "string", type(None): "null", dict: "object"}
_NUMPY_OPT = orjson.OPT_SERIALIZE_NUMPY
# Up to this many values, a flat list of JSON numbers for a float datatype is checked in Python
# and converted with one numpy call (each numpy call costs microseconds on a cold cache, and
# small requests are where the server's own overhead shows); beyond it numpy checks faster.
_SMALL_FLAT = 64
# Dimensions of a tensor: numpy's own limit is 64; no model input comes near 32.
MAX_DIMS = 32
# Large tensors are checked, converted and encoded this many elements per call. A C call holds
# the GIL throughout, and a large body is decoded on a thread so that the event loop can answer
# probes meanwhile: in slices, the loop gets the GIL back every few ms (65,536 floats convert in
# ~3 ms) instead of after one 0.3 s call for 6 million.
_SLICE = 2**16


@dataclass(frozen=True, slots=True)
class TensorLimits:
    """How large one decoded tensor may be, whatever the body size allows.

    Attributes:
        max_elements: Elements per tensor (the product of its shape, zero dimensions
            counted as one, so ``[0, 2**62, 2**62]`` is refused like ``[2**62, 2**62]``).
        max_chars: Characters across one BYTES tensor's strings.
    """

    max_elements: int = 2**24
    max_chars: int = 2**26


def _load_object(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"body must be a JSON object, got {type(doc).__name__}")
    return doc


def _leaves(data: Any, where: str) -> tuple[list[Any], list[int], set[type]]:
    """The scalars of nested JSON lists in row-major order, the nesting's shape, and the scalars' types.

    Never through ``np.asarray``: numpy would make strings fixed-width, padding every one
    to the longest (one 20,000-character string among 10,000 empty ones: 800 MB).
    """
    if not isinstance(data, list):
        raise BadRequest(f"{where} must be a list")
    flat, dims = data, [len(data)]
    types = _types(flat)
    while list in types:
        # Lists mixed with scalars, or lists of different lengths: ragged either way.
        lengths = set(map(len, flat)) if len(types) == 1 else set()
        if len(lengths) != 1:
            raise BadRequest(f"{where} must be a rectangular (not ragged) array of scalars")
        dims.append(lengths.pop())
        flat = list(itertools.chain.from_iterable(flat))
        types = _types(flat)
    return flat, dims, types


def _slices(flat: list[Any]) -> Iterator[list[Any]]:
    return (flat[i : i + _SLICE] for i in range(0, len(flat), _SLICE))


def _types(flat: list[Any]) -> set[type]:
    if len(flat) <= _SLICE:
        return set(map(type, flat))
    types: set[type] = set()
    for part in _slices(flat):
        types.update(map(type, part))
    return types


def _array(flat: list[Any], dtype: np.dtype[Any]) -> np.ndarray:
    """``np.array(flat, dtype)``, one slice per call when large. Raises OverflowError for values out of range."""
    if len(flat) <= _SLICE:
        return np.array(flat, dtype=dtype)
    array = np.empty(len(flat), dtype=dtype)
    for i, part in enumerate(_slices(flat)):
        array[i * _SLICE : i * _SLICE + len(part)] = part
    return array


def _type_names(types: set[type]) -> str:
    return " and ".join(sorted(_TYPE_NAMES.get(t, t.__name__) for t in types))


def _shape(value: Any, where: str, limits: TensorLimits) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(d) is int and d >= 0 for d in value):
        raise BadRequest(f"{where}.shape must be a list of non-negative integers")
    if len(value) > MAX_DIMS:
        raise BadRequest(f"{where}.shape has {len(value)} dimensions; at most {MAX_DIMS}")
    # Zero dimensions count as one: numpy refuses [0, 2**62, 2**62] (its strides overflow) too.
    if math.prod(d or 1 for d in value) > limits.max_elements:
        raise BadRequest(f"{where}.shape {value} exceeds max_tensor_elements={limits.max_elements}")
    return tuple(value)


def _decode_tensor(doc: Any, where: str, limits: TensorLimits) -> tuple[str, np.ndarray]:
    if not isinstance(doc, dict):
        raise BadRequest(f"{where} must be an object with name, shape, datatype and data")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}.name must be a non-empty string")
    shape = _shape(doc.get("shape"), where, limits)
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
    flat, _, types = _leaves(data, f"{where}.data")
    if len(flat) != expected:
        raise BadRequest(f"{where}.data has {len(flat)} elements but shape {list(shape)} needs {expected}")
    if not types <= _ACCEPTED_TYPES[dtype.kind]:
        raise BadRequest(f"{where}.data holds {_type_names(types - _ACCEPTED_TYPES[dtype.kind])} values, "
                         f"not {datatype}")
    if dtype.kind == "O":
        return name, _strings(flat, f"{where}.data", limits).reshape(shape)
    try:
        return name, _array(flat, dtype).reshape(shape)
    except OverflowError:
        raise BadRequest(f"{where}.data has values outside the {datatype} range") from None


def _strings(flat: list[str], where: str, limits: TensorLimits) -> np.ndarray:
    """An object array of the strings themselves (no padding; numpy's str arrays also drop trailing NULs)."""
    chars = sum(sum(map(len, part)) for part in _slices(flat))
    if chars > limits.max_chars:
        raise BadRequest(f"{where} holds {chars} characters; max_tensor_chars={limits.max_chars}")
    return _array(flat, np.dtype(object))


def decode_v2(body: bytes, limits: TensorLimits = TensorLimits()) -> InferRequest:
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
        name, array = _decode_tensor(item, f"inputs[{i}]", limits)
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


def decode_v1(body: bytes, limits: TensorLimits = TensorLimits()) -> InferRequest:
    """Decode a KServe v1 ``:predict`` body; the instances become the tensor ``instances``.

    Numbers become int64 or float64, booleans bool, strings an object array of str.

    Raises:
        BadRequest: The body is not ``{"instances": [...]}`` with a rectangular array of one kind of scalar.
    """
    doc = _load_object(body)
    flat, dims, types = _leaves(doc.get("instances"), "instances")
    if not flat:
        raise BadRequest("instances must not be empty")
    if len(flat) > limits.max_elements or len(dims) > MAX_DIMS:
        raise BadRequest(f"instances exceed max_tensor_elements={limits.max_elements} or {MAX_DIMS} dimensions")
    if types <= {str}:
        return InferRequest({"instances": _strings(flat, "instances", limits).reshape(dims)})
    dtype = _V1_DTYPES.get(frozenset(types))
    if dtype is None:
        raise BadRequest(f"instances must hold numbers, booleans or strings, one kind only; got {_type_names(types)}")
    try:
        return InferRequest({"instances": _array(flat, dtype).reshape(dims)})
    except OverflowError:
        raise BadRequest(f"instances has numbers outside the {dtype} range") from None


def _output(name: str, value: Any) -> dict[str, Any]:
    array = np.asarray(value)
    datatype = _DATATYPES.get(array.dtype) or ("BYTES" if array.dtype.kind == "U" else None)
    if datatype is None:
        raise ModelFailed(f"model output {name!r} has dtype {array.dtype}, which OIP cannot carry")
    # orjson writes numeric arrays natively (fast; ravel gives it the contiguous array it
    # needs); strings go through Python lists.
    flat = array.ravel()
    data = _encoded(flat) if flat.size > _SLICE else flat.tolist() if datatype == "BYTES" else flat
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def _encoded(flat: np.ndarray) -> orjson.Fragment:
    """A large array as JSON, one slice per call (see ``_SLICE``)."""
    parts = [orjson.dumps(part.tolist() if part.dtype.kind in "OU" else part, option=_NUMPY_OPT)[1:-1]
             for part in np.array_split(flat, math.ceil(flat.size / _SLICE))]
    return orjson.Fragment(b"[" + b",".join(parts) + b"]")


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
