"""The reaper: remove the objects of runs whose kernel died, never another learner's live ones.

A learner closes a tab mid-cell, a kernel crashes, a teacher kills a frozen one: the run's
``run.cleanup()`` never comes, and its containers, networks, volumes, image tags and files
stay on the shared daemon. As testcontainers' Ryuk does, the reaper finds them *by label* and
removes them *once their owner is gone*:

* every object of a run carries ``org.dockercourse.owner = "<hostname>:<pid>:<starttime>"`` of
  the process (the kernel) that made it, and the run's folder of files holds an ``owner`` file
  with the same line (image tags carry no labels: the owner file speaks for them);
* an owner is **dead** when its hostname is this machine's and no process has that pid — or one
  has, but it started at another time (the pid was reused; ``starttime`` is field 22 of
  ``/proc/<pid>/stat``);
* an owner on **another hostname** (another machine sharing the daemon) is never judged by pid:
  its runs are removed only when ``max_age`` is given and everything of the run is older than it.

A run is reaped only when *every* owner it names is dead. :func:`reap` is called by every new
:class:`~helpers.naming.Run` (silently, best-effort) and by ``./course clean --dead``.
"""

from __future__ import annotations

import os
import socket
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import docker
from docker.errors import DockerException

from .listing import api_images


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}").exists() and "zombie" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return ""


OWNER_FILE = "owner"


def _naming():  # naming imports this module; import it lazily to keep the cycle harmless
    from . import naming
    return naming


# --- owners ---------------------------------------------------------------------------------------

def process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after the last ')'
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


_OWNERS: dict[int, str] = {}


def owner_of(pid: int | None = None) -> str:
    """``hostname:pid:starttime`` of ``pid`` (default: this process)."""
    if pid is not None and pid != os.getpid():
        return f"{socket.gethostname()}:{pid}:{process_start(pid) or ''}"
    pid = os.getpid()  # cached for this process (a forked child has another pid)
    if pid not in _OWNERS:
        _OWNERS[pid] = f"{socket.gethostname()}:{pid}:{process_start(pid) or ''}"
    return _OWNERS[pid]


def owner_alive(owner: str) -> bool | None:
    """True/False for an owner on this machine; None when it cannot be judged here
    (another hostname, or a label that is not ``host:pid[:start]``)."""
    parts = owner.split(":")
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    host, pid = parts[0], int(parts[1])
    if host != socket.gethostname():
        return None
    if not pid_alive(pid):
        return False
    started = parts[2] if len(parts) > 2 else ""
    return not started or process_start(pid) == started


def write_owner(folder: Path, owner: str | None = None) -> None:
    """Add ``owner`` (default: this process) to the run folder's owner file."""
    owner = owner or owner_of()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / OWNER_FILE
    try:
        known = path.read_text().split()
    except OSError:
        known = []
    if owner not in known:
        with open(path, "a") as out:
            out.write(owner + "\n")


# --- runs found on the daemon and on disk ---------------------------------------------------------

@dataclass
class FoundRun:
    """What the reaper knows about one run id."""

    id: str
    owners: set[str] = field(default_factory=set)
    newest: float = 0.0  # epoch seconds of its newest object
    objects: int = 0

    def verdict(self) -> bool | None:
        """True: every owner is dead on this machine; False: one is alive; None: cannot tell."""
        if not self.owners:
            return None
        seen = [owner_alive(o) for o in self.owners]
        if any(s is True for s in seen):
            return False
        if any(s is None for s in seen):
            return None
        return True


def _epoch(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.rstrip("Z").split(".")[0] + "+00:00").timestamp()
        except ValueError:
            return 0.0
    return 0.0


def find_runs(client: docker.DockerClient, files: Path | None = None) -> dict[str, FoundRun]:
    """Every run id with objects on the daemon or a folder under ``files`` (the files root)."""
    naming = _naming()
    files = naming.files_root() if files is None else files
    runs: dict[str, FoundRun] = {}

    def note(run_id: str | None, owner: str | None, created) -> None:
        if not run_id:
            return
        found = runs.setdefault(run_id, FoundRun(run_id))
        if owner:
            found.owners.add(owner)
        found.newest = max(found.newest, _epoch(created))
        found.objects += 1

    label = {"label": naming.RUN}
    api = client.api
    for c in api.containers(all=True, filters=label):
        lab = c.get("Labels") or {}
        note(lab.get(naming.RUN), lab.get(naming.OWNER), c.get("Created"))
    for n in api.networks(filters=label):
        lab = n.get("Labels") or {}
        note(lab.get(naming.RUN), lab.get(naming.OWNER), n.get("Created"))
    for v in api.volumes(filters=label).get("Volumes") or []:
        lab = v.get("Labels") or {}
        note(lab.get(naming.RUN), lab.get(naming.OWNER), v.get("CreatedAt"))
    for i in api_images(api, all=True):
        lab = i.get("Labels") or {}
        note(lab.get(naming.RUN), lab.get(naming.OWNER), i.get("Created"))
        for tag in i.get("RepoTags") or []:
            if naming.RUN_TAG.search(tag):
                note(_tag_run(tag), None, i.get("Created"))
    if files.is_dir():
        for folder in files.glob(naming.PREFIX + "*"):
            run_id = folder.name[len(naming.PREFIX):]
            if len(run_id) != 6:
                continue
            try:
                owners = (folder / OWNER_FILE).read_text().split()
                created = (folder / OWNER_FILE).stat().st_mtime
            except OSError:
                owners, created = [], _mtime(folder)
            found = runs.setdefault(run_id, FoundRun(run_id))
            found.owners.update(owners)
            found.newest = max(found.newest, created)
    return runs


def _tag_run(tag: str) -> str:
    """The run id in an image reference ``[registry/]dc-<id>-what:tag``."""
    name = tag.rsplit("/", 1)[-1]
    return name[len(_naming().PREFIX):][:6]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


# --- reaping --------------------------------------------------------------------------------------

@dataclass
class Reaped:
    """What :func:`reap` did: the run ids removed, the objects removed, the runs it left alone."""

    runs: list[str] = field(default_factory=list)
    removed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    live: int = 0
    unknown: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        objects = ", ".join(f"{n} {kind}" for kind, n in self.removed.items() if n) or "nothing"
        text = (f"{len(self.runs)} dead run(s) reaped ({objects}); {self.live} live run(s) and "
                f"{self.unknown} run(s) of other machines or unknown owners left alone")
        return text + (f"; could not remove: {'; '.join(self.errors)}" if self.errors else "")


def reap(client: docker.DockerClient, max_age: float | None = None, keep: str | None = None,
         files: Path | None = None, only: set[str] | None = None) -> Reaped:
    """Remove every object of every dead run (see the module docstring).

    ``max_age`` (seconds): also remove runs whose owner cannot be judged here (another machine,
    no owner recorded) when their newest object is older than that. ``keep``: a run id never
    to touch (the caller's own). ``only``: consider just these run ids.
    """
    naming = _naming()
    files = naming.files_root() if files is None else files
    result = Reaped()
    now = time.time()
    for run_id, found in sorted(find_runs(client, files).items()):
        if run_id == keep or (only is not None and run_id not in only):
            continue
        verdict = found.verdict()
        if verdict is False:
            result.live += 1
            continue
        if verdict is None and (max_age is None or now - found.newest < max_age):
            result.unknown += 1
            continue
        try:
            removed = naming.remove_objects(client, {"label": f"{naming.RUN}={run_id}"},
                                            tag_prefix=f"{naming.PREFIX}{run_id}-",
                                            files=files / f"{naming.PREFIX}{run_id}")
        except DockerException as err:  # e.g. an image another image still depends on
            result.errors.append(f"run {run_id}: {str(err).splitlines()[0][:160]}")
            continue
        result.runs.append(run_id)
        for kind, n in removed.items():
            result.removed[kind] += n
    return result


def reap_quietly(client: docker.DockerClient, keep: str | None = None) -> Reaped | None:
    """:func:`reap` for a new Run's setup cell: best-effort, silent, never raises."""
    if os.environ.get("COURSE_NO_REAPER"):
        return None
    try:
        return reap(client, keep=keep)
    except Exception:  # noqa: BLE001 — the setup cell must not fail because of someone else's leftovers
        return None
