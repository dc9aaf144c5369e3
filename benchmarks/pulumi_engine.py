"""Seconds for `pulumi preview` and `pulumi up` of 1, 10 and 100 services through the real engine.

Against the local control plane (kwok nodes, so every Deployment rolls out),
with the CLI and the Kubernetes provider from tools/pulumi and a local state
backend. The baseline, measured in the same run on the same objects, is what
a GitOps user runs instead: `infra-inference render` (render_stack) plus a
server-side apply of each object with the Kubernetes client, one request per
object, without waiting for rollouts.

Run: .venv/bin/python benchmarks/pulumi_engine.py [counts...]   (default 1 10 100)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pulumi import automation as auto  # noqa: E402

import infra_inference as ii  # noqa: E402
from tests.support.controlplane import ControlPlane, cpu_nodes, find_binaries, gpu_pool_nodes  # noqa: E402
from infra_inference.render.stack import render_stack  # noqa: E402
from infra_inference.specs.pool import POOL_LABEL  # noqa: E402
from tests.support.pulumi_engine import engine_env, find_tools  # noqa: E402

POOL = {"cloud": "existing", "cluster": "c", "gpu_type": "l4", "max_nodes": 100,
        "sharing": {"strategy": "time-slicing", "replicas_per_gpu": 4}}


def service(i: int) -> dict[str, Any]:
    return {"gpu_fraction": 0.25, "model": {"uri": f"s3://m/{i}"}, "autoscale": {"max_replicas": 4}}


def document(n: int, ns: str) -> dict[str, Any]:
    return {"platform": {"namespace": ns}, "pools": {"gpu": POOL},
            "services": {f"svc-{i}": {"pool": "gpu", **service(i)} for i in range(n)}}


def program(n: int, ns: str) -> None:
    ii.InferencePlatform("platform", {"namespace": ns})
    pool = ii.GpuPool("gpu", POOL)
    for i in range(n):
        ii.InferenceService(f"svc-{i}", {"pool": pool, "namespace": ns, **service(i)})


def stack(tools: Path, env: dict[str, str], work: Path, n: int, ns: str) -> auto.Stack:
    opts = auto.LocalWorkspaceOptions(
        work_dir=str(work), pulumi_home=env["PULUMI_HOME"], env_vars=env, secrets_provider="passphrase",
        pulumi_command=auto.PulumiCommand(root=str(tools.parent)),
        project_settings=auto.ProjectSettings(name=f"bench{n}", runtime="python",
                                              backend=auto.ProjectBackend(url=env["PULUMI_BACKEND_URL"])))
    return auto.create_stack("bench", project_name=f"bench{n}", program=lambda: program(n, ns), opts=opts)


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def apply_all(cp: ControlPlane, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ordered = sorted(objects, key=lambda o: o["kind"] != "Namespace")
    for o in ordered:
        cp.apply(o)
    return ordered


def main(counts: list[int]) -> None:
    cp = ControlPlane(find_binaries())
    cp.start()
    try:
        biggest = max(counts)
        # Replicas start at min 1 on a quarter GPU: 4 per 4-slot node; gateways and autoscalers on CPU nodes.
        cp.add_nodes([*gpu_pool_nodes("gpu", nodes=max(1, -(-biggest // 4)), gpu_slots=4, labels={POOL_LABEL: "gpu"}),
                      *cpu_nodes("cpu", nodes=max(2, -(-3 * biggest // 100)))])
        tools = find_tools()
        print(f"{'services':>8} {'objects':>7} {'render+apply s':>14} {'preview s':>9} {'up s':>7} "
              f"{'preview/base':>12} {'up/base':>8}")
        for n in counts:
            with tempfile.TemporaryDirectory() as tmp:
                env = engine_env(tools, Path(tmp), cp.kubeconfig)
                # Baseline: render and server-side apply the same objects, then remove them.
                ns = f"base-{n}"
                base_s, objects = timed(lambda: apply_all(cp, render_stack(document(n, ns))))
                for o in reversed(objects):
                    if o["kind"] != "PriorityClass":
                        cp.delete(o)
                s = stack(tools, env, Path(tmp), n, f"engine-{n}")
                preview_s, _ = timed(s.preview)
                up_s, up = timed(s.up)
                assert up.summary.result == "succeeded", up.stderr
                s.destroy()
                print(f"{n:>8} {len(objects):>7} {base_s:>14.2f} {preview_s:>9.2f} {up_s:>7.2f} "
                      f"{preview_s / base_s:>12.1f} {up_s / base_s:>8.1f}", flush=True)
    finally:
        cp.stop()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 10, 100])
