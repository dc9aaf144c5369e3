"""`terraform plan` / `apply` / refreshed `plan` / `destroy` seconds for 1, 10 and 100 services.

The stack is the quickstart's shape (platform, one time-sliced pool, N autoscaled
services) applied by the real terraform CLI and our provider to the local
control plane (tools/controlplane). Baselines measured in the same run: the same
stack through `render_stack` (the pure planning and rendering all paths share)
and through the Pulumi components under mocks (benchmarks/components_scale.py's
measure). Flat seconds per service means linear cost.

Run: .venv/bin/python benchmarks/terraform_scale.py [--sizes 1 10 100]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import infra_inference as ii  # noqa: E402
from tests.support.controlplane import ControlPlane, find_binaries  # noqa: E402
from infra_inference.render import render_stack  # noqa: E402
from tests.support.mocks import run_program  # noqa: E402
from tests.support.terraform import Terraform, install_provider  # noqa: E402

POOL = {"cloud": "existing", "cluster": "c", "gpu_type": "l4", "max_nodes": 1000,
        "sharing": {"strategy": "time-slicing", "replicas_per_gpu": 4}}
HEAD = """terraform {
  required_providers {
    infra = { source = "infra-inference/infra-inference" }
  }
}
provider "infra" {
  kubeconfig_path = "%s"
}
resource "infra_inference_platform" "platform" {}
resource "infra_inference_gpu_pool" "gpu" {
  name     = "gpu"
  cloud    = "existing"
  cluster  = "c"
  gpu_type = "l4"
  max_nodes = 1000
  sharing  = { strategy = "time-slicing", replicas_per_gpu = 4 }
}
"""
SERVICE = """resource "infra_inference_service" "svc_%(i)d" {
  name         = "svc-%(i)d"
  namespace    = infra_inference_platform.platform.namespace
  pool         = infra_inference_gpu_pool.gpu.ref
  gpu_fraction = 0.25
  model        = { uri = "s3://m/%(i)d" }
  autoscale    = { max_replicas = 4 }
}
"""


def config(n: int, kubeconfig: Path) -> str:
    return HEAD % kubeconfig + "".join(SERVICE % {"i": i} for i in range(n))


def pulumi_program(n: int) -> None:
    ii.InferencePlatform("platform", {})
    pool = ii.GpuPool("gpu", POOL)
    for i in range(n):
        ii.InferenceService(f"svc-{i}", {"pool": pool, "gpu_fraction": 0.25, "model": {"uri": f"s3://m/{i}"},
                                         "autoscale": {"max_replicas": 4}})


def render_doc(n: int) -> dict:
    return {"platform": {}, "pools": {"gpu": POOL}, "services": {
        f"svc-{i}": {"pool": "gpu", "gpu_fraction": 0.25, "model": {"uri": f"s3://m/{i}"},
                     "autoscale": {"max_replicas": 4}} for i in range(n)}}


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100])
    sizes = parser.parse_args().sizes
    binary = shutil.which("terraform")
    if binary is None:
        sys.exit("terraform not on PATH")
    cp = ControlPlane(find_binaries(build=True))
    cp.start()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            install_provider(home)
            for n in sizes:
                work = Path(tmp) / f"n{n}"
                work.mkdir()
                (work / "main.tf").write_text(config(n, cp.kubeconfig))
                tf = Terraform(binary, home, work)
                tf.run("init", "-input=false")
                t_render = timed(lambda n=n: render_stack(render_doc(n)))
                t_pulumi = timed(lambda n=n: run_program(lambda: pulumi_program(n)))
                t_plan = timed(lambda: tf.run("plan", "-input=false", "-out=plan.bin"))
                t_apply = timed(lambda: tf.run("apply", "-input=false", "plan.bin"))
                t_replan = timed(lambda: tf.run("plan", "-input=false", "-detailed-exitcode"))
                t_destroy = timed(lambda: tf.run("destroy", "-auto-approve", "-input=false"))
                objects = len(render_stack(render_doc(n)))
                rows.append((n, objects, t_render, t_pulumi, t_plan, t_apply, t_replan, t_destroy))
                print(f"n={n}: {objects} objects, plan {t_plan:.2f}s apply {t_apply:.2f}s", flush=True)
    finally:
        cp.stop()
    print("\n| services | objects | render s | pulumi (mocks) s | tf plan s | tf apply s | tf plan, applied s "
          "| tf destroy s | apply s/service | apply / pulumi |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n, objects, render, pulumi, plan, apply, replan, destroy in rows:
        print(f"| {n} | {objects} | {render:.2f} | {pulumi:.2f} | {plan:.2f} | {apply:.2f} | {replan:.2f} | "
              f"{destroy:.2f} | {apply / n:.3f} | {apply / pulumi:.1f}x |")


if __name__ == "__main__":
    main()
