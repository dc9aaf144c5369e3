"""`infra-inference batch` as the batch-mode Job runs it: real processes, env settings, a real S3-compatible store.

The store is moto's server mode on 127.0.0.1 (tests/support/objectstore.py);
the processes get the rendered Job's args and env, with the model swapped for
the built-in echo model, and JOB_COMPLETION_INDEX as an Indexed Job sets it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra_inference.render import render_stack
from tests.support.examples import rendered_objects
from tests.support.objectstore import S3Server, s3_server

pytest.importorskip("moto.server", reason="needs the test extra (moto[server])")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


def _job(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    [job] = [o for o in objects if o["kind"] == "Job"]
    server = job["spec"]["template"]["spec"]["containers"][0]
    return job, server["args"], {e["name"]: e["value"] for e in server["env"] if "value" in e}


def _run(args: list[str], env: dict[str, str], extra_env: dict[str, str], tmp_path: Path,
         index: int = 0) -> subprocess.Popen[str]:
    # The rendered env names the model; the test swaps in the built-in echo model.
    env = {**os.environ, **env, **extra_env, "INFRA_INFERENCE_MODEL": "echo", "INFRA_INFERENCE_MODEL_URI": "",
           "INFRA_INFERENCE_CACHE_DIR": str(tmp_path / "c"), "JOB_COMPLETION_INDEX": str(index)}
    return subprocess.Popen([sys.executable, "-m", "infra_inference", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out


def _lines(s3: S3Server, bucket: str, key: str) -> list[Any]:
    body = s3.client().get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines()]


def test_batch_job_answers_every_line_in_order_and_reports_bad_ones(s3: S3Server, tmp_path: Path) -> None:
    objects = render_stack({"services": {"score": {
        "mode": "batch", "model": {"uri": "pkg.mod:Echo", "format": "python"},
        "batch": {"input_uri": "s3://jobs-in/in.jsonl", "output_uri": "s3://jobs-out/answers.jsonl"},
        "runtime": {"max_concurrency": 2, "max_queue": 1}}}})
    job, args, env = _job(objects)
    assert args[0] == "batch"
    lines = [json.dumps({"instances": [[i, i + 1]]}) for i in range(25)]
    lines.insert(3, "{not json")
    lines.append(json.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [7.0]}]}))
    client = s3.client()
    for bucket in ("jobs-in", "jobs-out"):
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket="jobs-in", Key="in.jsonl", Body=("\n".join(lines) + "\n").encode())
    out = _finish(_run(args, env, s3.env, tmp_path))
    answers = _lines(s3, "jobs-out", "answers.jsonl")
    assert len(answers) == len(lines)
    assert "error" in answers[3]
    echoed = [a["predictions"] for a in answers[:3] + answers[4:-1]]
    assert echoed == [[[i, i + 1]] for i in range(25)]
    assert answers[-1]["outputs"][0]["data"] == [7.0]
    assert "27 records, 1 rejected" in out


def test_multi_tenant_example_batch_job_works_as_shipped(s3: S3Server, tmp_path: Path) -> None:
    """The example's Job (s3:// prefixes, parallelism 4): four shards, each its part, together every record."""
    job, args, env = _job(rendered_objects("multi-tenant-priorities"))
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 4
    client = s3.client()
    client.create_bucket(Bucket="research")
    records = [json.dumps({"instances": [[i]]}) for i in range(30)]
    # Two input objects and a marker file, as a data pipeline leaves them.
    client.put_object(Bucket="research", Key="in/part-a.jsonl", Body="\n".join(records[:17]).encode())
    client.put_object(Bucket="research", Key="in/part-b.jsonl", Body="\n".join(records[17:]).encode())
    client.put_object(Bucket="research", Key="in/_SUCCESS", Body=b"")
    procs = [_run(args, env, s3.env, tmp_path, index) for index in range(4)]
    outs = [_finish(p) for p in procs]
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="research", Prefix="out/")["Contents"])
    assert keys == [f"out/part-0000{i}-of-00004.jsonl" for i in range(4)]
    answers = [a for k in keys for a in _lines(s3, "research", k)]
    assert [a["predictions"] for a in answers] == [[[i]] for i in range(30)]  # every record once, in order
    assert sorted(int(o.split()[0]) for o in outs) == [7, 7, 8, 8]  # 30 records in 4 contiguous shards


def test_credentials_directory_signs_object_store_calls(s3: S3Server, tmp_path: Path) -> None:
    objects = render_stack({"services": {"score": {
        "mode": "batch", "model": {"uri": "pkg.mod:Echo", "format": "python"},
        "batch": {"input_uri": "s3://creds-in/in.jsonl", "output_uri": "s3://creds-out/",
                  "credentials_secret": "batch-creds"}}}})
    job, args, env = _job(objects)
    mount = args[args.index("--credentials-dir") + 1]
    creds = tmp_path / "creds"  # what Kubernetes mounts at `mount` from the Secret
    creds.mkdir()
    (creds / "aws_access_key_id").write_text(s3.access_key_id)
    (creds / "aws_secret_access_key").write_text(s3.secret_access_key)
    args = [str(creds) if a == mount else a for a in args]
    client = s3.client()
    for bucket in ("creds-in", "creds-out"):
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket="creds-in", Key="in.jsonl", Body=b'{"instances": [[1]]}\n')
    # No keys in the environment: boto3 would fail with NoCredentialsError without the directory's.
    no_keys = {"AWS_ENDPOINT_URL": s3.endpoint, "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "",
               "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
               "AWS_CONFIG_FILE": str(tmp_path / "none")}
    _finish(_run(args, env, no_keys, tmp_path))
    assert _lines(s3, "creds-out", "part-00000-of-00001.jsonl") == [{"predictions": [[1]]}]
