"""Print the requirements of some extras of pyproject.toml, one per line, for `pip install -r`.

The Dockerfile installs a role's dependencies from pyproject.toml alone, before any code is
copied, so that a code change rebuilds only the last layer. pyproject.toml stays the one
place the versions are written: this reads it (stdlib only: it runs before anything is
installed).

    python requirements.py api                  # base dependencies + the api extra
    python requirements.py train --only torch,torchvision
    python requirements.py train --exclude torch,torchvision
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path

# "fashion-tagger[worker-cpu]" inside an extra: that extra's requirements, recursively.
SELF_REFERENCE = re.compile(r"^fashion-tagger\[([^\]]+)\]$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = NAME.match(requirement.strip())
    if not match:
        raise ValueError(f"cannot read a package name from {requirement!r}")
    return canonical(match.group(0))


def requirements(pyproject: dict, extras: list[str]) -> list[str]:
    """Base dependencies plus every requirement of `extras`, self-references expanded, each
    once and in first-seen order."""
    project = pyproject["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    out: list[str] = list(project.get("dependencies", []))
    seen_extras: set[str] = set()

    def add(extra: str) -> None:
        if extra in seen_extras:
            return
        if extra not in optional:
            raise SystemExit(f"Unknown extra {extra!r}; choose one of: {', '.join(optional)}")
        seen_extras.add(extra)
        for requirement in optional[extra]:
            if match := SELF_REFERENCE.match(requirement.strip()):
                for inner in match.group(1).split(","):
                    add(inner.strip())
            elif requirement not in out:
                out.append(requirement)

    for extra in extras:
        add(extra)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("extras", help="comma-separated extras, e.g. api or worker-cpu,train")
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("--only", default="", help="keep only these package names")
    parser.add_argument("--exclude", default="", help="leave out these package names")
    args = parser.parse_args()
    with args.pyproject.open("rb") as handle:
        found = requirements(tomllib.load(handle), [e for e in args.extras.split(",") if e])
    only = {canonical(n) for n in args.only.split(",") if n}
    exclude = {canonical(n) for n in args.exclude.split(",") if n}
    for requirement in found:
        name = requirement_name(requirement)
        if (not only or name in only) and name not in exclude:
            print(requirement)


if __name__ == "__main__":
    main()
