"""Examples run under mocks, every object they create passes strict Kubernetes schema validation,
and the render command's YAML equals what the Pulumi program creates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from infra_inference.render import render_stack
from tests.support.examples import EXAMPLES, EXAMPLES_DIR, rendered_objects, run_example

KUBERNETES_MINOR = "1.37.0"
# CRDs have no schema in the Kubernetes OpenAPI document.
CRD_KINDS = {"ScaledObject"}


def test_there_are_four_examples_each_with_pulumi_yaml_and_readme() -> None:
    assert set(EXAMPLES) >= {"quickstart", "gke-l4-fractional", "eks-a10g-standby", "multi-tenant-priorities"}
    for name in EXAMPLES:
        assert (EXAMPLES_DIR / name / "Pulumi.yaml").exists() and (EXAMPLES_DIR / name / "README.md").exists()


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_object_of_every_example_passes_strict_schema_validation(example: str) -> None:
    objects = rendered_objects(example)
    assert objects, example
    for o in objects:
        if o["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(o, KUBERNETES_MINOR, strict=True)


def test_strict_validation_catches_an_unknown_field() -> None:
    o = rendered_objects("quickstart")[0]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({**o, "spec": {"bogus": 1}}, KUBERNETES_MINOR, strict=True)


def test_render_document_and_pulumi_program_give_identical_objects() -> None:
    doc = yaml.safe_load((EXAMPLES_DIR / "quickstart" / "spec.yaml").read_text())
    key = lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])  # noqa: E731
    from_cli = sorted(render_stack(doc), key=key)
    from_pulumi = sorted(rendered_objects("quickstart"), key=key)
    assert [key(o) for o in from_cli] == [key(o) for o in from_pulumi]
    assert from_cli == from_pulumi


def test_render_command_writes_one_yaml_file_per_object(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    proc = subprocess.run([sys.executable, "-m", "infra_inference", "render",
                           str(EXAMPLES_DIR / "quickstart" / "spec.yaml"), "-o", str(out)],
                          capture_output=True, text=True, check=True)
    files = sorted(out.glob("*.yaml"))
    docs = [yaml.safe_load(f.read_text()) for f in files]
    doc = yaml.safe_load((EXAMPLES_DIR / "quickstart" / "spec.yaml").read_text())
    assert docs == render_stack(doc)
    assert f"wrote {len(files)} objects" in proc.stdout


def test_render_command_reports_every_problem_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({
        "pools": {"gpu": {"cloud": "existing", "cluster": "c", "gpu_type": "l4", "sharing": {"strategy": "none"}}},
        "services": {"a": {"pool": "gpu", "gpu_fraction": 0.25, "model": {"uri": "m"}},
                     "b": {"pool": "missing", "model": {"uri": "m"}}},
    }))
    proc = subprocess.run([sys.executable, "-m", "infra_inference", "render", str(bad), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "services.a.gpu_fraction" in proc.stderr and "services.b.pool: no pool named 'missing'" in proc.stderr


def test_multi_tenant_example_creates_quotas_and_a_batch_job() -> None:
    run = run_example("multi-tenant-priorities")
    quotas = {r.inputs["metadata"]["namespace"]: r.inputs["spec"]["hard"]
              for r in run.of_type("kubernetes:core/v1:ResourceQuota")}
    # gpu_quota is a total in GPUs: search's 8 are 4 whole GPUs and 4 x 7 slices of 1g.10gb.
    assert quotas["search"]["requests.nvidia.com/gpu"] == "4"
    assert quotas["search"]["requests.nvidia.com/mig-1g.10gb"] == "28"
    assert quotas["research"]["requests.nvidia.com/mig-1g.10gb"] == "112"
    assert quotas["research"]["requests.nvidia.com/gpu"] == "0"
    [job] = run.of_type("kubernetes:batch/v1:Job")
    pod = job.inputs["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "inference-batch"
    assert pod["containers"][0]["resources"]["requests"]["nvidia.com/mig-1g.10gb"] == "1"


def warm_up(tmp_path: Path, model_bytes: int, **standby: object) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run the warm-up DaemonSet's fetch command, as rendered, against a model on a local HTTP origin."""
    import http.server
    import threading

    (tmp_path / "model.bin").write_bytes(b"w" * model_bytes)
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}/model.bin"
        cache = tmp_path / "cache"
        doc = yaml.safe_load((EXAMPLES_DIR / "quickstart" / "spec.yaml").read_text())
        doc["standby"]["warm"].update(warm_models=[uri], **standby)
        [ds] = [o for o in render_stack(doc) if o["kind"] == "DaemonSet" and o["metadata"]["name"] == "warm-prepull"]
        [warm] = [c for c in ds["spec"]["template"]["spec"]["initContainers"] if c["name"] == "warm-models"]
        args = [a if a != warm["args"][2] else str(cache) for a in warm["args"]]  # the node path -> tmp
        return subprocess.run([sys.executable, "-m", "infra_inference", *args], capture_output=True, text=True), cache
    finally:
        server.shutdown()


def test_fetch_command_named_by_the_warm_up_daemonset_fills_the_cache(tmp_path: Path) -> None:
    done, cache = warm_up(tmp_path, 700)
    assert done.returncode == 0, done.stderr
    cached = [p for p in cache.rglob("model.bin")]
    assert len(cached) == 1 and cached[0].read_bytes() == b"w" * 700


def test_the_warm_up_keeps_the_cache_under_the_standby_pools_bound(tmp_path: Path) -> None:
    # A 2 MiB model into a cache bounded at 1 MiB: the warm-up fails naming the setting and leaves
    # nothing behind, as a replica with that bound would, rather than filling the node's disk.
    done, cache = warm_up(tmp_path, 2 * 2**20, model_cache_max_bytes=2**20)
    assert done.returncode == 1
    assert "model_cache_max_bytes" in done.stderr, done.stderr
    assert not list(cache.rglob("model.bin"))
