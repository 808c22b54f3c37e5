"""A container's lifecycle, from the daemon's own data: its state after each step, its events, its logs.

:class:`StateLog` is the table that grows through notebook 02: after every command, ``record``
asks the daemon for the container's state (created → running → paused → … → removed) and adds a
row. :class:`EventRecorder` follows what the daemon itself logs about the run's containers
(``docker events``), and :func:`state_walk` replays those events through the state machine, so the
lifecycle picture shows what really happened, not what we meant to do.

Times are taken from the daemon's clock (``client.info()["SystemTime"]``), never the notebook's,
so a remote daemon with another clock still gives the right window of events.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import docker
import pandas as pd
from docker.errors import NotFound as DockerNotFound

from .errors import FREEZE_REFUSED, BadInput, CourseError

#: A main process that handles SIGTERM: prints a line and exits 0 at once (``sleep & wait`` lets the
#: trap run as soon as the signal arrives, instead of after ``sleep`` ends).
POLITE_COMMAND = ["sh", "-c", 'trap "echo got SIGTERM, bye; exit 0" TERM; echo started; sleep 600 & wait']

#: A main process with no SIGTERM handler. As PID 1 of its container the kernel does not apply the
#: default action (terminate) to it, so it ignores ``docker stop``'s SIGTERM and must be killed.
STUBBORN_COMMAND = ["sleep", "600"]

#: The state a container is in right after each lifecycle event; other events leave it unchanged.
STATE_AFTER = {"create": "created", "start": "running", "pause": "paused", "unpause": "running",
               "die": "exited", "destroy": "removed"}

#: Events that belong to the lifecycle (the rest — exec_*, attach, resize, top… — are left out).
LIFECYCLE_ACTIONS = ("create", "start", "pause", "unpause", "kill", "die", "stop", "restart",
                     "rename", "destroy")

#: The events of ``docker commit`` (notebook 04): with ``--pause`` (the default) the daemon
#: freezes the container around the commit.
COMMIT_ACTIONS = ("pause", "unpause", "commit")


def parse_time(value: str) -> float:
    """Docker's ISO time with nanoseconds (``2026-01-02T03:04:05.123456789Z``) → epoch seconds."""
    if not isinstance(value, str) or "T" not in value:
        raise BadInput(f"{value!r} is not a Docker timestamp: pass a string like '2026-01-02T03:04:05.123Z'.")
    head, _, frac = value.rstrip("Z").partition(".")
    moment = datetime.fromisoformat(head).replace(tzinfo=timezone.utc)
    return moment.timestamp() + float("0." + (frac or "0"))


def daemon_time(client: docker.DockerClient) -> float:
    """The daemon's clock now, as epoch seconds (for ``events(since=…, until=…)`` and ``logs(since=…)``)."""
    return parse_time(client.info()["SystemTime"])


def _state(client: docker.DockerClient, ref: Any) -> tuple[str, str, str, int | None]:
    """(name, state, exit code, pid) of a container, or ``removed`` when it no longer exists."""
    key = getattr(ref, "id", ref)
    try:
        doc = client.api.inspect_container(key)
    except DockerNotFound:
        return getattr(ref, "name", str(key)), "removed", "", None
    st = doc["State"]
    code = str(st["ExitCode"]) if st["Status"] == "exited" else ""
    return doc["Name"].lstrip("/"), st["Status"], code, st.get("Pid") or None


@dataclass
class StateLog:
    """A table that grows by one row per lifecycle step: step | CLI | name | state | exit code.

    >>> log = StateLog(client)                                   # doctest: +SKIP
    >>> c = client.containers.create(BASE_IMAGE, ["sleep", "60"]) # doctest: +SKIP
    >>> log.record(c, "create", "docker create busybox:1.35 sleep 60")  # doctest: +SKIP
    """

    client: docker.DockerClient
    rows: list[dict[str, str]] = field(default_factory=list)

    COLUMNS = ("step", "CLI", "name", "state", "exit code")

    def record(self, container: Any, step: str, cli: str = "") -> pd.DataFrame:
        """Ask the daemon for ``container``'s state now (a model, id or name) and add a row.

        Returns the whole table so far, so a notebook cell shows it growing.
        """
        if not isinstance(step, str) or not step.strip():
            raise BadInput("step should be a short non-empty text saying what was just done, e.g. 'pause'.")
        if isinstance(container, str) and not container:
            raise BadInput("container should be a container, its id or its name, not an empty string.")
        name, state, code, _ = _state(self.client, container)
        self.rows.append({"step": step, "CLI": cli, "name": name, "state": state, "exit code": code})
        return self.table

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(self.COLUMNS))

    @property
    def states(self) -> list[str]:
        """The states recorded so far, in order."""
        return [r["state"] for r in self.rows]


def actor_id(event: dict[str, Any]) -> str:
    """The id of the object an event is about: ``Actor.ID``.

    Engine 29 (API 1.52) no longer sends the old top-level ``id``/``status``/``from`` fields
    (deprecated since API 1.22), so events are read by ``Type``, ``Action`` and ``Actor`` only.
    """
    return str((event.get("Actor") or {}).get("ID") or "")


def _actions(actions: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    if isinstance(actions, str) or not actions or not all(isinstance(a, str) and a for a in actions):
        raise BadInput(f"actions should be a tuple of event actions such as COMMIT_ACTIONS, not {actions!r}.")
    return tuple(actions)


def container_events(client: docker.DockerClient, container_id: str, since: float,
                     until: float | None = None,
                     actions: tuple[str, ...] = LIFECYCLE_ACTIONS) -> list[dict[str, Any]]:
    """The daemon's lifecycle events for one container between ``since`` and ``until`` (epoch
    seconds on the daemon's clock; ``until`` defaults to now), oldest first — ``docker events
    --since … --until …``.

    The daemon replays only its last 256 events this way: on a busy daemon use
    :class:`EventRecorder`, which follows the stream live and misses nothing.
    """
    if not isinstance(container_id, str) or not re.fullmatch(r"[0-9a-f]{12,64}", container_id):
        raise BadInput("container_id should be a container's full id (container.id), not a name.")
    if until is None:
        until = daemon_time(client)
    events = client.events(since=since, until=until, filters={"container": container_id, "type": "container"},
                           decode=True)
    actions = _actions(actions)
    return [e for e in events if e.get("Action") in actions]


class EventRecorder:
    """Follows the daemon's event stream (``docker events``) from now on, in a background thread.

    Why not read the past with ``docker events --since … --until …``? The daemon keeps only its last
    256 events in memory for that; on a busy daemon (a class sharing one) a container's early events
    are gone a few seconds later. A live subscription misses nothing. Filters as in ``docker events
    --filter`` (``run.filters`` selects this run's containers); only container events are kept.

    >>> recorder = EventRecorder(client, run.filters)            # doctest: +SKIP
    >>> events = recorder.wait_for(container.id, "destroy")      # doctest: +SKIP
    """

    def __init__(self, client: docker.DockerClient, filters: dict[str, str] | None = None) -> None:
        if filters is not None and not isinstance(filters, dict):
            raise BadInput("filters should be a dict like run.filters ({'label': 'key=value'}), or None.")
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._closed = False
        self.client, self.since = client, daemon_time(client)
        # since=now: the daemon replays what happened between this call and its subscription
        self._stream = client.events(since=self.since, decode=True,
                                     filters={**(filters or {}), "type": "container"})
        self._thread = threading.Thread(target=self._pump, name="event-recorder", daemon=True)
        self._thread.start()

    @staticmethod
    def _key(event: dict[str, Any]) -> tuple[Any, Any, Any]:
        # the same event twice (same container, action and nanosecond) is one event delivered
        # twice, as a busy daemon's replay-then-follow may do
        return actor_id(event), event.get("Action"), event.get("timeNano")

    def _pump(self) -> None:
        seen: set[tuple[Any, Any, Any]] = set()
        try:
            for event in self._stream:
                key = self._key(event)
                if key in seen:
                    continue
                seen.add(key)
                with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()
        finally:
            with self._changed:
                self._closed = True
                self._changed.notify_all()

    def of(self, container_id: str, actions: tuple[str, ...] = LIFECYCLE_ACTIONS) -> list[dict[str, Any]]:
        """The events of one container received so far whose action is one of ``actions`` (the
        lifecycle's by default), oldest first."""
        if not isinstance(container_id, str) or not re.fullmatch(r"[0-9a-f]{12,64}", container_id):
            raise BadInput("container_id should be a container's full id (container.id), not a name.")
        actions = _actions(actions)
        with self._changed:
            return [e for e in self.events if actor_id(e).startswith(container_id)
                    and e.get("Action") in actions]

    def with_history(self, container_id: str,
                     actions: tuple[str, ...] = LIFECYCLE_ACTIONS) -> list[dict[str, Any]]:
        """The container's events from the stream, plus any the stream did not bring that the
        daemon still keeps (``docker events --since … --until …``), oldest first.

        A busy daemon can drop a live event: it hands each event to each subscriber within 100 ms
        or not at all (its publisher's timeout), and on a host that a whole class keeps busy
        dockerd's own threads sometimes wait longer than that for a CPU. Its replay comes from
        the last 256 events it stores, which nothing drops, so what the stream lost recently is there.
        """
        live = self.of(container_id, actions)
        try:
            past = container_events(self.client, container_id, self.since, actions=actions)
        except docker.errors.APIError:
            return live
        merged = {self._key(e): e for e in past}
        merged.update({self._key(e): e for e in live})
        return sorted(merged.values(), key=lambda e: int(e.get("timeNano") or 0))

    def wait_for(self, container_id: str, action: str, count: int = 1, timeout: float = 30.0,
                 actions: tuple[str, ...] = LIFECYCLE_ACTIONS) -> list[dict[str, Any]]:
        """Block until ``count`` events ``action`` of the container have arrived; return its events
        whose action is one of ``actions`` (the lifecycle's by default; ``COMMIT_ACTIONS`` for a
        commit), with any the stream dropped that the daemon still keeps (:meth:`with_history`).

        The daemon logs a command's last event before answering it, but the stream brings it a
        moment later: wait for ``stop`` after ``container.stop()``, ``destroy`` after ``remove()``.
        Raises BadInput for an action not in ``actions``, CourseError when they did not arrive.
        """
        actions = _actions(actions)
        if action not in actions:
            raise BadInput(f"{action!r} is not one of the events asked for: use one of {', '.join(actions)}.")

        def arrived() -> bool:
            return self._closed or sum(e["Action"] == action for e in self.of(container_id, actions)) >= count

        deadline = time.monotonic() + timeout
        while True:
            with self._changed:  # the stream, and every 2 s the daemon's replay (a dropped event)
                self._changed.wait_for(arrived, timeout=max(0.0, min(2.0, deadline - time.monotonic())))
            found = self.with_history(container_id, actions)
            if self._closed or sum(e["Action"] == action for e in found) >= count or time.monotonic() >= deadline:
                break
        if sum(e["Action"] == action for e in found) < count:
            raise CourseError(f"{count} {action!r} event(s) of {container_id[:12]} did not arrive within "
                              f"{timeout:g} s: did the command really run (and the recorder start before it)?")
        return found

    def close(self) -> None:
        """Stop following the stream (the events received so far stay in ``.events``)."""
        self._stream.close()
        self._thread.join(timeout=5)


def die_before_stop(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events with every ``stop`` that the daemon logged just before the same container's
    ``die`` moved after it (a new list; nothing else changes place).

    ``docker stop`` (and ``restart``) logs ``stop`` when the container has exited, and the exit
    handler logs ``die``: two goroutines. The handler marks the container stopped — which wakes
    the waiting stop command — and only then logs ``die`` (moby ``daemon/monitor.go``,
    ``handleContainerExit``; ``daemon/stop.go``), so the two events arrive in either order:
    Docker 20.10 nearly always logged ``die`` first, Docker 26 and 28 mostly log ``stop`` first.
    What happened is the same: the process died, then the stop command ended. Putting ``die``
    first gives one order on every engine, the order of cause and effect.
    """
    if not isinstance(events, list):
        raise BadInput("events should be a list of event dicts, as EventRecorder.wait_for returns.")
    out = list(events)
    for i in range(len(out) - 1):
        this, after = out[i], out[i + 1]
        if (this.get("Action") == "stop" and after.get("Action") == "die"
                and actor_id(this) == actor_id(after)):
            out[i], out[i + 1] = after, this
    return out


def state_walk(events: list[dict[str, Any]]) -> pd.DataFrame:
    """Replay events through the state machine: action | name | detail | from | to.

    ``detail`` is the signal of a ``kill``, the exit code of a ``die`` or the old name of a
    ``rename``; times are left out (they differ on every run; the order is what matters). A
    ``stop`` that the daemon logged just before its ``die`` is listed after it
    (:func:`die_before_stop`: the two race inside the daemon, so engines differ).
    """
    rows, state = [], "(none)"
    for e in die_before_stop(events):
        action = e["Action"]
        attrs = (e.get("Actor") or {}).get("Attributes") or {}
        detail = {"kill": f"signal {attrs.get('signal', '')}", "die": f"exit code {attrs.get('exitCode', '')}",
                  "rename": f"was {attrs.get('oldName', '').lstrip('/')}"}.get(action, "")
        after = STATE_AFTER.get(action, state)
        rows.append({"action": action, "name": attrs.get("name", ""), "detail": detail,
                     "from": state, "to": after})
        state = after
    return pd.DataFrame(rows, columns=["action", "name", "detail", "from", "to"])


def split_timestamps(logs: bytes | str) -> list[tuple[float, str]]:
    """``container.logs(timestamps=True)`` → ``[(epoch seconds, line), …]``."""
    text = logs.decode() if isinstance(logs, bytes) else logs
    if not isinstance(text, str):
        raise BadInput("logs should be what container.logs(timestamps=True) returns (bytes or str).")
    out = []
    for line in text.splitlines():
        stamp, sep, rest = line.partition(" ")
        if not sep:
            raise BadInput(f"{line!r} has no timestamp: read the logs with timestamps=True.")
        out.append((parse_time(stamp), rest))
    return out


def wait_for_log(container: Any, text: str, count: int = 1, timeout: float = 30.0) -> None:
    """Block until ``text`` has appeared ``count`` times in the container's logs.

    A readiness signal: a main process that prints ``started`` once its SIGTERM handler is set can
    be stopped safely only after that line. The daemon streams the logs as they come
    (``docker logs -f``), so nothing is polled; the stream is closed after ``timeout`` seconds.
    """
    if not isinstance(text, str) or not text:
        raise BadInput("text should be the non-empty line (or part of one) to wait for, e.g. 'started'.")
    if not isinstance(count, int) or count < 1:
        raise BadInput(f"count should be how many times the text must appear (1 or more), not {count!r}.")
    stream = container.logs(stream=True, follow=True)
    timer = threading.Timer(timeout, stream.close)  # closing the stream ends the loop below
    timer.start()
    seen = ""
    try:
        for chunk in stream:
            seen += chunk.decode(errors="replace")
            if seen.count(text) >= count:
                return
    finally:
        timer.cancel()
        stream.close()
    container.reload()
    why = f"it is {container.status}" if container.status != "running" else f"waited {timeout:g} s"
    raise CourseError(f"{container.name} printed {text!r} {seen.count(text)} time(s), not {count} ({why}): "
                      "look at container.logs() to see why.")


def wait_for_process(container: Any, command: str, timeout: float = 30.0) -> None:
    """Block until ``docker top`` lists a process whose command line is ``command``.

    ``exec_run(..., detach=True)`` returns once the process is started, but for a moment it may
    still be runc's init, not yet the program (seen on a host busy with a whole class): wait for the
    program itself. No event marks that moment, so ``top`` is asked again, briefly, until then.
    """
    if not isinstance(command, str) or not command:
        raise BadInput("command should be the process's command line as top shows it, e.g. 'sleep 300'.")
    deadline = time.monotonic() + timeout
    while True:
        top = container.top()
        column = top["Titles"].index("CMD") if "CMD" in top["Titles"] else -1
        if any(row[column] == command for row in top.get("Processes") or []):
            return
        if time.monotonic() > deadline:
            raise CourseError(f"{container.name} shows no process {command!r} after {timeout:g} s: "
                              "look at container.top() to see what runs.")
        time.sleep(0.05)


def pause(api: docker.APIClient, container_id: str, attempts: int = 3) -> None:
    """``docker pause``, asked again when the kernel's freezer gave up ("unable to freeze").

    On cgroup v1, runc freezes a container by writing FROZEN and reading the state back, about a
    thousand times in a quarter of a second; a process that is awake (a shell waiting for its child)
    must get the CPU in that window to freeze, and on a host busy with a whole class it sometimes
    does not. Nothing is paused then and the daemon says so; asking again almost always succeeds.
    Every other error, and the last attempt's, is raised as docker-py raised it.
    """
    for attempt in range(1, attempts + 1):
        try:
            api.pause(container_id)
            return
        except docker.errors.APIError as err:
            if FREEZE_REFUSED not in str(err) or attempt == attempts:
                raise
