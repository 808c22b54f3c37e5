"""Checks for notebook 03 · Working with a running container (create -t -i, attach, exec)."""

from __future__ import annotations

from typing import Any

import docker
from docker.errors import NotFound

from ..execs import exec_output
from ..naming import RUN, Run
from . import Result, not_yet, passed


def _get(client: docker.DockerClient, run: Run, what: str, exercise: str) -> Any | Result:
    name = run.name(what)
    try:
        return client.containers.get(name)
    except NotFound:
        return not_yet(exercise, f"there is no container named {name}: create it with name=run.name({what!r}).")


def check_interactive(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 3.1: ``run.name("mysh")`` made from busybox running ``sh`` with -t and -i, labelled."""
    c = _get(client, run, "mysh", "3.1")
    if isinstance(c, Result):
        return c
    config = c.attrs["Config"]
    if c.labels.get(RUN) != run.id:
        return not_yet("3.1", f"{c.name} lacks the course labels: pass labels=run.labels.")
    if (config.get("Cmd") or [None])[0] != "sh":
        return not_yet("3.1", f"{c.name} runs {config.get('Cmd')}, not sh: pass \"sh\" as the command.")
    missing = [flag for flag, key in (("-t (tty=True)", "Tty"), ("-i (stdin_open=True)", "OpenStdin"))
               if not config.get(key)]
    if missing:
        return not_yet("3.1", f"{c.name} was created without {' and '.join(missing)}: remove it and create it again.")
    if c.status not in ("created", "running"):
        return not_yet("3.1", f"{c.name} is {c.status}: an interactive sh should be created (or running), "
                              "waiting for input.")
    return passed("3.1", f"{c.name} has a terminal and an open STDIN ({c.status}).")


def check_main_pid_file(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 3.2: the main shell of ``run.name("mysh")`` wrote its own PID to /tmp/pid.txt."""
    c = _get(client, run, "mysh", "3.2")
    if isinstance(c, Result):
        return c
    if c.status != "running":
        return not_yet("3.2", f"{c.name} is {c.status}: start it first (mysh.start()).")
    done = exec_output(c, ["cat", "/tmp/pid.txt"])  # prints the PID, or why not: asked again if lost
    if done.exit_code != 0:
        return not_yet("3.2", f"/tmp/pid.txt does not exist in {c.name} yet: send 'echo $$ > /tmp/pid.txt' "
                              "to its main shell.")
    text = done.output.decode().strip()
    if text != "1":
        return not_yet("3.2", f"/tmp/pid.txt holds {text!r}, the PID of a new process (exec starts one): "
                              "send the command through attach, to the main shell, whose PID is 1.")
    return passed("3.2", "the main process (PID 1) wrote the file: you talked to it through attach.")


def check_exec_result(result: object) -> Result:
    """Exercise 3.3: an ExecResult of ``sh -c 'id -un; pwd; echo $COLOR'`` as nobody, in /tmp, COLOR=blue."""
    if not (hasattr(result, "exit_code") and hasattr(result, "output")):
        return not_yet("3.3", "result should be what container.exec_run(...) returns (an ExecResult).")
    if result.exit_code != 0:
        return not_yet("3.3", f"the command failed with exit code {result.exit_code}: look at result.output.")
    output = result.output
    if isinstance(output, tuple):
        return not_yet("3.3", "leave demux off for this one, so that output is one bytes value.")
    lines = (output or b"").decode(errors="replace").split()
    if not lines:
        return not_yet("3.3", "the command printed nothing: run sh -c 'id -un; pwd; echo $COLOR' (if you did, "
                              "a busy daemon lost its output, as dockerd can for a short exec: run the cell again).")
    want = {0: ("nobody", "user='nobody'"), 1: ("/tmp", "workdir='/tmp'"), 2: ("blue", "environment={'COLOR': 'blue'}")}
    for i, (value, how) in want.items():
        if len(lines) <= i or lines[i] != value:
            got = lines[i] if len(lines) > i else "nothing"
            return not_yet("3.3", f"line {i + 1} of the output is {got!r}, not {value!r}: pass {how}.")
    return passed("3.3", "the new process ran as nobody, in /tmp, with COLOR=blue.")


def check_ended_by_exit(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 3.4: ``run.name("mysh")`` ended because its main shell ran ``exit 7``."""
    c = _get(client, run, "mysh", "3.4")
    if isinstance(c, Result):
        return c
    state = c.attrs["State"]
    if c.status != "exited":
        return not_yet("3.4", f"{c.name} is still {c.status}: send 'exit 7' to its main shell through attach.")
    if state["ExitCode"] in (137, 143):
        return not_yet("3.4", f"{c.name} was killed by a signal (exit code {state['ExitCode']}): that is what "
                              "stop() or kill() do; end it from inside with 'exit 7' instead.")
    if state["ExitCode"] != 7:
        return not_yet("3.4", f"{c.name} exited with code {state['ExitCode']}, not 7: send 'exit 7'.")
    return passed("3.4", "the main shell ended, so the container stopped, with the code it chose.")
