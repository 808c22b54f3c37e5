"""Two sources of truth for versions: requirements.txt for Python packages (environment.yml and
pyproject.toml must agree), versions.toml for everything else (Debian's Docker, registry, busybox;
the shipped CI and class configs' docker:dind images follow its engine)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier  # exactly one '==' pin per line
            assert spec.operator == "==", f"requirements.txt must pin exactly: {line}"
            found[req.name.lower()] = spec.version
    return found


def test_requirements_pin_the_course_packages():
    assert {"jupyterlab", "docker", "pandas", "ipywidgets", "nbval"} <= set(pins())
    # BuildKit and compose from Python (python-on-whales), the registry's htpasswd (bcrypt): both
    # are helpers dependencies, so pyproject names them too
    assert {"python-on-whales", "bcrypt"} <= set(pins())
    declared = {Requirement(d).name.lower() for d in _pyproject()["project"]["dependencies"]}
    assert {"python-on-whales", "bcrypt"} <= declared


def test_environment_yml_installs_requirements_and_pins_nothing_else():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert pip_sections == [["-r requirements.txt", "-e ."]], "environment.yml must install requirements.txt via pip"
    conda = [d for d in deps if isinstance(d, str)]
    names = {re.split(r"[=<>! ]", d)[0].lower() for d in conda}
    assert names <= {"python", "pip"}, f"conda packages that drift from requirements.txt: {names - {'python', 'pip'}}"
    python = next(d for d in conda if d.startswith("python"))
    requires = SpecifierSet(_pyproject()["project"]["requires-python"])
    assert python.split("=", 1)[1] + ".0" in requires


def test_pyproject_ranges_admit_the_pins():
    pinned = pins()
    for dep in _pyproject()["project"]["dependencies"]:
        req = Requirement(dep)
        assert req.name.lower() in pinned, f"{req.name} is a helpers dependency but not pinned in requirements.txt"
        assert pinned[req.name.lower()] in req.specifier, f"{req.name}=={pinned[req.name.lower()]} outside {req.specifier}"


def test_the_running_environment_matches_the_pins():
    from importlib.metadata import version
    for name, pinned in pins().items():
        assert version(name) == pinned, f"{name} {version(name)} is installed, requirements.txt pins {pinned}"


def _pyproject() -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


# --- versions.toml: the one version source outside Python ----------------------------------------

#: The shipped configurations that start a Docker daemon of their own (a docker:dind image).
CONFIGS = [".github/workflows/course.yml", ".gitlab-ci.yml"]


def engine_dind_image() -> str:
    """``docker:28.5.2-dind`` for versions.toml's engine ``docker.io`` = ``forky/28.5.2+dfsg4-5``."""
    from coursehost import debian
    return f"docker:{debian.version('engine', 'docker.io')}-dind"


@pytest.mark.parametrize("path", CONFIGS + ["README.md"])
def test_shipped_configs_run_the_engine_of_versions_toml(path):
    """A class's or CI's dind daemon is the Docker release of the course's engine, so the lessons'
    outputs (made on that engine) are what those learners see."""
    images = re.findall(r"\bdocker:[\w.]+-dind(?:-rootless)?\b", (ROOT / path).read_text())
    assert images, f"{path} names no docker:…-dind image"
    assert set(images) <= {engine_dind_image(), engine_dind_image().replace("-dind", "-dind-rootless")}, \
        f"{path} runs {sorted(set(images))}, versions.toml's engine is {engine_dind_image()}"


#: A Debian package version as the archive writes it (28.5.2+dfsg4-5, 1.7.24~ds1-6+deb13u1,
#: 1:1.35.0-4+deb12u1+b1): upstream version, a repack or Debian revision.
DEBIAN_VERSION = re.compile(r"\b\d+\.\d+(?:\.\d+)*(?:[+~](?:dfsg|ds)\d*)?-\d+(?:\+deb\d+u\d+)?(?:\+b\d+)?\b"
                            r"|\b\d+\.\d+(?:\.\d+)*[+~](?:dfsg|ds)\d*\b")
#: What the course runs from versions.toml, never from the machine's own apt.
LANE_PACKAGES = re.compile(r"apt-get install[^\n]*\s(docker\.io|docker-ce|docker-cli|containerd|runc|"
                           r"docker-registry|busybox-static|docker-buildx)(\s|$)", re.M)


def _code_strings(path: Path) -> list[tuple[int, str]]:
    """The string constants of a Python file that are not docstrings (docstrings may cite versions)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def _uncommented(path: Path) -> list[tuple[int, str]]:
    return [(n, line.split(" #", 1)[0]) for n, line in enumerate(path.read_text().splitlines(), 1)
            if not line.lstrip().startswith("#")]


def test_no_debian_version_outside_versions_toml():
    """coursehost, helpers, bench, ./course, .ci/run and the shipped configs name no Debian package
    version and install none of the lanes' packages with the machine's apt: a version changed in
    versions.toml is changed everywhere."""
    found = []
    for py in sorted([*(ROOT / "coursehost").rglob("*.py"), *(ROOT / "helpers").rglob("*.py"),
                      *(ROOT / "bench").rglob("*.py")]):
        found += [f"{py.relative_to(ROOT)}:{n}: {m.group(0)}" for n, text in _code_strings(py)
                  for m in [DEBIAN_VERSION.search(text)] if m]
    for other in ["course", ".ci/run", *CONFIGS]:
        path = ROOT / other
        found += [f"{other}:{n}: {m.group(0)}" for n, line in _uncommented(path)
                  for m in [DEBIAN_VERSION.search(line)] if m]
        found += [f"{other}:{n}: apt-get install {m.group(1)}" for n, line in _uncommented(path)
                  for m in [LANE_PACKAGES.search(line)] if m]
    assert found == []


@pytest.mark.parametrize("text, flagged", [("forky/28.5.2+dfsg4-5", True), ("1.7.24~ds1-6+deb13u1", True),
                                           ("2.8.2+ds1-1", True), ("1.1.5+ds1", True), ("docker:28.5.2-dind", False),
                                           ("python3.11", False), ("127.0.0.1:5765", False), ("1.35", False),
                                           ("2024-12-09", False)])
def test_the_debian_version_pattern(text, flagged):
    assert bool(DEBIAN_VERSION.search(text)) is flagged


def test_the_lane_package_pattern():
    assert LANE_PACKAGES.search("apt-get install -y -qq python3-venv docker.io docker-registry")
    assert LANE_PACKAGES.search("sudo apt-get install -y busybox-static")
    assert not LANE_PACKAGES.search("apt-get install -y -qq python3-venv debian-archive-keyring")
