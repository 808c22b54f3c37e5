"""Images (notebook 01): search, pull progress, rmi results and image tars as tables.

These are the pieces :mod:`helpers.tables` does not cover because they are specific to images:

* :func:`search` — ``docker search`` *with* its ``--filter`` option. docker-py 7.2's
  ``client.api.search(term, limit=None)`` has no ``filters`` argument, although the Engine API
  accepts one since 1.24; this sends it, so the daemon applies the filter as the CLI does.
* :func:`search_term` — which name to search: Docker Hub online, the course registry offline.
* :func:`pull_events` / :func:`layer_progress` — the streamed JSON of ``docker pull``, per layer.
* :func:`list_images` — ``docker images``' listing, asked again when another learner removes an
  image while the daemon lists (the containerd image store then fails the whole listing).
* :func:`removal_table`, :func:`tar_contents`, :func:`inspect_summary`, :func:`sizes_table` —
  answers as tables.
* :func:`containerd_store` — whether the daemon keeps images in containerd's image store (the
  default of Docker Desktop and of fresh Engine 29 installs) or in the classic graph driver.
"""

from __future__ import annotations

import json
import re
import tarfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import pandas as pd

from .errors import BadInput, ImageNotAvailable, NotFound
from .naming import NAMESPACE
from .tables import IMAGE_FIELDS, attrs, human_size, inspect_table, short_id

#: The filters ``docker search -f`` knows (the daemon rejects any other).
SEARCH_FILTERS = ("is-official", "is-automated", "stars")
#: The CLI truncates descriptions to this many characters unless ``--no-trunc``.
DESCRIPTION_WIDTH = 45


# --- the daemon's image store and its listing ---------------------------------------------------

#: ``docker info``'s ``DriverStatus`` entry of a daemon on the containerd image store.
CONTAINERD_SNAPSHOTTER = ("driver-type", "io.containerd.snapshotter.v1")


def containerd_store(client: docker.DockerClient) -> bool:
    """True when the daemon keeps its images in containerd's image store (``docker info``:
    ``Storage Driver: overlayfs``, ``driver-type: io.containerd.snapshotter.v1``), False on the
    classic graph-driver store (``overlay2``). See
    https://docs.docker.com/engine/storage/containerd/ ."""
    status = client.info().get("DriverStatus") or []
    return any(tuple(pair) == CONTAINERD_SNAPSHOTTER for pair in status)


def _vanished_meanwhile(err: docker.errors.APIError) -> bool:
    """The daemon's answer when an image was removed while it listed: 404 from docker-py's
    per-image inspect, or the containerd store's "failed to read config content: NotFound"."""
    text = str(err.explanation or err)
    return err.status_code == 404 or "NotFound" in text or "not found" in text


def list_images(client: docker.DockerClient, name: str | None = None, all: bool = False,  # noqa: A002
                filters: Mapping[str, Any] | None = None, quiet: bool = False,
                attempts: int = 8) -> list[Any]:
    """``docker images [-a] [-q] [-f …] [NAME]``: ``client.api.images(...)``'s listing (dicts in
    the listing shape, ``Size`` as ``docker images`` shows it; ids if ``quiet``).

    On the containerd image store, listing while another client removes an image can fail as a
    whole ("failed to read config content: … not found", the error of moby/moby#46077); docker-py's
    ``client.images.list()`` also inspects every listed image, which then answers 404. The listing
    is asked again, up to ``attempts`` times; the daemon's error is raised if it persists.
    """
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise BadInput(f"name should be an image name or pattern such as 'busybox' or 'dc-*', not {name!r}.")
    if filters is not None and not isinstance(filters, Mapping):
        raise BadInput(f"filters should be a dict such as {{'dangling': True}}, not {filters!r}.")
    for attempt in range(attempts):
        try:
            return client.api.images(name=name, all=all, filters=dict(filters) if filters else None,
                                     quiet=quiet)
        except docker.errors.APIError as err:
            if not _vanished_meanwhile(err) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))   # the removal under way finishes in milliseconds
    raise AssertionError("unreachable")


# --- search -------------------------------------------------------------------------------------

def mirror_host(client: docker.DockerClient) -> str | None:
    """``127.0.0.1:5765`` when the daemon pulls through a registry mirror, else None."""
    mirrors = (client.info().get("RegistryConfig") or {}).get("Mirrors") or []
    if not mirrors:
        return None
    return mirrors[0].split("://", 1)[-1].rstrip("/")


def search_term(client: docker.DockerClient, term: str) -> str:
    """What to search for ``term``: ``MIRROR/term`` when the daemon uses a mirror (the course
    registry answers ``/v1/search`` there), plain ``term`` (Docker Hub) otherwise."""
    if not isinstance(term, str) or not term.strip():
        raise BadInput(f"{term!r} is not a search term: pass a word such as 'busybox'.")
    first = term.split("/")[0]
    if "/" in term and ("." in first or ":" in first):
        raise BadInput(f"{term!r} already names a registry ({first}): pass just the word, such as 'busybox'.")
    host = mirror_host(client)
    return f"{host}/{term}" if host else term


def search(client: docker.DockerClient, term: str, limit: int | None = None,
           filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """``docker search [--limit N] [-f KEY=VALUE …] TERM``: the daemon's answer, filters applied
    by the daemon. ``filters`` like ``{"is-official": True, "stars": 10}``."""
    if not isinstance(term, str) or not term.strip():
        raise BadInput(f"{term!r} is not a search term: pass a word such as 'busybox' (see search_term).")
    unknown = sorted(set(filters or {}) - set(SEARCH_FILTERS))
    if unknown:
        raise BadInput(f"docker search has no filter {unknown[0]!r}: use one of {', '.join(SEARCH_FILTERS)}.")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100):
        raise BadInput(f"limit must be a whole number from 1 to 100 (the daemon's range), not {limit!r}.")
    params: dict[str, Any] = {"term": term}
    if limit is not None:
        params["limit"] = limit
    if filters:  # the daemon wants {"stars": {"10": true}}, the form of every filter in the API
        params["filters"] = json.dumps({k: {_filter_value(v): True} for k, v in filters.items()})
    api = client.api
    # The same request client.api.search makes, plus `filters` (API >= 1.24), which it lacks.
    return api._result(api._get(api._url("/images/search"), params=params), True)


def _filter_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def truncate(text: str, width: int = DESCRIPTION_WIDTH) -> str:
    """Shorten like the docker CLI: ``width`` characters at most, the last one ``…``."""
    return text if len(text) <= width else text[: width - 1] + "…"


SEARCH_COLUMNS = ("NAME", "DESCRIPTION", "STARS", "OFFICIAL")


def search_table(results: Iterable[Mapping[str, Any]], no_trunc: bool = False) -> pd.DataFrame:
    """Search results like ``docker search`` (descriptions truncated unless ``no_trunc``),
    most stars first. No AUTOMATED column, as in current CLIs: Docker Hub retired automated
    builds, and from Engine 26.0 the daemon reports ``is_automated`` False for every result (see
    "is-automated" in https://docs.docker.com/engine/deprecated/)."""
    rows = [{"NAME": r.get("name", ""),
             "DESCRIPTION": r.get("description", "") if no_trunc else truncate(r.get("description", "")),
             "STARS": int(r.get("star_count", 0)), "OFFICIAL": bool(r.get("is_official"))} for r in results]
    rows.sort(key=lambda r: (-r["STARS"], r["NAME"]))
    return pd.DataFrame(rows, columns=list(SEARCH_COLUMNS))


# --- pull ---------------------------------------------------------------------------------------

def pull_events(client: docker.DockerClient, repository: str, tag: str) -> Iterator[dict[str, Any]]:
    """The decoded JSON messages of ``docker pull repository:tag`` as they arrive.

    Raises :class:`ImageNotAvailable` when the daemon refuses the pull or reports an error inside
    the stream (docker-py passes those through as ordinary messages).
    """
    if not isinstance(repository, str) or not repository.strip():
        raise BadInput(f"{repository!r} is not an image repository: pass a name such as 'busybox'.")
    if not isinstance(tag, str) or not tag.strip():
        raise BadInput("pass the tag to pull (e.g. tag='1.35'): without one docker pulls 'latest'.")
    try:
        for event in client.api.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise ImageNotAvailable(f"pulling {repository}:{tag} failed ({_one_line(event['error'])}): "
                                        "check the name and tag.")
            yield event
    except docker.errors.APIError as err:
        raise ImageNotAvailable(f"pulling {repository}:{tag} failed ({_one_line(err.explanation or err)}): "
                                "check the name and tag.") from err


def _one_line(text: object) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    line = " ".join(str(text).split())
    return line if len(line) <= 200 else line[:199] + "…"


LAYER_COLUMNS = ("LAYER", "LAST STATUS", "BYTES")


def layer_progress(events: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per layer of a pull stream: its last status and the bytes seen (the progress
    bar's data). Messages without a layer id (``Digest: …``, ``Status: …``) are not layers."""
    layers: dict[str, dict[str, Any]] = {}
    for e in events:
        layer = e.get("id")
        if not layer or e.get("status", "").startswith("Pulling from"):
            continue
        row = layers.setdefault(layer, {"LAYER": layer, "LAST STATUS": "", "BYTES": 0})
        row["LAST STATUS"] = e.get("status", "")
        detail = e.get("progressDetail") or {}
        row["BYTES"] = max(row["BYTES"], int(detail.get("total") or detail.get("current") or 0))
    return pd.DataFrame(list(layers.values()), columns=list(LAYER_COLUMNS))


def pull_summary(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """The messages of a pull that are about the whole image (``Digest: …``, ``Status: …``)."""
    return [e["status"] for e in events if e.get("status", "").startswith(("Digest:", "Status:"))]


# --- rmi ----------------------------------------------------------------------------------------

def removal_table(result: Iterable[Mapping[str, str]]) -> pd.DataFrame:
    """``client.api.remove_image(...)``'s answer as the CLI prints it: Untagged / Deleted rows."""
    rows = [{"ACTION": action, "WHAT": what if action == "Untagged" else short_id(what)}
            for item in result for action, what in item.items()]
    return pd.DataFrame(rows, columns=["ACTION", "WHAT"])


def refusal(err: docker.errors.APIError) -> str:
    """One readable line for a daemon's refusal (HTTP status and the daemon's own sentence)."""
    explanation = err.explanation or str(err)
    if isinstance(explanation, bytes):
        explanation = explanation.decode(errors="replace")
    return f"refused ({err.status_code}): {explanation}"


# --- save / load --------------------------------------------------------------------------------

TAR_COLUMNS = ("FILE", "WHAT")


def _read_tar(path: str | Path) -> tuple[dict[str, tarfile.TarInfo], list[dict[str, Any]], dict[str, Any], Path]:
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path} does not exist: save an image there first (image.save()).")
    try:
        with tarfile.open(path) as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            manifest = json.load(tar.extractfile(members["manifest.json"]))
            index = json.load(tar.extractfile(members["index.json"]))
            for entry in index.get("manifests") or []:   # the OCI manifest of each tag, by digest
                name = "blobs/" + entry["digest"].replace(":", "/")
                entry["_manifest"] = json.load(tar.extractfile(members[name]))
    except (tarfile.TarError, KeyError, ValueError) as err:
        raise BadInput(f"{path} is not an image tar written by docker save of Engine 25 or newer (no readable "
                       "manifest.json and index.json): write one with image.save().") from err
    return members, manifest, index, path


def tar_contents(path: str | Path) -> pd.DataFrame:
    """What ``docker save`` wrote (Engine 25.0 and newer: an OCI image layout), in a stable order:
    ``oci-layout``, ``index.json``, ``manifest.json``, then per image its manifest blob, its config
    blob and its layer blobs bottom-up (as ``manifest.json`` lists them).

    Left out, as they depend on the daemon's image store: the classic store's ``repositories``
    (the tags in the pre-OCI format) and its legacy per-layer configs in ``blobs/``. Sizes are
    left out for the same reason: the containerd store saves compressed layers, the classic one
    plain tars. Raises :class:`BadInput` for a missing file or one that is not such a tar.
    See https://docs.docker.com/reference/cli/docker/image/save/ and the OCI image layout spec.
    """
    members, manifest, index, _ = _read_tar(path)
    rows = [{"FILE": "oci-layout", "WHAT": "marks the tar as an OCI image layout"},
            {"FILE": "index.json", "WHAT": "OCI entry point: the manifest of each tag"},
            {"FILE": "manifest.json", "WHAT": "Docker's index: config and layers of each tag"}]
    manifests = {entry["digest"]: entry for entry in index.get("manifests") or []}
    for entry in manifest:
        tags = ", ".join(entry.get("RepoTags") or []) or "an untagged image"
        config = entry["Config"]
        for digest, oci in manifests.items():   # the OCI manifest whose config is this entry's
            if "blobs/" + oci["_manifest"]["config"]["digest"].replace(":", "/") == config:
                rows.append({"FILE": "blobs/" + digest.replace(":", "/"), "WHAT": f"image manifest of {tags}"})
        rows.append({"FILE": config, "WHAT": f"image config of {tags}"})
        for n, layer in enumerate(entry["Layers"], 1):
            rows.append({"FILE": layer, "WHAT": f"layer {n} of {len(entry['Layers'])}"})
    return pd.DataFrame(rows, columns=list(TAR_COLUMNS))


def tar_digests(path: str | Path) -> dict[str, str]:
    """The digests of the first image in a ``docker save`` tar: ``{"manifest": "sha256:…",
    "config": "sha256:…"}`` — one of them is the image's ``Id`` (the manifest's on the containerd
    image store, the config's on the classic store). Raises :class:`BadInput` as
    :func:`tar_contents` does."""
    _, manifest, index, path = _read_tar(path)
    config = manifest[0]["Config"].split("/")[-1]
    for entry in index.get("manifests") or []:
        if entry["_manifest"]["config"]["digest"] == f"sha256:{config}":
            return {"manifest": entry["digest"], "config": f"sha256:{config}"}
    raise BadInput(f"{path}'s index.json names no manifest of its image: write the tar again with image.save().")


# --- inspect ------------------------------------------------------------------------------------

#: A whole sha256 digest, as Ids and layer digests are written.
_DIGEST = re.compile(r"sha256:([0-9a-f]{12})[0-9a-f]{52}")


def inspect_summary(image: Any, without: Iterable[str] = (), short: bool = True) -> pd.DataFrame:
    """The inspect fields a learner needs (``tables.IMAGE_FIELDS``) as a (field, value) table,
    without the course's own bookkeeping labels (``org.dockercourse.*``, which hold run ids) and
    without the fields named in ``without`` (e.g. ``["Size", "RepoDigests"]``, whose values depend
    on the daemon's image store). With ``short`` (the default) every sha256 digest is shown by its
    first 12 hex digits and "…", as ``docker images`` shows Ids, so the table fits a notebook
    (the whole values stay in ``image.attrs``)."""
    if isinstance(without, str) or not all(isinstance(f, str) for f in without):
        raise BadInput(f"without takes a list of field names such as ['Size'], not {without!r}.")
    fields = [f for f in IMAGE_FIELDS if f not in set(without)]
    table = inspect_table(attrs(image), fields, only_first=True)
    table = table[~table["field"].str.contains(NAMESPACE, regex=False)].reset_index(drop=True)
    if short:
        table["value"] = [_DIGEST.sub(r"sha256:\1…", v) if isinstance(v, str) else v for v in table["value"]]
    return table


# --- sizes --------------------------------------------------------------------------------------

SIZE_COLUMNS = ("SIZE", "WHERE", "WHAT IT COUNTS")


def image_sizes(client: docker.DockerClient, reference: str) -> dict[str, int]:
    """The three sizes of one image, in bytes: ``listed`` (``docker images`` SIZE, the listing's
    ``Size``), ``content`` (``docker image inspect``'s ``Size``) and ``unpacked`` (the layers'
    sizes of ``docker history``, summed).

    On the classic store (overlay2) all three are the unpacked layers. On the containerd image
    store ``content`` counts the compressed blobs in the content store, ``unpacked`` the
    snapshots made from them, and ``listed`` both (the disk the image takes; Engine 29's
    ``docker images`` shows it as DISK USAGE, beside CONTENT SIZE). Raises :class:`NotFound` when
    there is no image ``reference``.
    """
    if not isinstance(reference, str) or not reference.strip():
        raise BadInput(f"{reference!r} is not an image reference: pass a name such as 'busybox:1.35'.")
    try:
        image = client.images.get(reference)
        history = image.history()
    except docker.errors.ImageNotFound as err:
        raise NotFound(f"no image {reference!r} on this daemon: pull or build it first.") from err
    listed = [i for i in list_images(client, filters={"reference": reference}) if i["Id"] == image.id]
    if not listed:
        raise NotFound(f"{reference!r} was removed while its sizes were read: run the cell again.")
    return {"listed": int(listed[0]["Size"]), "content": int(image.attrs["Size"]),
            "unpacked": sum(int(h["Size"]) for h in history)}


def sizes_table(sizes: Mapping[str, int]) -> pd.DataFrame:
    """:func:`image_sizes`' answer as a table: each size in the CLI's human form, where it is
    shown, and what it counts."""
    where = {"listed": ("docker images (SIZE)", "everything the image takes on disk"),
             "content": ("docker image inspect (.Size)", "the image's content (compressed on the containerd store)"),
             "unpacked": ("docker history (sum of SIZE)", "the unpacked layers' files")}
    return pd.DataFrame([{"SIZE": human_size(sizes[k]), "WHERE": w, "WHAT IT COUNTS": what}
                         for k, (w, what) in where.items()], columns=list(SIZE_COLUMNS))
