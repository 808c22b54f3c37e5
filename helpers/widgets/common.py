"""What the course's widgets share: tables drawn as the notebook draws pandas tables, one sentence
for anything that went wrong, and a follower of the daemon's events that stops when told.

A widget's handler runs in the kernel outside any cell: an exception it lets out shows up only in
JupyterLab's log console, where a learner never looks. So every handler of the course's widgets
catches what the daemon (or the connection to it) raises and writes :func:`sentence` of it into
the widget's own status line (:func:`status_html`).
"""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Callable, Mapping
from typing import Any

import docker
import pandas as pd

from ..errors import CourseError, explain

#: The class JupyterLab gives a rendered HTML output (a pandas table's ``text/html`` included):
#: its stylesheet draws tables (no borders, striped rows, right-aligned cells) only inside it.
#: A widget's HTML is not inside one, so the course's widgets wrap their tables in it.
RENDERED_HTML = "jp-RenderedHTMLCommon"


def table_html(frame: pd.DataFrame, title: str = "") -> str:
    """``frame`` as HTML that looks like the notebook's own pandas tables (pandas' ``to_html``, the
    markup ``DataFrame._repr_html_`` makes, in JupyterLab's rendered-HTML class), under ``title``
    (HTML), in a box as wide as the widget that scrolls sideways when the table is wider."""
    return (f'<div class="{RENDERED_HTML}" style="max-width: 100%; overflow-x: auto; padding: 0">'
            f"{title}{frame.to_html(index=False)}</div>")


def status_html(text: str, error: bool = False) -> str:
    """One sentence for a widget's status line: red when something could not be done."""
    if not text:
        return ""
    body = html.escape(text)
    return f"<span style='color:#b00'>{body}</span>" if error else body


def sentence(err: BaseException, doing: str, client: docker.DockerClient | None = None) -> str:
    """One sentence, on one line, for ``err`` raised while ``doing`` (e.g. "show busybox:1.35").

    The course's own errors already are that sentence; a known fault of a class (daemon stopped or
    restarted, daemon not answering, an object removed outside the notebook) gets
    :func:`helpers.errors.explain`'s; any other daemon error its explanation; anything else its type
    and text.
    """
    if isinstance(err, CourseError):
        text = str(err)
    elif (known := explain(err, client)) is not None:
        text = f"Could not {doing}: {known}"
    elif isinstance(err, docker.errors.APIError):
        reason = str(getattr(err, "explanation", None) or err).strip().rstrip(".")
        text = f"Could not {doing}: the daemon says {reason}."
    else:
        text = f"Could not {doing}: {type(err).__name__}: {str(err).strip().rstrip('.') or 'no detail'}."
    return " ".join(text.split())


class EventFollower:
    """Follows the daemon's events (``docker events --filter …``) in a daemon thread and calls
    ``on_event(event)`` for each; ``on_end(err)`` once when the stream ends by itself (the daemon
    stopped or restarted: ``err`` is what the read raised, or None), never after :meth:`stop`.

    The stream is opened in the constructor, so whatever happens after it returns is seen (a widget
    then lists what it shows: list-then-watch in the other order would miss a change in between).
    :meth:`stop` closes the stream, which ends the thread at once; it is safe to call twice and
    from any thread. ``on_event`` and ``on_end`` should not raise: the widgets write their errors
    into themselves. What they raise anyway is kept in ``dropped`` (the last 10), not let out to the
    log console.
    """

    def __init__(self, client: docker.DockerClient, filters: Mapping[str, Any],
                 on_event: Callable[[dict[str, Any]], None],
                 on_end: Callable[[BaseException | None], None] | None = None,
                 name: str = "widget-events") -> None:
        self._stopped = threading.Event()
        self.dropped: list[BaseException] = []
        self._on_event, self._on_end = on_event, on_end
        self._stream = client.events(decode=True, filters=dict(filters))
        self.thread = threading.Thread(target=self._pump, name=name, daemon=True)
        self.thread.start()

    @property
    def running(self) -> bool:
        """Whether events still arrive (not stopped, stream not ended)."""
        return self.thread.is_alive() and not self._stopped.is_set()

    def _pump(self) -> None:
        ended: BaseException | None = None
        try:
            for event in self._stream:
                if self._stopped.is_set():
                    return
                try:
                    self._on_event(event)
                except Exception as err:  # noqa: BLE001 — see the class docstring
                    self.dropped[:] = [*self.dropped[-9:], err]
        except Exception as err:  # noqa: BLE001 — the connection broke (or stop() closed it)
            ended = err
        if not self._stopped.is_set() and self._on_end is not None:
            try:
                self._on_end(ended)
            except Exception as err:  # noqa: BLE001 — as above
                self.dropped[:] = [*self.dropped[-9:], err]

    def stop(self) -> None:
        """Stop following: close the stream (the thread ends as its read returns)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        with contextlib.suppress(Exception):  # already closed, or the connection already gone
            self._stream.close()
