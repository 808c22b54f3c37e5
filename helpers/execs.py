"""``docker exec`` of a command that must print something, asked again when the output was lost.

A busy daemon sometimes hands back a short exec's result with the right exit code and no output:
the process printed and ended before the daemon had wired its output to our connection, so the
bytes went nowhere. It is an old, rare race (moby/moby#27289, docker/docker-py#2042) that the
course sees on Docker 26.1 under load (the DinD lane: ``echo $GREETING; cat /www/index.html``
once printed nothing). For a command that is *idempotent* (running it twice does no harm) and
*always prints*, an empty answer can only be that race, so :func:`exec_output` asks once more.

>>> exec_output(box, ["sh", "-c", "id -un; pwd"]).output     # doctest: +SKIP
b'root\\n/\\n'
"""

from __future__ import annotations

from typing import Any

from docker.models.containers import ExecResult

from .errors import BadInput, CourseError


def _empty(output: Any) -> bool:
    """No byte at all: ``b""``/``None``, or ``(None, None)`` with ``demux=True``."""
    if isinstance(output, tuple):
        return not any(output)
    return not output


def exec_output(container: Any, cmd: str | list[str], attempts: int = 3, **kwargs: Any) -> ExecResult:
    """``container.exec_run(cmd, **kwargs)``, run again (up to ``attempts`` times in all) while its
    output comes back empty.

    Use it only for a command that prints on every run and can safely run twice (``cat``, ``id``,
    ``echo``…): an empty answer is then the daemon's lost output, not the command's. ``kwargs``
    are ``exec_run``'s (``user=``, ``workdir=``, ``environment=``, ``demux=``…).

    Returns the first ``ExecResult`` (``exit_code``, ``output``) with output. Raises
    :class:`~helpers.errors.BadInput` for a container that is not a docker-py ``Container``, for
    ``detach=True`` or ``stream=True`` (their result holds no output to check) or a bad
    ``attempts``; :class:`~helpers.errors.CourseError` when every attempt came back empty (then the
    command really printed nothing: run it with ``container.exec_run`` and read its exit code).
    docker-py's own errors (a stopped or paused container: 409) pass through unchanged.
    """
    if not hasattr(container, "exec_run"):
        raise BadInput(f"exec_output() needs a docker-py Container, not {type(container).__name__}: "
                       "get one with client.containers.get(name).")
    if kwargs.get("detach") or kwargs.get("stream"):
        raise BadInput("exec_output() checks the output, so it cannot detach or stream: call "
                       "container.exec_run(..., detach=True) directly.")
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise BadInput(f"attempts should be how many times to run the command (1 or more), not {attempts!r}.")
    for _ in range(attempts):
        result = container.exec_run(cmd, **kwargs)
        if not _empty(result.output):
            return result
    raise CourseError(f"{cmd!r} printed nothing in {getattr(container, 'name', 'the container')}, "
                      f"{attempts} times (exit code {result.exit_code}): a command that prints nothing "
                      "needs container.exec_run, not exec_output.")
