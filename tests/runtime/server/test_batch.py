"""`infra-inference batch` as the batch-mode Job runs it: real process, env settings, files in and out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from infra_inference.render import render_stack


def job_args() -> tuple[list[str], dict[str, str]]:
    objects = render_stack({"services": {"score": {
        "mode": "batch", "model": {"uri": "pkg.mod:Echo", "format": "python"},
        "batch": {"input_uri": "IN", "output_uri": "OUT"}, "runtime": {"max_concurrency": 2, "max_queue": 1}}}})
    [job] = [o for o in objects if o["kind"] == "Job"]
    server = job["spec"]["template"]["spec"]["containers"][0]
    return server["args"], {e["name"]: e["value"] for e in server["env"]}


def test_batch_job_answers_every_line_in_order_and_reports_bad_ones(tmp_path: Path) -> None:
    args, env = job_args()
    assert args[0] == "batch"
    lines = [json.dumps({"instances": [[i, i + 1]]}) for i in range(25)]
    lines.insert(3, "{not json")
    lines.append(json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [7.0]}]}))
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    argv = [a.replace("IN", str(tmp_path / "in.jsonl")).replace("OUT", str(tmp_path / "out" / "answers.jsonl"))
            for a in args]
    # The rendered env names a user class; the test swaps in the built-in echo model.
    env = {**os.environ, **env, "INFRA_INFERENCE_MODEL": "echo", "INFRA_INFERENCE_CACHE_DIR": str(tmp_path / "c")}
    proc = subprocess.run([sys.executable, "-m", "infra_inference", *argv], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    answers = [json.loads(a) for a in (tmp_path / "out" / "answers.jsonl").read_text().splitlines()]
    assert len(answers) == len(lines)
    assert "error" in answers[3]
    echoed = [a["predictions"] for a in answers[:3] + answers[4:-1]]
    assert echoed == [[[i, i + 1]] for i in range(25)]
    assert answers[-1]["outputs"][0]["data"] == [7.0]
    assert "27 records, 1 rejected" in proc.stdout
