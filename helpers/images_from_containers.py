"""Images made from containers (commit, export, import) as tables.

``docker export`` writes a container's whole filesystem as one tar: :func:`tar_members` lists it
and :func:`tar_summary` counts it by top-level folder. ``docker commit`` and ``docker import`` both
make an image from a container, but keep very different things: :func:`compare_images` puts the
facts that differ side by side (layers, history, config, author, comment).
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import Any

import docker
import pandas as pd
from docker.errors import ImageNotFound

from .errors import BadInput, NotFound

_KINDS = {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
          tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char device",
          tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "fifo"}

MEMBER_COLUMNS = ("name", "type", "size", "mode", "link")


def _open(path: str | Path) -> tarfile.TarFile:
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path} does not exist: write it first (e.g. docker export -o {path.name} CONTAINER).")
    if not tarfile.is_tarfile(path):
        raise BadInput(f"{path} is not a tar archive: pass the file that docker export (or save) wrote.")
    return tarfile.open(path)


def tar_members(path: str | Path) -> pd.DataFrame:
    """Every entry of a tar as a row: name, type (file/dir/symlink…), size in bytes, mode, link target."""
    with _open(path) as tar:
        rows = [{"name": m.name.rstrip("/"), "type": _KINDS.get(m.type, m.type.decode()),
                 "size": m.size, "mode": f"{m.mode:04o}", "link": m.linkname} for m in tar.getmembers()]
    return pd.DataFrame(rows, columns=list(MEMBER_COLUMNS))


def tar_summary(path: str | Path) -> pd.DataFrame:
    """Entries of a tar counted by top-level folder and type (a tar of a filesystem has thousands)."""
    members = tar_members(path)
    top = members["name"].str.split("/").str[0]
    table = pd.crosstab(top.rename("top-level"), members["type"].rename("type"))
    table.columns.name = None
    return table


#: The rows of :func:`compare_images`, in order.
FACTS = ("layers", "history rows", "Config.Cmd", "Config.Env", "Config.ExposedPorts", "Author", "Comment")


def image_facts(client: docker.DockerClient, ref: str) -> dict[str, Any]:
    """What an image kept of where it came from: its layers, history and config."""
    if not isinstance(ref, str) or not ref:
        raise BadInput(f"an image is named by a str such as 'name:tag', not {ref!r}.")
    try:
        image = client.images.get(ref)
    except ImageNotFound:
        raise NotFound(f"there is no image {ref}: commit or import it first.") from None
    doc, config = image.attrs, image.attrs.get("Config") or {}
    ports = config.get("ExposedPorts")
    return {"layers": len(doc["RootFS"].get("Layers") or []),
            "history rows": len(image.history()),
            "Config.Cmd": " ".join(config.get("Cmd") or []) or "(none)",
            "Config.Env": ", ".join(config.get("Env") or []) or "(none)",
            "Config.ExposedPorts": ", ".join(sorted(ports)) if ports else "(none)",
            "Author": doc.get("Author") or "(none)",
            "Comment": doc.get("Comment") or "(none)"}


def compare_images(client: docker.DockerClient, images: dict[str, str]) -> pd.DataFrame:
    """Images side by side: one column per label of ``images`` ({"committed": ref, …}), one row per fact."""
    if not isinstance(images, dict) or not images:
        raise BadInput("pass a dict of column label → image reference, e.g. {'committed': run.image('web')}.")
    return pd.DataFrame({label: image_facts(client, ref) for label, ref in images.items()},
                        index=list(FACTS))


def commit_steps(events: list[dict[str, Any]]) -> pd.DataFrame:
    """What each ``docker commit`` of one container did to it, from the container's ``pause``,
    ``unpause`` and ``commit`` events (oldest first, e.g. ``EventRecorder.wait_for(…,
    actions=COMMIT_ACTIONS)``): one row per commit, indexed by commit (1, 2, …) and whether the
    container was frozen during it; the column "events, in order" joins its events with " → ".

    A commit with ``--pause`` (the default) logs ``pause → commit → unpause``; without, ``commit``
    alone. One echo is left out: the daemon also logs a ``pause`` when containerd's own "paused"
    notice reaches it after the unpause, then ``unpause`` again (moby ``daemon/monitor.go``,
    ``ProcessEvent``: it logs when its state disagrees) — a ``pause → unpause`` right after an
    ``unpause`` with no commit in between. Raises BadInput for anything but a list of events.
    """
    if not isinstance(events, list) or not all(isinstance(e, dict) and "Action" in e for e in events):
        raise BadInput("events should be a list of event dicts (with an 'Action'), as EventRecorder.wait_for returns.")
    done: list[list[str]] = []     # one list of actions per commit
    pending: list[str] = []        # actions since the last commit
    for action in (e["Action"] for e in events):
        if action == "commit":
            done.append(pending + ["commit"])
            pending = []
        elif action == "unpause" and not pending and done and done[-1][-1] == "commit" and "pause" in done[-1]:
            done[-1].append("unpause")           # the thaw that ends a paused commit
        elif action == "unpause" and pending == ["pause"] and done and done[-1][-1] == "unpause":
            pending = []                         # the daemon's echo of the last commit's pause
        elif action in ("pause", "unpause"):
            pending.append(action)
    rows = [{"commit": i, "pause": "pause" in steps and steps.index("pause") < steps.index("commit"),
             "events, in order": " → ".join(steps)} for i, steps in enumerate(done, start=1)]
    return pd.DataFrame(rows, columns=["commit", "pause", "events, in order"]).set_index(["commit", "pause"])
