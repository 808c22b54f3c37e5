"""Volumes and storage (notebook 07): a container's writable layer, named volumes, bind and tmpfs
mounts, backups, and disk usage — as tables, and done the same way on a local or a remote daemon.

Two facts shape this module:

* **Paths in mounts are on the daemon's machine.** A bind mount's source, a volume's
  ``Mountpoint``, a layer's ``upperdir`` all name folders where ``dockerd`` runs — the same machine
  as the notebook for a local engine, but the inside of the service's container for a class's
  ``docker:dind``. So everything here that touches such a folder does it from a short-lived
  *helper container* (which always runs on the daemon's machine), and everything that brings data
  to the notebook goes through the API (``docker cp``: ``get_archive`` / ``put_archive``).
* **A helper container's output is read from its logs, never with ``remove=True``:** a ``--rm``
  container can lose the end of its output (moby/moby#27289), and the ``json-file`` log driver
  is not binary-safe, so tars travel with ``docker cp``, not through stdout.

Every helper container carries the run's labels and a name from ``run.name(…)``, and is removed
before the function returns.
"""

from __future__ import annotations

import io
import re
import tarfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import docker
import pandas as pd
from docker.errors import APIError
from docker.models.containers import Container

from .base import BASE_IMAGE
from .errors import BadInput, CourseError, NotFound
from .execs import exec_output
from .naming import RUN, Run
from .tables import attrs, human_size

#: ``docker diff`` kinds (moby ``api/types/container.ChangeType``): 0 modified, 1 added, 2 deleted.
DIFF_KINDS = {0: "C", 1: "A", 2: "D"}


# --- the writable layer -------------------------------------------------------------------------

def diff_table(changes: Iterable[Mapping[str, Any]] | None) -> pd.DataFrame:
    """``container.diff()`` (``docker diff``) as a table ``PATH`` / ``KIND`` (A added, C changed,
    D deleted), sorted by path: the engines list the same changes in different orders (the
    containerd store and overlay2 walk the layer differently).

    Raises :class:`BadInput` for anything that is not a list of ``{"Path", "Kind"}`` dicts.
    """
    rows = []
    for change in changes or []:
        if not isinstance(change, Mapping) or "Path" not in change or change.get("Kind") not in DIFF_KINDS:
            raise BadInput(f"diff_table() takes what container.diff() returns (dicts with Path and Kind), "
                           f"not {change!r}.")
        rows.append({"PATH": change["Path"], "KIND": DIFF_KINDS[change["Kind"]]})
    rows.sort(key=lambda r: r["PATH"])
    return pd.DataFrame(rows, columns=["PATH", "KIND"])


def _container(obj: Any) -> Container:
    if not isinstance(obj, Container):
        raise BadInput(f"Expected a docker-py Container, not {type(obj).__name__}: pass what "
                       "client.containers.run(...) or client.containers.get(name) returned.")
    return obj


def root_mount(container: Container) -> dict[str, Any]:
    """The container's root filesystem as the kernel mounted it (its line of ``/proc/mounts``,
    read inside the running container): ``type`` (``overlay`` on both the classic ``overlay2``
    driver and the containerd store's ``overlayfs`` snapshotter), the read-only ``lowerdir``
    folders (image layers, newest first, and the "init" layer with /etc/hosts & co.), the
    ``upperdir`` (the writable layer) and the ``workdir`` (overlayfs' scratch space).

    The folders are paths on the daemon's machine. See the kernel's overlayfs documentation
    (Documentation/filesystems/overlayfs.rst) and Docker's "OverlayFS storage driver" page.
    Raises :class:`BadInput` for a container that is not running (its root is not mounted).
    """
    container = _container(container)
    container.reload()
    if container.status != "running":
        raise BadInput(f"{container.name} is {container.status}: its root filesystem is mounted only "
                       "while it runs, so start it first (container.start()).")
    mounts = exec_output(container, ["cat", "/proc/mounts"]).output.decode()
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1] == "/":
            options = dict(o.split("=", 1) if "=" in o else (o, "") for o in fields[3].split(","))
            lower = options.get("lowerdir", "")
            return {"type": fields[2], "lowerdir": lower.split(":") if lower else [],
                    "upperdir": options.get("upperdir", ""), "workdir": options.get("workdir", "")}
    raise CourseError(f"{container.name} has no root filesystem in /proc/mounts: is it a Linux container?")


def layers_table(mount: Mapping[str, Any]) -> pd.DataFrame:
    """:func:`root_mount`'s answer as one row per overlay part: ``PART`` (lowerdir 1…n, upperdir,
    workdir), ``ROLE`` and ``WRITABLE`` — without the paths, which differ by engine."""
    roles = []
    lowers = list(mount.get("lowerdir") or [])
    for i, _ in enumerate(lowers, 1):
        roles.append({"PART": f"lowerdir {i} of {len(lowers)}", "ROLE": "a layer below (read-only)",
                      "WRITABLE": False})
    if mount.get("upperdir"):
        roles.append({"PART": "upperdir", "ROLE": "the container's writable layer", "WRITABLE": True})
    if mount.get("workdir"):
        roles.append({"PART": "workdir", "ROLE": "overlayfs' scratch space for copy-up", "WRITABLE": True})
    return pd.DataFrame(roles, columns=["PART", "ROLE", "WRITABLE"])


def run_helper(client: docker.DockerClient, run: Run, what: str, command: list[str],
               **kwargs: Any) -> tuple[int, str]:
    """Run a short helper container (``docker run`` without ``--rm``: create, start, wait, read
    the logs, remove) with the run's labels and ``run.name(what)``; returns (exit code, output).

    ``kwargs`` are ``containers.create``'s (``volumes=``, ``mounts=``, ``tmpfs=``…). Raises
    :class:`BadInput` for a command that is not a list of strings.
    """
    if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
        raise BadInput(f"command should be a list of strings like ['ls', '/data'], not {command!r}.")
    box = client.containers.create(BASE_IMAGE, command, name=run.name(what), labels=run.labels, **kwargs)
    try:
        box.start()
        code = box.wait()["StatusCode"]
        return code, box.logs().decode(errors="replace")
    finally:
        box.remove(force=True, v=True)


_STAT = "find . -mindepth 1 | sort | while read -r f; do stat -c '%n|%F|%s' \"$f\"; done"


def writable_layer(client: docker.DockerClient, run: Run, container: Container) -> pd.DataFrame:
    """What the container's writable layer (overlayfs' ``upperdir``) holds: one row per entry,
    ``PATH`` / ``TYPE`` (``file``, ``folder``, or ``whiteout`` — the character device 0/0 that
    hides a deleted file of a layer below) / ``SIZE`` of files.

    The folder is on the daemon's machine, so a helper container mounts it read-only and lists
    it. Raises :class:`BadInput` for a stopped container (see :func:`root_mount`).
    """
    upper = root_mount(container)["upperdir"]
    if not upper:
        raise CourseError(f"{container.name}'s root filesystem has no upperdir: it is not an overlay mount.")
    code, out = run_helper(client, run, "layer-lister", ["sh", "-c", f"cd /upper && {_STAT}"],
                           volumes={upper: {"bind": "/upper", "mode": "ro"}})
    if code != 0:
        raise CourseError(f"listing {container.name}'s writable layer failed ({code}): {out.strip()}")
    kinds = {"regular file": "file", "regular empty file": "file", "directory": "folder",
             "character special file": "whiteout", "symbolic link": "symlink"}
    rows = []
    for line in out.splitlines():
        name, kind, size = line.rsplit("|", 2)
        kind = kinds.get(kind, kind)
        rows.append({"PATH": name[1:], "TYPE": kind, "SIZE": int(size) if kind == "file" else None})
    return pd.DataFrame(rows, columns=["PATH", "TYPE", "SIZE"]).astype({"SIZE": "Int64"})


# --- volumes and mounts -------------------------------------------------------------------------

VOLUME_COLUMNS = ("DRIVER", "VOLUME NAME", "SCOPE", "LABELLED FOR THIS RUN")


def volumes_table(volumes: Iterable[Any], run: Run | None = None) -> pd.DataFrame:
    """Like ``docker volume ls`` (DRIVER, VOLUME NAME) plus the scope and, given ``run``, whether
    the volume carries that run's label (a volume that ``-v`` created on the fly carries none).
    Sorted by name. Takes ``client.volumes.list()`` models or their ``.attrs`` dicts.

    The ``Mountpoint`` (``<data root>/volumes/<name>/_data`` for the ``local`` driver, a path on
    the daemon's machine) is left out: read it from ``volume.attrs["Mountpoint"]``."""
    rows = [{"DRIVER": attrs(v).get("Driver", ""), "VOLUME NAME": attrs(v).get("Name", ""),
             "SCOPE": attrs(v).get("Scope", ""),
             "LABELLED FOR THIS RUN": None if run is None else (attrs(v).get("Labels") or {}).get(RUN) == run.id}
            for v in volumes]
    rows.sort(key=lambda r: r["VOLUME NAME"])
    columns = list(VOLUME_COLUMNS) if run is not None else list(VOLUME_COLUMNS[:-1])
    return pd.DataFrame(rows, columns=columns)


MOUNT_COLUMNS = ("TYPE", "SOURCE", "DESTINATION", "RW")


def mounts_table(container: Container) -> pd.DataFrame:
    """A container's mounts from its inspect document (``docker inspect -f '{{json .Mounts}}'``):
    ``TYPE`` (volume, bind, tmpfs), ``SOURCE`` (the volume's name, or the bind's path on the
    daemon's machine), ``DESTINATION`` in the container, ``RW``. Sorted by destination.

    tmpfs mounts made with ``--tmpfs`` (docker-py ``tmpfs=``) are not listed in ``Mounts`` (they
    live in ``HostConfig.Tmpfs``); they are added here as ``tmpfs`` rows, as ``--mount
    type=tmpfs`` ones are.
    """
    container = _container(container)
    container.reload()
    rows = []
    for m in container.attrs.get("Mounts") or []:
        source = m.get("Name") if m.get("Type") == "volume" else m.get("Source", "")
        rows.append({"TYPE": m.get("Type", ""), "SOURCE": source or "", "DESTINATION": m.get("Destination", ""),
                     "RW": bool(m.get("RW"))})
    listed = {r["DESTINATION"] for r in rows}
    for dest, options in (container.attrs.get("HostConfig", {}).get("Tmpfs") or {}).items():
        if dest not in listed:
            rows.append({"TYPE": "tmpfs", "SOURCE": "", "DESTINATION": dest, "RW": "ro" not in options.split(",")})
    rows.sort(key=lambda r: r["DESTINATION"])
    return pd.DataFrame(rows, columns=list(MOUNT_COLUMNS))


def list_volume(client: docker.DockerClient, run: Run, volume: str, folder: str = ".") -> pd.DataFrame:
    """The files in a named volume (read-only, by a helper container): ``PATH`` / ``TYPE`` /
    ``SIZE``, like :func:`writable_layer`. Raises :class:`NotFound` when there is no such volume
    (a helper would otherwise create an empty, unlabelled one)."""
    _volume(client, volume)
    code, out = run_helper(client, run, "volume-lister", ["sh", "-c", f"cd /v/{folder} && {_STAT}"],
                           volumes={volume: {"bind": "/v", "mode": "ro"}})
    if code != 0:
        raise CourseError(f"listing volume {volume} failed ({code}): {out.strip()}")
    rows = []
    for line in out.splitlines():
        name, kind, size = line.rsplit("|", 2)
        kind = "folder" if kind == "directory" else "file" if "regular" in kind else kind
        rows.append({"PATH": name[2:], "TYPE": kind, "SIZE": int(size) if kind == "file" else None})
    return pd.DataFrame(rows, columns=["PATH", "TYPE", "SIZE"]).astype({"SIZE": "Int64"})


def read_from_volume(client: docker.DockerClient, run: Run, volume: str, path: str) -> str | None:
    """The text of the file ``path`` (relative to the volume's root) in a named volume, read by a
    helper container that mounts it read-only; None when there is no such file. Raises
    :class:`NotFound` when there is no such volume."""
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
        raise BadInput(f"path should be a file inside the volume such as 'todo.txt', not {path!r}.")
    _volume(client, volume)
    code, out = run_helper(client, run, "volume-reader", ["cat", f"/v/{path}"],
                           volumes={volume: {"bind": "/v", "mode": "ro"}})
    return out if code == 0 else None


def _volume(client: docker.DockerClient, name: str) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise BadInput(f"a volume is named by a string such as run.name('data'), not {name!r}.")
    try:
        return client.api.inspect_volume(name)
    except docker.errors.NotFound:
        raise NotFound(f"there is no volume {name}: create it with client.volumes.create(run.name(…), "
                       "labels=run.labels).") from None


# --- bind mounts: whose machine? ----------------------------------------------------------------

def shares_files(client: docker.DockerClient, run: Run) -> bool:
    """Whether the daemon sees this machine's files at the same paths — True for a local engine
    (and Docker Desktop's shared folders), False for a daemon elsewhere, such as a class's dind
    service. Asked, not guessed: a folder is made here with a random token in it, and a helper
    container bind-mounts that path with ``--mount`` (which, unlike ``-v``, refuses a source that
    does not exist instead of creating it) and prints the token back.

    A daemon host name cannot tell this: a JupyterHub dind sidecar answers on localhost but keeps
    its own files.
    """
    probe = run.path("probe")
    probe.mkdir(exist_ok=True)
    token = run.id + "-" + str(time.monotonic_ns())
    (probe / "token").write_text(token)
    mount = docker.types.Mount("/probe", str(probe), type="bind", read_only=True)
    try:
        code, out = run_helper(client, run, "probe", ["cat", "/probe/token"], mounts=[mount])
    except APIError as err:
        if "does not exist" in str(err):
            return False
        raise
    return code == 0 and out.strip() == token


def remove_on_daemon(client: docker.DockerClient, run: Run, *paths: str | Path) -> bool:
    """Remove folders of this run on the *daemon's* machine — bind-mount sources that ``-v``
    created there, holding files owned by the container's root — with a helper container; returns
    whether they are all gone. Only folders directly in the run's own folder (``run.path(…)``) are
    accepted.

    The run's folder on the daemon's machine goes too when that leaves it empty (so it does with a
    remote daemon; on a local one it still holds the run's owner file, which ``run.cleanup()``
    removes with it).
    """
    names = []
    for path in paths:
        path = Path(path)
        if path.parent != run.files or path.name in ("", ".", ".."):
            raise BadInput(f"remove_on_daemon() removes folders of this run, such as run.path('site'), "
                           f"not {str(path)!r}.")
        names.append(f"'/files/{run.prefix}/{path.name}'")
    if not names:
        return True
    gone = " && ".join(f"test ! -e {n}" for n in names)
    code, _ = run_helper(client, run, "remover",
                         ["sh", "-c", f"rm -rf {' '.join(names)}; rmdir '/files/{run.prefix}' 2>/dev/null; {gone}"],
                         volumes={str(run.files.parent): {"bind": "/files"}})
    return code == 0


# --- backup, restore, docker cp -----------------------------------------------------------------

def _tar_of(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def copy_in(container: Container, source: str | Path, folder: str) -> None:
    """``docker cp SOURCE CONTAINER:FOLDER/`` for one file: the file travels to the daemon in a
    tar (``put_archive``), so it works with a remote daemon too. Works on a stopped container,
    and into its volumes. Raises :class:`NotFound` for a missing source file."""
    container = _container(container)
    source = Path(source)
    if not source.is_file():
        raise NotFound(f"there is no file {source} on this machine to copy in.")
    if not container.put_archive(folder, _tar_of(source.name, source.read_bytes())):
        raise CourseError(f"the daemon refused to copy {source.name} into {container.name}:{folder}.")


def copy_out(container: Container, path: str, destination: str | Path) -> Path:
    """``docker cp CONTAINER:PATH DESTINATION`` for one file: the daemon sends it in a tar
    (``get_archive``), which is unpacked here; returns ``destination``. Raises :class:`NotFound`
    when the container has no such file."""
    container = _container(container)
    try:
        chunks, stat = container.get_archive(path)
    except docker.errors.NotFound:
        raise NotFound(f"{container.name} has no {path} to copy out.") from None
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.getmember(stat["name"])
        extracted = tar.extractfile(member)
        if extracted is None:
            raise BadInput(f"{container.name}:{path} is a {('folder' if member.isdir() else 'special file')}: "
                           "copy_out() copies one file.")
        destination = Path(destination)
        destination.write_bytes(extracted.read())
    return destination


def backup(client: docker.DockerClient, run: Run, volume: str, destination: str | Path) -> Path:
    """Back up a named volume into a tar on this machine; returns ``destination``.

    A helper container mounts the volume read-only at ``/data`` and runs ``tar cf /backup.tar -C
    /data .`` into its own writable layer; ``docker cp`` then brings the tar here. (Docker's
    documentation bind-mounts ``$(pwd)`` instead, which writes the tar on the *daemon's* machine.)
    Raises :class:`NotFound` when there is no such volume.
    """
    _volume(client, volume)
    box = client.containers.create(BASE_IMAGE, ["tar", "cf", "/backup.tar", "-C", "/data", "."],
                                   name=run.name("backup"), labels=run.labels,
                                   volumes={volume: {"bind": "/data", "mode": "ro"}})
    try:
        box.start()
        code = box.wait()["StatusCode"]
        if code != 0:
            raise CourseError(f"tar in the backup container failed ({code}): {box.logs().decode().strip()}")
        return copy_out(box, "/backup.tar", destination)
    finally:
        box.remove(force=True)


def restore(client: docker.DockerClient, run: Run, source: str | Path, volume: str) -> None:
    """Restore a tar made by :func:`backup` into the named volume ``volume`` (which must exist:
    create it with the run's labels first). A helper container with the volume at ``/data``
    gets the tar by ``docker cp`` and unpacks it with ``tar xf``. Raises :class:`NotFound` for a
    missing volume or tar."""
    _volume(client, volume)
    source = Path(source)
    if not source.is_file():
        raise NotFound(f"there is no backup {source} on this machine: make one with backup().")
    box = client.containers.create(BASE_IMAGE, ["tar", "xf", "/backup.tar", "-C", "/data"],
                                   name=run.name("restore"), labels=run.labels,
                                   volumes={volume: {"bind": "/data", "mode": "rw"}})
    try:
        box.put_archive("/", _tar_of("backup.tar", source.read_bytes()))   # docker cp FILE restore:/backup.tar
        box.start()
        code = box.wait()["StatusCode"]
        if code != 0:
            raise CourseError(f"tar in the restore container failed ({code}): {box.logs().decode().strip()}")
    finally:
        box.remove(force=True)


def tar_table(path: str | Path) -> pd.DataFrame:
    """The members of a tar on this machine: ``NAME`` / ``TYPE`` / ``SIZE``, sorted by name.
    Raises :class:`NotFound` for a missing file and :class:`BadInput` for one that is not a tar."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"there is no file {path}.")
    try:
        with tarfile.open(path) as tar:
            rows = [{"NAME": m.name, "TYPE": "folder" if m.isdir() else "file" if m.isfile() else "other",
                     "SIZE": m.size if m.isfile() else None} for m in tar.getmembers()]
    except tarfile.TarError:
        raise BadInput(f"{path.name} is not a tar: make it with backup().") from None
    rows.sort(key=lambda r: r["NAME"])
    return pd.DataFrame(rows, columns=["NAME", "TYPE", "SIZE"]).astype({"SIZE": "Int64"})


# --- disk usage ---------------------------------------------------------------------------------

#: The containerd image store, under load, may fail a whole listing because another run removed
#: an image meanwhile: "failed to read config content: NotFound" (404 or 500).
_TRANSIENT = re.compile(r"NotFound|not found|No such image", re.I)


def disk_usage(client: docker.DockerClient, patience: float = 60) -> dict[str, Any]:
    """``client.df()`` (``GET /system/df``, ``docker system df``), asked again for up to
    ``patience`` seconds while the containerd image store fails it for an object another run
    removed meanwhile (a transient 404/500: "failed to read config content: NotFound", "snapshot
    … does not exist"). With many learners creating and removing containers, the store walks
    snapshots that come and go, so a few tries in a row can fail. Other errors are raised at once."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return client.df()
        except APIError as err:
            if not _TRANSIENT.search(str(err)) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # another run's removal is under way: no event marks its end


def df_table(df: Mapping[str, Any]) -> pd.DataFrame:
    """``docker system df``: one row per TYPE (Images, Containers, Local Volumes, Build Cache) with
    TOTAL, ACTIVE (images used by a container, running containers, volumes used by a container,
    cache records in use) and SIZE (the layers' size, the containers' writable layers, the volumes'
    files, the build cache). The CLI's RECLAIMABLE column is left out: it depends on how the
    engine shares layers (docker/cli ``cli/command/formatter/disk_usage.go``)."""
    if not isinstance(df, Mapping) or "Images" not in df:
        raise BadInput("df_table() takes what client.df() (or disk_usage(client)) returns.")
    images = df.get("Images") or []
    containers = df.get("Containers") or []
    volumes = df.get("Volumes") or []
    cache = df.get("BuildCache") or []

    def usage(v: Mapping[str, Any], key: str) -> int:
        value = (v.get("UsageData") or {}).get(key)
        return value if isinstance(value, int) and value > 0 else 0  # -1: not computed

    rows = [
        {"TYPE": "Images", "TOTAL": len(images), "ACTIVE": sum(1 for i in images if (i.get("Containers") or 0) > 0),
         "SIZE": human_size(df.get("LayersSize") or 0)},
        {"TYPE": "Containers", "TOTAL": len(containers),
         "ACTIVE": sum(1 for c in containers if c.get("State") == "running"),
         "SIZE": human_size(sum(c.get("SizeRw") or 0 for c in containers))},
        {"TYPE": "Local Volumes", "TOTAL": len(volumes), "ACTIVE": sum(1 for v in volumes if usage(v, "RefCount")),
         "SIZE": human_size(sum(usage(v, "Size") for v in volumes))},
        {"TYPE": "Build Cache", "TOTAL": len(cache), "ACTIVE": sum(1 for b in cache if b.get("InUse")),
         "SIZE": human_size(sum(b.get("Size") or 0 for b in cache if not b.get("Shared")))},
    ]
    return pd.DataFrame(rows, columns=["TYPE", "TOTAL", "ACTIVE", "SIZE"])


def volume_usage(df: Mapping[str, Any], run: Run) -> pd.DataFrame:
    """The run's own volumes in ``docker system df -v``: ``VOLUME NAME`` / ``LINKS`` (containers
    using it) / ``SIZE`` in bytes (the sum of its files' sizes, as the daemon counts them)."""
    if not isinstance(df, Mapping) or "Volumes" not in df:
        raise BadInput("volume_usage() takes what client.df() (or disk_usage(client)) returns.")
    rows = [{"VOLUME NAME": v["Name"], "LINKS": (v.get("UsageData") or {}).get("RefCount"),
             "SIZE": (v.get("UsageData") or {}).get("Size")}
            for v in df.get("Volumes") or [] if v.get("Name", "").startswith(run.prefix + "-")]
    rows.sort(key=lambda r: r["VOLUME NAME"])
    return pd.DataFrame(rows, columns=["VOLUME NAME", "LINKS", "SIZE"])
