"""Names, labels and clean-up: every object a run of a notebook makes is findable and removable.

A :class:`Run` stamps each container, network and volume with the course's labels and gives it
a name unique to the run (``dc-<6 hex>-<what>``); image tags and files get the same prefix. Two
learners (or two test workers) on one daemon therefore never collide, and ``run.cleanup()``
removes exactly what this run made — never another run's objects, never a base image.

The label namespace ``org.dockercourse.`` is the course's own, as testcontainers keeps
``org.testcontainers.``: learners' labels may not use it.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import APIError, NotFound as DockerNotFound

from .listing import api_images

from . import reaper
from .errors import BadInput

NAMESPACE = "org.dockercourse."
MANAGED = NAMESPACE + "managed"
RUN = NAMESPACE + "run"
TOPIC = NAMESPACE + "topic"
OWNER = NAMESPACE + "owner"  # host:pid:starttime of the kernel that made it (helpers.reaper)

PREFIX = "dc-"
_WHAT = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
RUN_TAG = re.compile(r"(^|/)" + PREFIX + r"[0-9a-f]{6}-")


def files_root() -> Path:
    """Where runs write their files (tars and the like): one folder per run."""
    return Path(tempfile.gettempdir()) / "docker-course"


@dataclass
class Run:
    """One run of one notebook: its id, names, labels, files, and its clean-up.

    >>> run = Run(client, "images")          # doctest: +SKIP
    >>> run.name("web")                      # doctest: +SKIP
    'dc-3f9a1c-web'
    """

    client: docker.DockerClient
    topic: str
    id: str = field(default_factory=lambda: secrets.token_hex(3))
    #: True once :meth:`cleanup` has begun: what the run's widgets would create now, nothing would
    #: remove (the Clean-up cell has run), so they refuse and say so.
    cleaned_up: bool = field(default=False, init=False)
    _on_cleanup: list[Callable[[], None]] = field(default_factory=list, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.client, docker.DockerClient):
            raise BadInput(f"Run() takes the client from connect() first, not {type(self.client).__name__}: "
                           "write run = Run(client, \"topic\").")
        if not isinstance(self.topic, str) or not _WHAT.match(self.topic):
            raise BadInput(f"A run's topic is a short lowercase word, not {self.topic!r}: write e.g. "
                           "Run(client, \"images\").")
        if not isinstance(self.id, str) or not re.fullmatch(r"[0-9a-f]{6}", self.id):
            raise BadInput(f"A run id is 6 lowercase hex digits, not {self.id!r}: leave it out to get a fresh one.")
        # the reaper: record who owns this run, then remove the objects of runs whose kernel died
        reaper.write_owner(files_root() / self.prefix)
        self.reaped = reaper.reap_quietly(self.client, keep=self.id)

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.id}"

    def name(self, what: str) -> str:
        """A container / network / volume / image repository name unique to this run."""
        if not isinstance(what, str) or not _WHAT.match(what):
            raise BadInput(
                f"{what!r} cannot be part of a Docker name: use lowercase letters, digits, '-', '_' or '.'."
            )
        return f"{self.prefix}-{what}"

    def image(self, what: str, tag: str = "v1") -> str:
        """An image reference ``dc-<id>-<what>:<tag>`` owned by this run."""
        if not isinstance(tag, str) or not _TAG.match(tag):
            raise BadInput(f"{tag!r} is not a Docker tag: use up to 128 letters, digits, '_', '.' or '-', "
                           "not starting with '.' or '-'.")
        return f"{self.name(what)}:{tag}"

    @property
    def labels(self) -> dict[str, str]:
        """Labels for every object this run creates (pass as ``labels=run.labels``)."""
        return {
            MANAGED: "true",
            RUN: self.id,
            TOPIC: self.topic,
            OWNER: reaper.owner_of(),
        }

    @property
    def filters(self) -> dict[str, str]:
        """A docker-py ``filters=`` value selecting this run's objects."""
        return {"label": f"{RUN}={self.id}"}

    @property
    def files(self) -> Path:
        """This run's own folder for files it writes (created on first use)."""
        path = files_root() / self.prefix
        path.mkdir(parents=True, exist_ok=True)
        return path

    def path(self, filename: str) -> Path:
        """A path for a file this run writes, e.g. ``run.path("busybox.tar")``."""
        if not isinstance(filename, str) or not filename or filename in (".", "..") or "/" in filename \
                or "\\" in filename or "\0" in filename:
            raise BadInput(f"run.path() takes a file name like \"busybox.tar\", not {filename!r}: "
                           "no folders, the run's own folder is chosen for you.")
        return self.files / filename

    def on_cleanup(self, callback: Callable[[], None]) -> None:
        """Have ``callback()`` called once, at the end of :meth:`cleanup` (at once if it has run):
        a widget of this run stops following the daemon and says the run was cleaned up."""
        if self.cleaned_up:
            callback()
        else:
            self._on_cleanup.append(callback)

    def cleanup(self) -> dict[str, int]:
        """Remove everything this run made; returns how many of each kind went.

        Sets :attr:`cleaned_up` first (so a widget's button pressed meanwhile creates nothing the
        removal would miss), then calls what :meth:`on_cleanup` registered, even if the removal failed.
        """
        self.cleaned_up = True
        try:
            return remove_objects(self.client, self.filters, tag_prefix=self.prefix + "-",
                                  files=files_root() / self.prefix)
        finally:
            callbacks, self._on_cleanup = self._on_cleanup, []
            for callback in callbacks:
                callback()


def remove_objects(client: docker.DockerClient, filters: dict[str, str], tag_prefix: str,
                   files: Path | None = None) -> dict[str, int]:
    """Remove containers, networks, volumes (selected by ``filters``), image tags that start
    with ``tag_prefix`` (and images labelled by ``filters``), and the folder ``files``.

    Objects that vanish meanwhile (another clean-up got there first) are not an error.
    """
    removed = {"containers": 0, "networks": 0, "volumes": 0, "images": 0, "files": 0}
    api = client.api  # raw listings: no per-object inspect that another clean-up could race into a 404
    # Four at a time: a removal mostly waits (for the kill, the kernel's veth teardown), so a run's
    # dozen containers go in a third of the time; the daemon takes them in parallel anyway.
    ids = [c["Id"] for c in api.containers(all=True, filters=filters)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        removed["containers"] = sum(pool.map(
            lambda cid: _gone_ok(lambda: api.remove_container(cid, force=True, v=True)), ids))
    for n in api.networks(filters=filters):
        if _gone_ok(lambda: remove_network_when_free(api, n["Id"])):
            removed["networks"] += 1
    for v in api.volumes(filters=filters).get("Volumes") or []:
        if _gone_ok(lambda: api.remove_volume(v["Name"], force=True)):
            removed["volumes"] += 1
    # A volume that `-v dc-<id>-data:/data` created on the fly carries no labels (the container's
    # are not passed on): it is the run's by its name. One still in use by a container the run did
    # not label is left alone (409) rather than fail the whole clean-up.
    for v in api.volumes().get("Volumes") or []:
        if RUN_TAG.match(v["Name"]) and v["Name"].startswith(tag_prefix) and not (v.get("Labels") or {}).get(MANAGED):
            try:
                if _gone_ok(lambda: api.remove_volume(v["Name"], force=True)):
                    removed["volumes"] += 1
            except APIError as err:
                if err.status_code != 409:
                    raise
    labelled = {i["Id"] for i in api_images(api, all=True, filters=filters)}
    for image in api_images(api, all=True):
        tags = [t for t in image.get("RepoTags") or [] if t != "<none>:<none>"]
        ours = [t for t in tags if RUN_TAG.search(t) and _strip_registry(t).startswith(tag_prefix)]
        if image["Id"] in labelled and len(ours) == len(tags):
            # tag by tag: the last name's removal deletes the image *and* its untagged parents (a
            # classic build's steps); `rmi -f ID` of an image with several names leaves the parents
            # dangling on the containerd image store (seen on Engine 28.5: one per run of 01)
            try:
                gone = [_gone_ok(lambda: api.remove_image(name, force=not tags)) for name in tags or [image["Id"]]]
            except APIError as err:
                if err.status_code != 409:
                    raise
                gone = [_gone_ok(lambda: api.remove_image(image["Id"], force=True))]
            removed["images"] += any(gone)
            continue
        for tag in ours:
            if _gone_ok(lambda: api.remove_image(tag)):
                removed["images"] += 1
    if files is not None and files.exists():
        removed["files"] = sum(1 for p in files.rglob("*") if p.is_file() and p.name != reaper.OWNER_FILE)
        shutil.rmtree(files, ignore_errors=True)
    return removed


#: What the daemon says about a network its removed containers still hold for a moment: a swarm
#: (overlay) network is "in use by task" until the swarm drops the containers' attachments,
#: asynchronously (seen with 2 learners at once: the removal right after the containers failed).
_STILL_HELD = ("is in use by task", "has active endpoints")


def remove_network_when_free(api: docker.APIClient, network_id: str, timeout: float = 60) -> None:
    """Remove a network, retrying while the daemon still lets go of its removed containers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            api.remove_network(network_id)
            return
        except APIError as err:
            if not any(s in str(err) for s in _STILL_HELD) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)  # no event tells when a swarm lets go: ask again, briefly


def _strip_registry(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _gone_ok(action) -> bool:
    """Run a removal; False when the object was already gone or is being removed."""
    try:
        action()
        return True
    except DockerNotFound:
        return False
    except APIError as err:
        if err.status_code == 409 and "already in progress" in str(err):
            return False
        if err.status_code == 409 and "dependent child images" in str(err):
            return False  # a build's intermediate image: it goes with the last child that is removed
        raise


def cleanup_all(client: docker.DockerClient) -> dict[str, int]:
    """Remove every object of every run of the course on this daemon (a teacher's reset)."""
    if not isinstance(client, docker.DockerClient):
        raise BadInput(f"cleanup_all() takes the client from connect(), not {type(client).__name__}: "
                       "write cleanup_all(client).")
    return remove_objects(client, {"label": MANAGED + "=true"}, tag_prefix=PREFIX, files=files_root())
