"""`safetensors-mlp`: a dense network whose weights come from a safetensors file.

Weights are ``layers.{i}.weight`` (``[out, in]``, the PyTorch ``nn.Linear``
layout) and ``layers.{i}.bias`` (``[out]``), with ReLU between layers. The
request carries one input tensor ``[rows, in_features]``; the answer is
``output`` ``[rows, out_features]``. Requests in a batch are stacked into
one matrix, so a batch costs one forward pass.

With PyTorch installed (the ``torch`` extra) the weights go to ``device``
(a GPU when ``auto`` finds one); without it the model runs on numpy on the CPU.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from infra_inference.runtime.server.loading import safetensors
from infra_inference.runtime.server.model import InferRequest, InvalidInput, ModelContext, Tensors

_LAYER = re.compile(r"layers\.(\d+)\.(weight|bias)")


class SafetensorsMLP:
    """Dense layers with ReLU, loaded with the concurrent safetensors reader, while the weights download."""

    streams_weights = True  # load() reads `context.weights` as it fills (see `Model`)

    def __init__(self, context: ModelContext) -> None:
        self._context = context
        self._layers: list[tuple[Any, Any]] = []
        self._torch: Any = None
        self._device = "cpu"

    def load(self) -> None:
        context = self._context
        if context.path is None:
            raise ValueError("safetensors-mlp needs --model-uri pointing at a .safetensors file")
        self._torch, self._device = _backend(context.settings.device)
        source = context.weights if context.weights is not None else _weights_file(context.path)
        start = time.perf_counter()
        layout = safetensors.read_layout(source)
        buffer = self._host_buffer(layout.data_bytes)
        placed: dict[str, Any] = {}
        placing_s = 0.0
        # Each layer goes to the device as soon as its bytes are in: from a download, the
        # copies overlap the rest of the download instead of following it.
        for name, array in safetensors.iter_tensors(source, layout, buffer):
            if _LAYER.fullmatch(name):
                placed_at = time.perf_counter()
                placed[name] = self._to_device(array)
                placing_s += time.perf_counter() - placed_at
        self._layers = _stack_layers(placed)
        context.phases["read"] = time.perf_counter() - start - placing_s
        context.phases["to_device"] = placing_s

    def _host_buffer(self, size: int) -> np.ndarray:
        if self._torch is not None and self._device.startswith("cuda"):
            # Pinned (page-locked) host memory: the host-to-device copy is DMA, no staging copy.
            return self._torch.empty(size, dtype=self._torch.uint8, pin_memory=True).numpy()
        return np.empty(size, dtype=np.uint8)

    def _to_device(self, array: np.ndarray) -> Any:
        if self._torch is None:
            return array.astype(np.float32, copy=False)
        return self._torch.from_numpy(array).to(self._device, self._torch.float32, non_blocking=True)

    def predict(self, batch: Sequence[InferRequest]) -> list[Tensors]:
        rows = [_single_input(r, self._layers[0][0].shape[1]) for r in batch]
        x = np.concatenate(rows, axis=0)
        y = self._forward_numpy(x) if self._torch is None else self._forward_torch(x)
        splits = np.cumsum([len(r) for r in rows])[:-1]
        return [{"output": part} for part in np.split(y, splits)]

    def _forward_numpy(self, x: np.ndarray) -> np.ndarray:
        for i, (weight, bias) in enumerate(self._layers):
            x = x @ weight.T + bias
            if i < len(self._layers) - 1:
                x = np.maximum(x, 0.0)
        return x

    def _forward_torch(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            h = torch.from_numpy(x).to(self._device)
            for i, (weight, bias) in enumerate(self._layers):
                h = torch.nn.functional.linear(h, weight, bias)
                if i < len(self._layers) - 1:
                    h = torch.relu(h)
            return h.cpu().numpy()


def _backend(device: str) -> tuple[Any, str]:
    try:
        import torch
    except ImportError:
        if device not in ("auto", "cpu"):
            raise ValueError(f"device {device!r} needs PyTorch (pip install 'infra-inference[torch]')") from None
        return None, "cpu"
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch, device


def _weights_file(path: Path) -> Path:
    if path.is_file():
        return path
    files = sorted(path.glob("*.safetensors"))
    if len(files) != 1:
        raise ValueError(f"{path}: expected exactly one .safetensors file, found {len(files)}")
    return files[0]


def _stack_layers(arrays: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(weight, bias) per layer, in order, shapes checked: numpy arrays or torch tensors alike."""
    found: dict[int, dict[str, Any]] = {}
    for name, array in arrays.items():
        match = _LAYER.fullmatch(name)
        if match:
            found.setdefault(int(match[1]), {})[match[2]] = array
    if not found or sorted(found) != list(range(len(found))):
        raise ValueError("weights must be named layers.0.weight, layers.0.bias, layers.1.weight, ...")
    layers = [(found[i].get("weight"), found[i].get("bias")) for i in range(len(found))]
    for i, (weight, bias) in enumerate(layers):
        if weight is None or bias is None or weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise ValueError(f"layers.{i}: need weight [out, in] and bias [out]")
        if i and weight.shape[1] != layers[i - 1][0].shape[0]:  # type: ignore[index]
            raise ValueError(f"layers.{i}.weight takes {weight.shape[1]} inputs but layers.{i - 1} gives {layers[i - 1][0].shape[0]}")  # type: ignore[index]
    return layers


def _single_input(request: InferRequest, width: int) -> np.ndarray:
    if len(request.inputs) != 1:
        raise InvalidInput(f"expected one input tensor, got {len(request.inputs)}")
    x = next(iter(request.inputs.values()))
    if x.ndim != 2 or x.shape[1] != width or x.dtype.kind not in "iuf":
        raise InvalidInput(f"input must be a numeric [rows, {width}] tensor, got {x.dtype} {list(x.shape)}")
    return x.astype(np.float32, copy=False)
