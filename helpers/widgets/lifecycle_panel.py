"""A control panel for one container's lifecycle: a button per command, the live state, the last logs.

Every button calls docker-py and then asks the daemon for the container's state again, so what
the panel shows is the daemon's answer, never a guess. A command that is not allowed in the
current state (pause a stopped container, start a running one) shows one sentence in the panel —
what went wrong and what to press instead — not a traceback; so does a container removed outside
the panel (another tab, ``docker rm``), a daemon that stopped or restarted, and any other error of
the daemon: a button's handler lets nothing out to JupyterLab's log console.

Once the run's Clean-up cell has run (``run.cleanup()``), the panel creates nothing more — nothing
would remove it before the kernel dies — and says so.

>>> panel = LifecyclePanel(client, run)     # doctest: +SKIP
>>> panel.widget                            # doctest: +SKIP
>>> panel.buttons["create"].click()         # what a test does instead of a learner
"""

from __future__ import annotations

import html
from collections.abc import Callable

import docker
import ipywidgets as W
from docker.errors import APIError, NotFound as DockerNotFound

from ..errors import BadInput, CourseError, NotFound
from ..base import BASE_IMAGE
from ..lifecycle import POLITE_COMMAND, pause
from ..naming import Run
from .common import sentence, status_html

#: What the panel says once the run was cleaned up.
CLEANED_UP = ("This run was cleaned up (its Clean-up cell ran), so the panel creates nothing more: "
              "run the notebook again from its Setup cell to use it.")

ACTIONS = ("create", "start", "pause", "unpause", "stop", "restart", "rename", "remove")

#: In which states each command makes sense.
NEEDS = {
    "start": {"created", "exited"},
    "pause": {"running"},
    "unpause": {"paused"},
    "stop": {"running", "paused", "restarting"},
    "restart": {"created", "running", "exited", "paused"},
    "remove": {"created", "exited"},
}


def hint(action: str, state: str) -> str:
    """What to press instead, when ``action`` is refused in ``state``."""
    if state == "paused":
        return "press unpause first"
    if state == "running" and action == "unpause":
        return "it is not paused, so there is nothing to unpause"
    if state == "running":
        return "press stop first" + (" (docker rm refuses a running container without -f)" if action == "remove" else "")
    if action == "stop":
        return "it is not running, so there is nothing to stop"
    return "press start first"


class LifecyclePanel:
    """Buttons for create / start / pause / unpause / stop / restart / rename / remove of one
    container of ``run``, its state as the daemon reports it, and its last log lines."""

    def __init__(self, client: docker.DockerClient, run: Run, what: str = "panel",
                 command: list[str] | None = None, stop_timeout: int = 1, log_lines: int = 5) -> None:
        if not isinstance(run, Run):
            raise BadInput("run should be the notebook's Run (run = Run(client, 'topic')), so the panel's "
                           "container gets the run's name and labels.")
        if not isinstance(stop_timeout, int) or stop_timeout < 0:
            raise BadInput(f"stop_timeout should be a whole number of seconds >= 0, not {stop_timeout!r}.")
        self.client, self.run = client, run
        self.name = self.first_name = run.name(what)  # raises BadInput for a bad 'what'
        self.command = list(command or POLITE_COMMAND)
        self.stop_timeout, self.log_lines = stop_timeout, log_lines
        self.container_id: str | None = None

        self.buttons = {a: W.Button(description=a, layout=W.Layout(width="82px")) for a in ACTIONS}
        for action, button in self.buttons.items():
            button.on_click(self._handler(action))
        self.new_name = W.Text(value="renamed", description="new name:", layout=W.Layout(width="240px"))
        self.state = W.HTML()
        self.message = W.HTML()
        self.logs = W.HTML()
        # the buttons wrap onto a second row when the notebook is narrower than eight of them
        self.widget = W.VBox([W.HBox(list(self.buttons.values()), layout=W.Layout(flex_flow="row wrap")),
                              self.new_name, self.state, self.message, self.logs],
                             layout=W.Layout(max_width="100%"))
        self.refresh()
        run.on_cleanup(self._cleaned_up)

    # --- what the panel shows -------------------------------------------------------------------

    def current_state(self) -> str:
        """The container's state as the daemon reports it now (``none`` before create / after remove).

        A container renamed outside the panel keeps its id: the panel follows it under its new name.
        """
        if self.container_id is None:
            return "none"
        try:
            doc = self.client.api.inspect_container(self.container_id)
        except DockerNotFound:
            return "none"
        self.name = doc["Name"].lstrip("/")
        return doc["State"]["Status"]

    def refresh(self) -> None:
        """Draw the container's state and last log lines as the daemon reports them now."""
        state = self.current_state()
        self.state.value = f"<b>{html.escape(self.name)}</b> is <b>{state}</b>"
        lines = ""
        if state != "none":
            try:
                lines = self.client.api.logs(self.container_id, tail=self.log_lines).decode(errors="replace")
            except DockerNotFound:   # removed between the two questions
                lines = ""
        self.logs.value = f"<pre>{html.escape(lines) or '(no log lines)'}</pre>"

    def say(self, text: str, error: bool = False) -> None:
        """Write one sentence under the buttons (red when something could not be done)."""
        self.message.value = status_html(text, error)

    def _cleaned_up(self) -> None:
        """``run.cleanup()`` ran: the container went with the run's other objects; say so."""
        try:
            if self.current_state() == "none":
                self.container_id, self.name = None, self.first_name
            self.refresh()
        except Exception:  # noqa: BLE001 — the daemon did not answer: the sentence below still holds
            self.state.value = f"<b>{html.escape(self.name)}</b> is <b>unknown</b>"
        self.say(CLEANED_UP)

    # --- the buttons ------------------------------------------------------------------------------

    def _handler(self, action: str) -> Callable[[W.Button], None]:
        def on_click(_button: W.Button) -> None:
            self.press(action)
        return on_click

    def press(self, action: str) -> str:
        """Do ``action`` as its button does; returns the sentence shown under the buttons."""
        if action not in ACTIONS:
            raise BadInput(f"{action!r} is not a button of the panel: use one of {', '.join(ACTIONS)}.")
        try:
            text = self._do(action)
        except Exception as err:  # noqa: BLE001 — a button's handler: the panel says it, nothing escapes
            text = self._explain(action, err)
            self.say(text, error=True)
        else:
            self.say(text)
        try:
            self.refresh()
        except Exception as err:  # noqa: BLE001 — as above
            text = sentence(err, f"read the state of {self.name}", self.client)
            self.say(text, error=True)
        return text

    def _gone(self) -> NotFound:
        """The container the panel made is no longer on the daemon: forget it, and say so."""
        gone, self.container_id, self.name = self.name, None, self.first_name
        return NotFound(f"{gone} was removed outside the panel (another tab, `docker rm`, a clean-up), "
                        "so there is nothing to act on: press create to make a new one.")

    def _do(self, action: str) -> str:
        if self.run.cleaned_up:
            raise CourseError(CLEANED_UP)
        api = self.client.api
        made = self.container_id is not None
        state = self.current_state()
        if made and state == "none":
            raise self._gone()
        if action == "create":
            if state != "none":
                raise BadInput(f"{self.name} already exists: remove it first to create a new one.")
            created = api.create_container(BASE_IMAGE, self.command, name=self.name, labels=self.run.labels)
            self.container_id = created["Id"]
            return f"created {self.name}"
        if state == "none":
            raise BadInput(f"There is no container {self.name} yet: press create first.")
        try:
            return self._act(action)
        except DockerNotFound:
            if self.current_state() == "none":   # removed between the state's check and the command
                raise self._gone() from None
            raise

    def _act(self, action: str) -> str:
        api = self.client.api
        if action == "start":
            api.start(self.container_id)
        elif action == "pause":
            pause(api, self.container_id)  # asks again if a busy host's freezer gave up
        elif action == "unpause":
            api.unpause(self.container_id)
        elif action == "stop":
            api.stop(self.container_id, timeout=self.stop_timeout)
        elif action == "restart":
            api.restart(self.container_id, timeout=self.stop_timeout)
        elif action == "rename":
            new = self.run.name(self.new_name.value.strip())  # keeps the run's prefix: clean-up finds it
            api.rename(self.container_id, new)
            old, self.name = self.name, new
            return f"renamed {old} to {new}"
        elif action == "remove":
            api.remove_container(self.container_id)
            self.container_id, removed, self.name = None, self.name, self.first_name
            return f"removed {removed}"
        return f"{action}: done"

    def _explain(self, action: str, err: Exception) -> str:
        """One sentence for a refused command: what state the container is in, and what to do."""
        if isinstance(err, CourseError):
            return str(err)
        if not isinstance(err, APIError) or isinstance(err, DockerNotFound):
            return sentence(err, f"{action} {self.name}", self.client)
        try:
            state = self.current_state()
        except Exception:  # noqa: BLE001 — the daemon itself failed: say its error
            return sentence(err, f"{action} {self.name}", self.client)
        allowed = NEEDS.get(action, set())
        if allowed and state not in allowed:
            return f"Cannot {action} {self.name}: it is {state}, and {action} needs it " \
                   f"{' or '.join(sorted(allowed))} — {hint(action, state)}."
        if action == "create" and err.status_code == 409:
            return f"Cannot create {self.name}: a container of that name exists already (made outside this " \
                   "panel, or by an earlier panel of this run): remove or rename it, then press create."
        if action == "rename":
            return f"Cannot rename {self.name} to {self.run.name(self.new_name.value.strip())}: " \
                   "that name is taken — choose another."
        reason = getattr(err, "explanation", None) or str(err)
        return f"Cannot {action} {self.name}: the daemon says {str(reason).strip().rstrip('.')}."
