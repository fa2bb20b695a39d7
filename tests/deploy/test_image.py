"""The image's inputs are pinned (issue 9): the base image by digest, and every Python package
it installs, transitive ones included, by deploy/constraints.txt, which must agree with
pyproject.toml and with the environment the tests run in."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
CONSTRAINTS = ROOT / "deploy" / "constraints.txt"
BUILD_BACKEND = {"setuptools", "wheel"}


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def runtime_requirements() -> list[Requirement]:
    project = pyproject()["project"]
    assert isinstance(project, dict)
    return [Requirement(spec) for spec in project["dependencies"]]


def pins() -> dict[str, str]:
    """``{canonical name: version}`` of constraints.txt; every line a comment or an exact pin."""
    found: dict[str, str] = {}
    for number, line in enumerate(CONSTRAINTS.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        pinned = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][A-Za-z0-9.+!-]*)", line)
        assert pinned, f"constraints.txt:{number}: {line!r} is not NAME==VERSION"
        name = canonicalize_name(pinned[1])
        assert name not in found, f"constraints.txt:{number}: {name} pinned twice"
        found[name] = pinned[2]
    return found


def closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution ``requirements`` pull in on this interpreter, by their installed
    metadata (markers evaluated, extras followed)."""
    seen: set[str] = set()
    todo = [(req, "") for req in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        key = name + "".join(f"[{e}]" for e in sorted(req.extras))
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        try:
            requires = distribution(req.name).requires or []
        except PackageNotFoundError as exc:  # the test environment lacks a runtime dependency
            raise AssertionError(f"{req.name} is required but not installed") from exc
        for spec in requires:
            dep = Requirement(spec)
            for wanted in ("", *req.extras):
                todo.append((dep, wanted))
    return {key for key in seen if "[" not in key}


def test_the_base_image_is_pinned_by_digest() -> None:
    froms = [
        line.split()[1]
        for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
        if line.upper().startswith("FROM ")
    ]
    assert froms, "no FROM in the Dockerfile"
    for image in froms:
        assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", image), image


def test_the_image_installs_with_the_constraints() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert "COPY deploy/constraints.txt" in text
    installs = [line for line in text.splitlines() if re.search(r"\bpip install\b", line)]
    assert installs
    for line in installs:
        assert "--constraint constraints.txt" in line, line
    # The build context admits only what the ignore file lets through.
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    assert "!deploy/constraints.txt" in ignore.splitlines()


@pytest.mark.parametrize("requirement", runtime_requirements(), ids=str)
def test_every_runtime_dependency_is_pinned_at_pyprojects_version(
    requirement: Requirement,
) -> None:
    specs = list(requirement.specifier)
    assert len(specs) == 1 and specs[0].operator == "==", f"{requirement}: pin it exactly"
    assert pins().get(canonicalize_name(requirement.name)) == specs[0].version, (
        f"{requirement} is not in deploy/constraints.txt at that version: rerun "
        "deploy/constraints.sh"
    )


def test_the_constraints_are_the_whole_runtime_closure_and_nothing_else() -> None:
    pinned = pins()
    needed = closure(runtime_requirements())
    assert set(pinned) >= BUILD_BACKEND
    # Complete: a package pulled in but not pinned would float in the image.
    assert needed - set(pinned) == set(), "rerun deploy/constraints.sh"
    # Nothing else: the dev extra (pytest, mypy, ...) stays out of the image.
    assert set(pinned) - needed - BUILD_BACKEND == set()
    # The versions the tests ran with are the ones the image gets (`make setup` installs
    # with these constraints too).
    drifted = {
        name: (distribution(name).version, pinned[name])
        for name in needed
        if distribution(name).version != pinned[name]
    }
    assert drifted == {}, "installed != pinned: reinstall with -c deploy/constraints.txt"
