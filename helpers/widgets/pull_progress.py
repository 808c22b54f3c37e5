"""A live progress display for ``docker pull``: one bar per layer, fed by the streamed JSON.

>>> progress = PullProgress()                                    # doctest: +SKIP
>>> display(progress.widget)                                     # doctest: +SKIP
>>> events = progress.follow(pull_events(client, "busybox", "latest"))  # doctest: +SKIP

What the daemon sends per layer depends on where it keeps images (both seen on the course's two
engines, pulling a new two-layer image from a registry on the same machine):

- the classic store (``overlay2``, Docker 26.1 here): ``Pulling fs layer`` → ``Downloading`` (with
  ``progressDetail`` ``current``/``total`` in bytes) → ``Verifying Checksum`` → ``Download
  complete`` → ``Extracting`` (bytes again) → ``Pull complete``; a layer the daemon has already:
  ``Already exists``.
- the containerd store (Docker 28.5 here, the default of a fresh Engine 29 and Docker Desktop):
  ``Pulling fs layer`` → ``Downloading`` (only while a download lasts long enough to be sampled:
  none from a nearby registry) → ``Download complete`` → ``Extracting`` (its ``current`` counts
  seconds, with no ``total``; only while an unpack lasts) → ``Pull complete``, with no
  ``Verifying Checksum``; a layer the daemon has already may not be mentioned at all
  (moby ``daemon/containerd/progress.go``).

So a bar moves only on messages with a ``total`` (bytes), and is full at ``Download complete``,
``Pull complete`` or ``Already exists``, whichever the engine sends. A message with ``error``
(the registry refused, the connection broke) is shown in the status line, in red.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import ipywidgets as widgets

from .common import sentence, status_html


class PullProgress:
    """Bars per layer and one line for the image-wide messages; ``events`` keeps all messages."""

    def __init__(self) -> None:
        self.bars: dict[str, widgets.IntProgress] = {}
        self.status = widgets.HTML("waiting for the daemon…")
        self.layers = widgets.VBox([])
        self.widget = widgets.VBox([self.status, self.layers])
        self.events: list[dict[str, Any]] = []

    def update(self, event: Mapping[str, Any]) -> None:
        """Show one message of the pull stream."""
        self.events.append(dict(event))
        if event.get("error"):
            self.status.value = status_html(" ".join(str(event["error"]).split()), error=True)
            return
        layer, status = event.get("id"), event.get("status", "")
        if not layer or status.startswith("Pulling from"):
            self.status.value = status
            return
        bar = self.bars.get(layer)
        if bar is None:
            bar = self.bars[layer] = widgets.IntProgress(value=0, min=0, max=1, description=layer[:12])
            self.layers.children = (*self.layers.children, bar)
        detail = event.get("progressDetail") or {}
        if detail.get("total"):
            bar.max = int(detail["total"])
            bar.value = min(int(detail.get("current") or 0), bar.max)
        if status in ("Download complete", "Pull complete", "Already exists"):
            bar.value = bar.max
        bar.bar_style = "success" if status in ("Pull complete", "Already exists") else "info"
        bar.description = f"{layer[:12]}"
        bar.tooltip = status

    def follow(self, events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Consume a pull stream, updating the display; returns every message. What reading the
        stream raises (no such image, the daemon went away) is also said in the status line, in
        one sentence, then raised for the cell to show."""
        try:
            for event in events:
                self.update(event)
        except Exception as err:
            self.status.value = status_html(sentence(err, "pull"), error=True)
            raise
        return self.events
