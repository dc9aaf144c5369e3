"""The two image recipes agree: tools/image (Debian, no registry) and docker/ (python:3.11-slim).

Both install tools/image/requirements.py's list and the project wheel, run
`infra-inference` as UID 10001 with the cache volume; the list leaves out the
Pulumi SDKs, which is only safe while no runtime entrypoint imports Pulumi.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIG = json.loads((REPO / "tools" / "image" / "config.json").read_text())


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    final = max(i for i, ln in enumerate(lines) if ln.upper().startswith("FROM "))
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines[final:]]


@pytest.mark.parametrize("flavour", ["cpu", "cuda"])
def test_dockerfile_runs_what_the_debian_image_runs(flavour: str) -> None:
    ins = _instructions(REPO / "docker" / f"Dockerfile.{flavour}")
    one = {k: v for k, v in ins if k in ("ENTRYPOINT", "CMD", "USER", "EXPOSE", "VOLUME")}
    assert json.loads(one["ENTRYPOINT"]) == CONFIG["Entrypoint"]
    assert json.loads(one["CMD"]) == CONFIG["Cmd"]
    assert one["USER"] == CONFIG["User"]
    assert {f"{one['EXPOSE']}/tcp"} == set(CONFIG["ExposedPorts"])
    assert {one["VOLUME"]} == set(CONFIG["Volumes"])
    env = dict(kv.split("=", 1) for _, v in ins if _ == "ENV" for kv in v.split())
    ours = dict(kv.split("=", 1) for kv in CONFIG["Env"] if not kv.startswith("PATH="))
    assert ours.items() <= env.items()


@pytest.mark.parametrize(("flavour", "extras"), [("cpu", ""), ("cuda", " --extra torch")])
def test_dockerfile_installs_the_requirements_list_and_the_wheel_without_deps(flavour: str, extras: str) -> None:
    text = re.sub(r"\\\n\s*", " ", (REPO / "docker" / f"Dockerfile.{flavour}").read_text())
    assert f"python tools/image/requirements.py{extras} pyproject.toml > /wheels/requirements.txt" in text
    assert "-r /wheels/requirements.txt" in text and "--no-deps /wheels/infra_inference-*.whl" in text
    build = (REPO / "tools" / "image" / "build.sh").read_text()
    assert '"$here/requirements.py" "$repo/pyproject.toml"' in build  # the Debian image: the same list, no extra
    assert "--uid 10001" in text and "--uid 10001" in build


def test_requirements_leave_out_pulumi_and_keep_the_runtime() -> None:
    out = subprocess.run([sys.executable, str(REPO / "tools" / "image" / "requirements.py")],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    names = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0] for r in out if r}
    assert not {n for n in names if n.startswith("pulumi")}
    assert {"pydantic", "typer", "httptools", "uvloop", "numpy", "kubernetes", "aiohttp", "boto3",
            "google-cloud-storage"} <= names


@pytest.mark.parametrize("command", ["serve", "gateway", "autoscaler", "dev", "render", "fetch", "batch"])
def test_runtime_commands_start_without_pulumi(command: str) -> None:
    # A meta-path hook that refuses pulumi: what the image (which has none) would see.
    code = ("import sys\n"
            "class NoPulumi:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0].startswith('pulumi'): raise ImportError('no pulumi in the image')\n"
            "sys.meta_path.insert(0, NoPulumi())\n"
            "from infra_inference.cli import main\n"
            f"sys.argv = ['infra-inference', {command!r}, '--help']\n"
            "main()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage" in done.stdout
