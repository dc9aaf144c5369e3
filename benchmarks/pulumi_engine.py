"""Seconds for `pulumi preview` and `pulumi up` of 1, 10 and 100 services through the real engine.

Against the local control plane (kwok nodes, so every Deployment rolls out),
with the CLI and the Kubernetes provider from tools/pulumi and a local state
backend. The baseline, measured in the same run on the same objects, is what
a GitOps user runs instead: `infra-inference render` (render_stack) plus a
server-side apply of each object with the Kubernetes client, one request per
object, without waiting for rollouts.

`up` waits, as the Kubernetes provider does by default, for every Deployment's
rollout, so the CPU nodes are sized from the rendered requests: a pod left
Pending holds its Deployment's await until the provider's 10-minute timeout.
`--skip-await` annotates every object `pulumi.com/skipAwait: "true"` (a stack
transform, so the rendered objects stay as they are): `up` then measures the
engine and provider without the rollouts, like the baseline.

`--skip-checkpoints` sets PULUMI_SKIP_CHECKPOINTS: the engine then writes the
state once at the end instead of after every step. With the local backend each
checkpoint rewrites the whole state file, so an `up` of N objects writes
O(N^2) bytes: at 100 services (~1,400 objects) the CLI, not the provider or
the rollouts, was the bottleneck (one core busy, ~2.4 objects/s after 7 min).
Pulumi calls this unsafe: an interrupted update loses its record of what it made.

Run: .venv/bin/python benchmarks/pulumi_engine.py [--skip-await] [--skip-checkpoints] [counts...]
     (default counts 1 10 100)
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pulumi  # noqa: E402
from kubernetes.utils import parse_quantity  # noqa: E402
from pulumi import automation as auto  # noqa: E402

import infra_inference as ii  # noqa: E402
from tests.support.controlplane import ControlPlane, GpuNode, cpu_nodes, find_binaries, gpu_pool_nodes  # noqa: E402
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


def cpu_nodes_for(objects: list[dict[str, Any]]) -> int:
    """CPU nodes that hold every pod off the GPU pool at once, plus one node of headroom for surges.

    100 services: 2 gateways x 500m + 1 autoscaler x 100m each = 110 CPUs, 4 nodes of 32, + 1 = 5.
    The 3 nodes the first 100-service run had (96 CPUs) cannot schedule 14 CPUs of those pods:
    their Deployments never finish rolling out, and each await runs into the provider's
    10-minute timeout, which is why that run never finished.
    """
    cpus = 0.0
    for o in objects:
        if o["kind"] != "Deployment":
            continue
        pod = o["spec"]["template"]["spec"]
        if "nodeSelector" in pod:  # on the GPU pool's nodes
            continue
        per_pod = sum(float(parse_quantity(c["resources"]["requests"]["cpu"])) for c in pod["containers"])
        cpus += o["spec"].get("replicas", 1) * per_pod
    return math.ceil(cpus / float(parse_quantity(GpuNode.cpu))) + 1


def skip_await(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    if not args.type_.startswith("kubernetes:") or "metadata" not in args.props:
        return None
    meta = dict(args.props["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), "pulumi.com/skipAwait": "true"}
    return pulumi.ResourceTransformResult(props={**args.props, "metadata": meta}, opts=args.opts)


def program(n: int, ns: str, no_await: bool) -> None:
    if no_await:
        pulumi.runtime.register_resource_transform(skip_await)
    ii.InferencePlatform("platform", {"namespace": ns})
    pool = ii.GpuPool("gpu", POOL)
    for i in range(n):
        ii.InferenceService(f"svc-{i}", {"pool": pool, "namespace": ns, **service(i)})


def stack(tools: Path, env: dict[str, str], work: Path, n: int, ns: str, no_await: bool) -> auto.Stack:
    opts = auto.LocalWorkspaceOptions(
        work_dir=str(work), pulumi_home=env["PULUMI_HOME"], env_vars=env, secrets_provider="passphrase",
        pulumi_command=auto.PulumiCommand(root=str(tools.parent)),
        project_settings=auto.ProjectSettings(name=f"bench{n}", runtime="python",
                                              backend=auto.ProjectBackend(url=env["PULUMI_BACKEND_URL"])))
    return auto.create_stack("bench", project_name=f"bench{n}", program=lambda: program(n, ns, no_await), opts=opts)


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def apply_all(cp: ControlPlane, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ordered = sorted(objects, key=lambda o: o["kind"] != "Namespace")
    for o in ordered:
        cp.apply(o)
    return ordered


def main(counts: list[int], no_await: bool, skip_checkpoints: bool) -> None:
    cp = ControlPlane(find_binaries())
    cp.start()
    try:
        biggest = max(counts)
        # Replicas start at min 1 on a quarter GPU: 4 per 4-slot node; gateways and autoscalers on CPU nodes.
        cp.add_nodes([*gpu_pool_nodes("gpu", nodes=max(1, -(-biggest // 4)), gpu_slots=4, labels={POOL_LABEL: "gpu"}),
                      *cpu_nodes("cpu", nodes=cpu_nodes_for(render_stack(document(biggest, "sizing"))))])
        tools = find_tools()
        print(f"{'services':>8} {'objects':>7} {'render+apply s':>14} {'preview s':>9} {'up s':>7} "
              f"{'preview/base':>12} {'up/base':>8}")
        for n in counts:
            with tempfile.TemporaryDirectory() as tmp:
                env = engine_env(tools, Path(tmp), cp.kubeconfig)
                if skip_checkpoints:
                    env["PULUMI_SKIP_CHECKPOINTS"] = "true"
                # Baseline: render and server-side apply the same objects, then remove them.
                ns = f"base-{n}"
                base_s, objects = timed(lambda: apply_all(cp, render_stack(document(n, ns))))
                for o in reversed(objects):
                    if o["kind"] != "PriorityClass":
                        cp.delete(o)
                s = stack(tools, env, Path(tmp), n, f"engine-{n}", no_await)
                preview_s, _ = timed(s.preview)
                up_s, up = timed(s.up)
                assert up.summary.result == "succeeded", up.stderr
                s.destroy()
                print(f"{n:>8} {len(objects):>7} {base_s:>14.2f} {preview_s:>9.2f} {up_s:>7.2f} "
                      f"{preview_s / base_s:>12.1f} {up_s / base_s:>8.1f}", flush=True)
    finally:
        cp.stop()


if __name__ == "__main__":
    flags = {a for a in sys.argv[1:] if a.startswith("--")}
    main([int(a) for a in sys.argv[1:] if a not in flags] or [1, 10, 100], "--skip-await" in flags, "--skip-checkpoints" in flags)
