"""The node-local model cache's bound: one default for the services that read the cache and the
StandbyPool that warms it, so a warm-up never evicts what the replicas keep, nor keeps what they evict."""

from __future__ import annotations

# 50 GiB: on a 100 GB node boot disk (GKE's default) it leaves ~40 GB for images (a CUDA runtime
# image is ~10 GB) and the OS; a namespace whose models need more raises it on bigger disks.
MODEL_CACHE_MAX_BYTES = 50 * 2**30
MODEL_CACHE_MIN_BYTES = 2**20
