"""One source of truth for versions: requirements.txt. environment.yml and pyproject.toml must agree."""

from __future__ import annotations

import re
import sys
from pathlib import Path

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
