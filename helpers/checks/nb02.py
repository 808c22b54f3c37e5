"""Checks for notebook 02 · Container lifecycle. Each looks at the live daemon (state, events)."""

from __future__ import annotations

from typing import Any

import docker
from docker.errors import NotFound

from ..imagekit import BASE_REPO
from ..lifecycle import container_events, parse_time
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


def _events(client: docker.DockerClient, c: Any) -> list[dict[str, Any]]:
    return container_events(client, c.id, since=parse_time(c.attrs["Created"]) - 1)


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


def check_renamed(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 2.2: the container made as ``run.name("draft")`` now carries the name ``run.name("final")``."""
    draft, final = run.name("draft"), run.name("final")
    c = _own(client, run, "final", "2.2", f"rename {draft} to {final} (container.rename(...)).")
    if isinstance(c, Result):
        return c
    renames = [e for e in _events(client, c) if e["Action"] == "rename"]
    old = [e["Actor"]["Attributes"].get("oldName", "").lstrip("/") for e in renames]
    if draft not in old:
        return not_yet("2.2", f"{final} was never called {draft}: remove it and rename the draft container "
                              "instead of creating a new one.")
    return passed("2.2", f"{draft} was renamed to {final}: same container (same id), new name.")


def check_polite_stop(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 2.3: ``run.name("polite")`` was stopped and exited 0 on SIGTERM, without SIGKILL."""
    c = _own(client, run, "polite", "2.3", "create it with name=run.name('polite') and labels=run.labels.")
    if isinstance(c, Result):
        return c
    if c.status in ("created",):
        return not_yet("2.3", f"{c.name} was never started: start it, then stop it with timeout=1.")
    if c.status in ("running", "paused", "restarting"):
        return not_yet("2.3", f"{c.name} is {c.status}: stop it with container.stop(timeout=1).")
    events = _events(client, c)
    signals = [e["Actor"]["Attributes"].get("signal") for e in events if e["Action"] == "kill"]
    code = c.attrs["State"]["ExitCode"]
    if "15" not in signals:
        return not_yet("2.3", f"{c.name} ended by itself (exit code {code}) and was never stopped: give it a "
                              "command that keeps running, start it, then stop it with timeout=1.")
    if "9" in signals or code == 137:
        return not_yet("2.3", f"{c.name} ignored SIGTERM and was killed after the timeout (exit code {code}): "
                              "its main process must handle TERM, e.g. sh -c 'trap \"exit 0\" TERM; sleep 600 & wait'.")
    if code != 0:
        return not_yet("2.3", f"{c.name} stopped on SIGTERM but exited {code}, not 0: make the TERM handler exit 0.")
    return passed("2.3", f"{c.name} handled SIGTERM and exited 0 before the timeout — no SIGKILL needed.")
