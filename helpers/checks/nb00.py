"""Checks for notebook 00 · Getting started."""

from __future__ import annotations

import docker
from docker.errors import NotFound

from ..base import BASE_REPO
from ..naming import RUN, Run
from . import Result, not_yet, passed


def check_running(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 0.1: a running busybox container named ``run.name("mine")``, with the run's labels."""
    name = run.name("mine")
    try:
        c = client.containers.get(name)
    except NotFound:
        return not_yet("0.1", f"there is no container named {name}: create it with name=run.name('mine').")
    if c.labels.get(RUN) != run.id:
        return not_yet("0.1", f"{name} lacks the course labels: pass labels=run.labels.")
    if not any(t.startswith(BASE_REPO + ":") for t in c.image.tags):
        return not_yet("0.1", f"{name} runs {c.image.tags or c.image.short_id}, not {BASE_REPO}.")
    if c.status != "running":
        return not_yet("0.1", f"{name} is {c.status}, not running: give it a command that keeps going, "
                              "such as ['sleep', '600'], and detach=True.")
    return passed("0.1", f"{name} is running busybox.")


def check_kernel(client: docker.DockerClient, answer: object) -> Result:
    """Exercise 0.2: the kernel release a container sees (``uname -r`` inside one)."""
    if not isinstance(answer, str) or not answer.strip():
        return not_yet("0.2", "answer should be the text uname -r prints inside a container (a str).")
    if answer.strip() != client.info()["KernelVersion"]:
        return not_yet("0.2", f"{answer.strip()!r} is not the kernel containers run on: run uname -r in a container.")
    return passed("0.2", "a container runs on the host's own kernel.")


def check_host_pid(client: docker.DockerClient, run: Run, pid: object) -> Result:
    """Exercise 0.3: the host PID of the main process of ``run.name("mine")``."""
    name = run.name("mine")
    try:
        c = client.containers.get(name)
    except NotFound:
        return not_yet("0.3", f"start {name} first (Exercise 0.1).")
    if not isinstance(pid, int) or isinstance(pid, bool):
        return not_yet("0.3", f"pid should be an int, not {type(pid).__name__}.")
    if pid != c.attrs["State"]["Pid"]:
        inside = c.exec_run(["sh", "-c", "echo $PPID"]).output.decode().strip()
        hint = " (1 is its PID inside the container's own namespace)" if pid == 1 or str(pid) == inside else ""
        return not_yet("0.3", f"{pid} is not the host PID of {name}'s main process{hint}: look at container.top().")
    return passed("0.3", f"the main process of {name} is an ordinary process on the host.")
