"""Checks for notebook 02 · Container lifecycle. Each looks at the live daemon."""

from __future__ import annotations

from typing import Any

import docker
from docker.errors import NotFound

from ..base import BASE_REPO
from ..naming import RUN, Run
from . import Result, not_yet, passed


def _own(client: docker.DockerClient, run: Run, what: str, exercise: str, how: str) -> Any:
    """The run's container ``run.name(what)``, or a NOT YET result saying what is missing."""
    name = run.name(what)
    try:
        c = client.containers.get(name)
    except NotFound:
        return not_yet(exercise, f"there is no container named {name}: {how}")
    if c.labels.get(RUN) != run.id:
        return not_yet(exercise, f"{name} lacks the course labels: pass labels=run.labels.")
    if not any(t.startswith(BASE_REPO + ":") for t in c.image.tags):
        return not_yet(exercise, f"{name} runs {c.image.tags or c.image.short_id}, not {BASE_REPO}.")
    return c


def check_paused(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 2.1: ``run.name("frozen")`` is a busybox container in the paused state."""
    c = _own(client, run, "frozen", "2.1", "run one with name=run.name('frozen'), detach=True, then pause it.")
    if isinstance(c, Result):
        return c
    if c.status == "running":
        return not_yet("2.1", f"{c.name} is running: now pause it (container.pause()).")
    if c.status != "paused":
        return not_yet("2.1", f"{c.name} is {c.status}; only a running container can be paused: give it a "
                              "command that keeps going, such as ['sleep', '600'], start it, then pause it.")
    return passed("2.1", f"{c.name} is paused: its processes are frozen, not stopped.")


def check_renamed(client: docker.DockerClient, run: Run, draft: Any) -> Result:
    """Exercise 2.2: the container ``draft`` (made as ``run.name("draft")``) now carries the name
    ``run.name("final")`` — the same container, not a new one."""
    final = run.name("final")
    draft_id = getattr(draft, "id", None)
    if not isinstance(draft_id, str):
        return not_yet("2.2", "pass the draft container itself (the variable draft) as the last argument.")
    c = _own(client, run, "final", "2.2", f"rename {run.name('draft')} to {final} (container.rename(...)).")
    if isinstance(c, Result):
        return c
    if c.id != draft_id:
        return not_yet("2.2", f"{final} is another container than the draft (a new id): remove it and rename "
                              "the draft instead of creating a new one.")
    return passed("2.2", f"{run.name('draft')} was renamed to {final}: same container (same id), new name.")


def check_polite_stop(client: docker.DockerClient, run: Run, timeout: int = 1) -> Result:
    """Exercise 2.3: the check itself stops the running ``run.name("polite")`` with ``timeout`` and
    passes when its main process handled SIGTERM and exited 0, without needing SIGKILL."""
    c = _own(client, run, "polite", "2.3", "run it with name=run.name('polite'), labels=run.labels, detach=True.")
    if isinstance(c, Result):
        return c
    if c.status != "running":
        return not_yet("2.3", f"{c.name} is {c.status}: start it (this check stops it itself, with "
                              f"timeout={timeout}, and looks at how it ends).")
    c.stop(timeout=timeout)
    c.reload()
    code = c.attrs["State"]["ExitCode"]
    if code == 137:
        return not_yet("2.3", f"{c.name} ignored SIGTERM and was killed after {timeout} s (exit code {code}): "
                              "its main process must handle TERM, e.g. sh -c 'trap \"exit 0\" TERM; sleep 600 & wait'.")
    if code == 143:
        return not_yet("2.3", f"{c.name} was terminated by SIGTERM (exit code 143) instead of handling it: "
                              "trap TERM in its main process and exit 0.")
    if code != 0:
        return not_yet("2.3", f"{c.name} stopped on SIGTERM but exited {code}, not 0: make the TERM handler exit 0.")
    return passed("2.3", f"{c.name} handled SIGTERM and exited 0 before the timeout — no SIGKILL needed.")
