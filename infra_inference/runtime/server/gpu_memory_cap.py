"""GPU memory cap of a fractional replica (e.g. 0.25 of a GPU shared by time-slicing).

Time-slicing and MPS share a GPU's compute but not its memory: without a cap
the first replica's caching allocator can take all of it. The cap is applied
before the model loads, to every model the framework allocates for.
"""

from __future__ import annotations

import importlib.util
import logging

log = logging.getLogger(__name__)


def cap_gpu_memory(fraction: float) -> bool:
    """Limit PyTorch's allocator to ``fraction`` of each visible GPU.

    Returns:
        Whether a cap was applied (False without PyTorch, without a GPU, or at 1.0).
    """
    if fraction >= 1.0 or importlib.util.find_spec("torch") is None:
        return False
    import torch

    if not torch.cuda.is_available():
        return False
    for index in range(torch.cuda.device_count()):
        torch.cuda.set_per_process_memory_fraction(fraction, index)
    log.info("GPU memory capped at %.0f%% per device", fraction * 100)
    return True
