"""coursehost/debian.py: which Debian packages the course's engine lacks, and the prefetch ./course
runs with the system python3 while the virtualenv is made (it must install nothing for a daemon
that is already there, and never fail the command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from coursehost import debian

ROOT = Path(__file__).resolve().parent.parent


def test_missing_names_the_package_of_a_command_that_is_nowhere():
    assert debian.missing({"no-such-command-dc": "no-such-package-dc", "sh": "dash"})[:1] == ["no-such-package-dc"]
    assert "dash" not in debian.missing({"sh": "dash"})


@pytest.mark.parametrize("variable", ["DOCKER_HOST", "DOCKER_CONTEXT"])
def test_another_daemon_in_sight_means_nothing_to_install(monkeypatch, variable):
    monkeypatch.setenv(variable, "tcp://10.0.0.5:2375" if variable == "DOCKER_HOST" else "class")
    assert debian.engine_will_be_needed() is False


def test_a_docker_context_in_the_config_means_nothing_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    (tmp_path / "config.json").write_text('{"currentContext": "class"}')
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert debian.engine_will_be_needed() is False


def test_prefetch_installs_only_what_is_missing_and_never_fails(monkeypatch):
    calls = []
    monkeypatch.setattr(debian, "engine_will_be_needed", lambda: True)
    monkeypatch.setattr(debian, "apt_install", lambda pkgs: calls.append(pkgs))
    monkeypatch.setattr(debian, "missing", lambda commands=debian.PACKAGES: [])
    assert debian.prefetch() == 0 and calls == []                  # nothing missing: apt is not run
    monkeypatch.setattr(debian, "missing", lambda commands=debian.PACKAGES: ["docker.io"])
    assert debian.prefetch() == 0 and calls == [["docker.io"]]
    monkeypatch.setattr(debian, "apt_install", lambda pkgs: (_ for _ in ()).throw(debian.AptFailed("no network")))
    assert debian.prefetch() == 0                                  # the engine step will say why


def test_the_prefetch_runs_on_the_system_python_alone():
    """No site-packages, no helpers package: the file on its own, the standard library alone."""
    done = subprocess.run([sys.executable, "-I", "-S", str(ROOT / "helpers" / "debian.py"), "prefetch"],
                          capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
