"""Seconds per InferenceService under Pulumi mocks for 10, 100 and 300 services.

Flat seconds-per-service means the program's cost grows linearly with its size.
Run: .venv/bin/python benchmarks/components_scale.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import infra_inference as ii  # noqa: E402
from tests.support.mocks import run_program  # noqa: E402


def program(n: int) -> None:
    ii.InferencePlatform("platform", {})
    pool = ii.GpuPool("gpu", {"cloud": "existing", "cluster": "c", "gpu_type": "l4", "max_nodes": 1000,
                              "sharing": {"strategy": "time-slicing", "replicas_per_gpu": 4}})
    for i in range(n):
        ii.InferenceService(f"svc-{i}", {"pool": pool, "gpu_fraction": 0.25, "model": {"uri": f"s3://m/{i}"},
                                         "autoscale": {"max_replicas": 4}})


def main() -> None:
    print(f"{'services':>8} {'resources':>9} {'total s':>8} {'s/service':>10} {'ratio vs 10':>11}")
    base = None
    for n in (10, 100, 300):
        start = time.perf_counter()
        run = run_program(lambda n=n: program(n))
        total = time.perf_counter() - start
        per = total / n
        base = base or per
        print(f"{n:>8} {len(run.resources):>9} {total:>8.2f} {per:>10.4f} {per / base:>11.2f}")


if __name__ == "__main__":
    main()
