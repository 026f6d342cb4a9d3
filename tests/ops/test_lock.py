"""The lock files (`./dev lock` makes them from pyproject.toml) satisfy pyproject.toml: every
requirement of the project and of its dev extra has a pinned, hashed entry whose version it
accepts; the runtime lock (the image) pins what the development lock (the tests) pins."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import metadata

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.services import repo_root

ROOT = repo_root()
# Where the image and CI run: a Linux CPython 3.11 (the locks are universal, with markers).
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.11",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "platform_machine": "x86_64",
}


@dataclass(frozen=True)
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: tuple[str, ...]


def read_lock(text: str) -> dict[str, Pin]:
    """`name==version [; marker] --hash=...` entries (continuation lines joined, comments
    dropped) by canonical name; anything else in the file is an error."""
    text = re.sub(r"\\\n", " ", text)
    pins: dict[str, Pin] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        hashes = tuple(re.findall(r"--hash=(\S+)", line))
        requirement = Requirement(re.sub(r"\s--hash=\S+", "", line).strip())
        (spec,) = requirement.specifier  # exactly one `==`: anything looser is not a pin
        assert spec.operator == "==", line
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"{name} is pinned twice"
        pins[name] = Pin(name, Version(spec.version), requirement.marker, hashes)
    return pins


def unsatisfied(requirements: list[str], pins: dict[str, Pin]) -> list[str]:
    """Why `pins` does not satisfy `requirements` on the target platform; empty when it does."""
    problems = []
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(TARGET):
            continue
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{line}: not in the lock")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{line}: the lock has {pin.version}")
    for pin in pins.values():
        if not pin.hashes or not all(h.startswith("sha256:") for h in pin.hashes):
            problems.append(f"{pin.name}=={pin.version}: no sha256 hash")
    return problems


def project() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"runtime": data["dependencies"], "dev": data["optional-dependencies"]["dev"]}


def lock(name: str) -> dict[str, Pin]:
    return read_lock((ROOT / name).read_text())


def test_the_runtime_lock_satisfies_the_projects_dependencies() -> None:
    assert unsatisfied(project()["runtime"], lock("requirements.lock")) == []


def test_the_development_lock_satisfies_the_dependencies_and_the_dev_extra() -> None:
    requirements = project()
    pins = lock("requirements-dev.lock")
    assert unsatisfied(requirements["runtime"] + requirements["dev"], pins) == []


def test_the_image_gets_the_versions_the_tests_ran_on() -> None:
    runtime, development = lock("requirements.lock"), lock("requirements-dev.lock")
    assert set(runtime) <= set(development)
    differ = {n: (p.version, development[n].version) for n, p in runtime.items()}
    assert {n: v for n, v in differ.items() if v[0] != v[1]} == {}


def test_the_installed_packages_are_the_locked_versions() -> None:
    """The environment the tests run in was installed from the lock (./dev, .ci/run)."""
    drift = {}
    for pin in lock("requirements-dev.lock").values():
        if pin.marker is not None and not pin.marker.evaluate(TARGET):
            continue
        try:
            installed = metadata.version(pin.name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed == "missing" or Version(installed) != pin.version:
            drift[pin.name] = (str(pin.version), installed)
    assert drift == {}, "reinstall with ./dev install"


LOCK = """\
# made by hand for the test
django==5.2.19 \\
    --hash=sha256:aaaa
pillow==13.0.0 \\
    --hash=sha256:bbbb \\
    --hash=sha256:cccc
    # via imageservice
pywin32==312 ; sys_platform == 'win32' \\
    --hash=sha256:dddd
"""


def test_the_check_accepts_a_lock_that_satisfies_the_requirements() -> None:
    pins = read_lock(LOCK)
    assert pins["pillow"].hashes == ("sha256:bbbb", "sha256:cccc")
    assert unsatisfied(["Django>=5.2,<5.3", "Pillow>=11"], pins) == []
    # a requirement for another platform needs no entry
    assert unsatisfied(["colorama>=0.4; sys_platform == 'win32'"], pins) == []


@pytest.mark.parametrize(
    ("requirements", "lock_text", "problem"),
    [
        (["Django>=5.2,<5.3", "numpy>=2"], LOCK, "numpy>=2: not in the lock"),
        (["Pillow>=11,<13"], LOCK, "Pillow>=11,<13: the lock has 13.0.0"),
        ([], LOCK.replace("    --hash=sha256:aaaa\n", "").replace("19 \\", "19"), "django==5.2.19"),
        ([], LOCK.replace("sha256:aaaa", "md5:aaaa"), "no sha256 hash"),
    ],
    ids=["missing", "out of range", "no hash", "not sha256"],
)
def test_the_check_fails_a_lock_that_does_not_satisfy_them(
    requirements: list[str], lock_text: str, problem: str
) -> None:
    problems = unsatisfied(requirements, read_lock(lock_text))
    assert any(problem in p for p in problems), problems


def test_the_check_refuses_entries_that_are_not_exact_pins() -> None:
    with pytest.raises(AssertionError):
        read_lock("django>=5.2 --hash=sha256:aaaa\n")
    with pytest.raises(AssertionError, match="pinned twice"):
        read_lock("django==5.2.1 --hash=sha256:a\nDjango==5.2.2 --hash=sha256:b\n")
