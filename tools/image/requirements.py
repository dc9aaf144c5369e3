"""Print the runtime image's Python requirements, one per line, from pyproject.toml.

    python3 tools/image/requirements.py [--extra NAME ...] [pyproject.toml]

The image runs `serve`, `gateway`, `autoscaler`, `dev`, `render` and `fetch`,
none of which imports Pulumi (the package's top level loads names lazily), so
the declarative layer's Pulumi SDKs (~650 MB installed: pulumi-aws 271 MB,
pulumi-gcp 292 MB) stay out: the image gets the project's other dependencies
plus the extras named here. Both the Debian-built image (tools/image/build.sh)
and the Dockerfiles install exactly this list, with the project wheel
installed --no-deps.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

# What every image carries on top of the base dependencies: the runtime and the
# model sources beyond local files and http(s).
IMAGE_EXTRAS = ("runtime", "s3", "gcs")
# Needed only by Pulumi programs and the component provider, never in a pod.
DECLARATIVE_ONLY = re.compile(r"^pulumi(-|$)")


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


def image_requirements(pyproject: Path, extras: tuple[str, ...]) -> list[str]:
    """The base dependencies minus Pulumi's, then each extra's, without repeats."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"requirements.py: no extra {', '.join(unknown)} in {pyproject} (has {', '.join(optional)})")
    out: list[str] = []
    seen: set[str] = set()
    for req in [*project["dependencies"], *(r for e in extras for r in optional[e])]:
        name = _name(req)
        if DECLARATIVE_ONLY.match(name) or name in seen:
            continue
        seen.add(name)
        out.append(req)
    return out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", action="append", default=[], help="an extra beyond " + ", ".join(IMAGE_EXTRAS))
    parser.add_argument("pyproject", nargs="?", type=Path, default=Path(__file__).resolve().parents[2] / "pyproject.toml")
    args = parser.parse_args(argv)
    print("\n".join(image_requirements(args.pyproject, (*IMAGE_EXTRAS, *args.extra))))


if __name__ == "__main__":
    main(sys.argv[1:])
