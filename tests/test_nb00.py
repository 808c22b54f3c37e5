"""Notebook 00: its exercise checks fail on wrong answers and pass on the solutions; its cheat
sheet's CLI forms all run."""

from __future__ import annotations

import pytest

from helpers import BASE_IMAGE
from helpers.checks import nb00
from tests.cheatsheet import run_cli, sheet_commands


@pytest.fixture
def pulled(client):
    client.images.pull("busybox", tag="1.35")


def test_check_running_fails_then_passes(client, run, pulled):
    assert not nb00.check_running(client, run)                       # nothing yet
    client.containers.run(BASE_IMAGE, ["true"], name=run.name("mine"), labels=run.labels, detach=True).wait()
    result = nb00.check_running(client, run)
    assert not result and "exited" in result.message                  # exited, not running
    client.containers.get(run.name("mine")).remove()
    client.containers.run(BASE_IMAGE, ["sleep", "60"], name=run.name("mine"), detach=True)
    assert "labels" in nb00.check_running(client, run).message        # unlabelled
    client.containers.get(run.name("mine")).remove(force=True)
    client.containers.run(BASE_IMAGE, ["sleep", "60"], name=run.name("mine"), labels=run.labels, detach=True)
    assert nb00.check_running(client, run)                            # the solution


def test_check_kernel(client, run, pulled):
    assert not nb00.check_kernel(client, None)
    assert not nb00.check_kernel(client, "4.4.0-wrong")
    real = client.containers.run(BASE_IMAGE, ["uname", "-r"], remove=True, labels=run.labels).decode().strip()
    assert nb00.check_kernel(client, real)


def test_check_host_pid(client, run, pulled):
    assert not nb00.check_host_pid(client, run, 1)                    # no container yet
    c = client.containers.run(BASE_IMAGE, ["sleep", "60"], name=run.name("mine"), labels=run.labels, detach=True)
    c.reload()
    assert "namespace" in nb00.check_host_pid(client, run, 1).message
    assert not nb00.check_host_pid(client, run, str(c.attrs["State"]["Pid"]))   # wrong type
    assert nb00.check_host_pid(client, run, c.attrs["State"]["Pid"])


def test_cheat_sheet_runs(client, run, pulled):
    name = run.name("sheet")
    subs = {"NAME": name}
    commands = sheet_commands("00_getting_started.ipynb")
    assert len(commands) >= 8
    for command in commands:
        if command.startswith("docker run -d"):  # our run carries the run's labels for clean-up
            command = command.replace("docker run -d", f"docker run -d --label org.dockercourse.run={run.id}")
        if command.startswith("docker create"):
            command = command.replace("docker create", f"docker create --label org.dockercourse.run={run.id}")
        out = run_cli(command, subs)
        if command.startswith("docker run --rm"):
            assert out.stdout.strip() == client.info()["KernelVersion"]
    assert client.containers.get(name).status == "running"
