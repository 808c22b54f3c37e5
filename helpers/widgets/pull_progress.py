"""A live progress display for ``docker pull``: one bar per layer, fed by the streamed JSON.

>>> progress = PullProgress()                                    # doctest: +SKIP
>>> display(progress.widget)                                     # doctest: +SKIP
>>> events = progress.follow(pull_events(client, "busybox", "latest"))  # doctest: +SKIP

The daemon sends, per layer, ``Pulling fs layer`` → ``Downloading`` (with ``progressDetail``
``current``/``total``) → ``Verifying Checksum`` → ``Download complete`` → ``Extracting`` →
``Pull complete`` — or ``Already exists`` when the layer is on the daemon already.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import ipywidgets as widgets


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
        """Consume a pull stream, updating the display; returns every message."""
        for event in events:
            self.update(event)
        return self.events
