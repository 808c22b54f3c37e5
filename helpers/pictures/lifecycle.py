"""The container state machine, with the path one container really took drawn over it.

The machine (states and the commands that move between them) is fixed; what is highlighted comes
from the daemon: the ``from``/``to`` columns of :func:`helpers.lifecycle.state_walk`, which replays
the container's own events. A state the container never reached stays grey.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from ..errors import BadInput

#: Where each state sits in the picture.
POSITIONS: dict[str, tuple[float, float]] = {
    "(none)": (-2.6, 2.0), "created": (0.0, 2.0), "running": (3.5, 2.0), "paused": (7.0, 2.0),
    "restarting": (7.0, 0.0), "exited": (3.5, 0.0), "removed": (0.0, 0.0),
}
STATES = [s for s in POSITIONS if s != "(none)"]

#: (from, to, the commands that take a container along this edge, curvature, where the label sits).
TRANSITIONS: list[tuple[str, str, str, float, tuple[float, float]]] = [
    ("(none)", "created", "create", 0.0, (-1.3, 2.0)),
    ("created", "running", "start", 0.0, (1.75, 2.0)),
    ("running", "paused", "pause", 0.25, (5.25, 1.72)),
    ("paused", "running", "unpause", 0.25, (5.25, 2.45)),
    ("running", "exited", "stop / kill /\nprocess ends", 0.3, (2.65, 1.0)),
    ("exited", "running", "start /\nrestart", 0.3, (4.3, 1.0)),
    ("running", "restarting", "process ends +\nrestart policy", 0.2, (4.95, 0.45)),
    ("restarting", "running", "start", 0.2, (6.3, 1.2)),
    ("created", "removed", "rm", 0.0, (0.0, 1.0)),
    ("exited", "removed", "rm", 0.0, (1.75, 0.0)),
    ("running", "removed", "rm -f", 0.0, (1.75, 1.0)),
]


def _edge(ax, a: str, b: str, label: str, rad: float, where: tuple[float, float], on: bool) -> None:
    (x1, y1), (x2, y2) = POSITIONS[a], POSITIONS[b]
    color, width = ("tab:red", 2.6) if on else ("0.65", 1.2)
    ax.annotate("", xy=(x2, y2), xytext=(x1, y1),
                arrowprops=dict(arrowstyle="-|>", color=color, lw=width, shrinkA=30, shrinkB=30,
                                connectionstyle=f"arc3,rad={rad}"))
    ax.text(*where, label, ha="center", va="center", fontsize=8, color="darkred" if on else "0.35",
            fontweight="bold" if on else "normal",
            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))


def draw_lifecycle(walk: pd.DataFrame, title: str = "") -> Figure:
    """The state machine with the states and transitions in ``walk`` (``state_walk(events)``) in red.

    A ``rename`` is drawn as a loop on the state the container was in when renamed.
    """
    if not isinstance(walk, pd.DataFrame) or not {"action", "from", "to"} <= set(walk.columns):
        raise BadInput("walk should be the table state_walk(events) returns (columns action, from, to).")
    moves = {(f, t) for f, t in zip(walk["from"], walk["to"]) if f != t}
    unknown = {s for pair in moves for s in pair} - set(POSITIONS)
    if unknown:
        raise BadInput(f"{sorted(unknown)} are not container states: pass the table state_walk(events) returns.")
    visited = set(walk["to"])
    renamed_in = set(walk.loc[walk["action"] == "rename", "from"])

    fig, ax = plt.subplots(figsize=(9, 3.6))
    for a, b, label, rad, where in TRANSITIONS:
        _edge(ax, a, b, label, rad, where, (a, b) in moves)
    for state in sorted(renamed_in | {"running"}):
        x, y = POSITIONS[state]
        on = state in renamed_in
        ax.annotate("", xy=(x + 0.3, y + 0.28), xytext=(x - 0.3, y + 0.28),
                    arrowprops=dict(arrowstyle="-|>", color="tab:red" if on else "0.65", lw=2.2 if on else 1.0,
                                    connectionstyle="arc3,rad=-1.4"))
        ax.text(x, y + 0.82, "rename", ha="center", fontsize=8, color="darkred" if on else "0.35",
                fontweight="bold" if on else "normal")
    for state in STATES:
        x, y = POSITIONS[state]
        on = state in visited
        ax.text(x, y, state, ha="center", va="center", fontsize=11, fontweight="bold" if on else "normal",
                color="white" if on else "0.3",
                bbox=dict(boxstyle="round,pad=0.5", fc="tab:red" if on else "white", ec="tab:red" if on else "0.6"))
    x, y = POSITIONS["(none)"]
    ax.plot([x], [y], "o", color="black", ms=9)
    ax.set_xlim(-3.2, 8.2)
    ax.set_ylim(-0.7, 3.2)
    ax.axis("off")
    ax.set_title(title or "Container states — red: what this container really went through (from its events)",
                 fontsize=10)
    fig.tight_layout()
    return fig
