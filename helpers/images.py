"""Images (notebook 01): search, pull progress, rmi results and image tars as tables.

These are the pieces :mod:`helpers.tables` does not cover because they are specific to images:

* :func:`search` — ``docker search`` *with* its ``--filter`` option. docker-py 7.2's
  ``client.api.search(term, limit=None)`` has no ``filters`` argument, although the Engine API
  accepts one since 1.24; this sends it, so the daemon applies the filter as the CLI does.
* :func:`search_term` — which name to search: Docker Hub online, the course registry offline.
* :func:`pull_events` / :func:`layer_progress` — the streamed JSON of ``docker pull``, per layer.
* :func:`removal_table`, :func:`tar_contents`, :func:`inspect_summary` — answers as tables.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import pandas as pd

from .errors import BadInput, ImageNotAvailable
from .naming import NAMESPACE
from .tables import IMAGE_FIELDS, attrs, inspect_table, short_id

#: The filters ``docker search -f`` knows (the daemon rejects any other).
SEARCH_FILTERS = ("is-official", "is-automated", "stars")
#: The CLI truncates descriptions to this many characters unless ``--no-trunc``.
DESCRIPTION_WIDTH = 45


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


SEARCH_COLUMNS = ("NAME", "DESCRIPTION", "STARS", "OFFICIAL", "AUTOMATED")


def search_table(results: Iterable[Mapping[str, Any]], no_trunc: bool = False) -> pd.DataFrame:
    """Search results like ``docker search`` (descriptions truncated unless ``no_trunc``),
    most stars first."""
    rows = [{"NAME": r.get("name", ""),
             "DESCRIPTION": r.get("description", "") if no_trunc else truncate(r.get("description", "")),
             "STARS": int(r.get("star_count", 0)), "OFFICIAL": bool(r.get("is_official")),
             "AUTOMATED": bool(r.get("is_automated"))} for r in results]
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

TAR_COLUMNS = ("FILE", "WHAT", "SIZE")


def tar_contents(path: str | Path) -> pd.DataFrame:
    """What ``docker save`` wrote, in a stable order: manifest first, then each image's config and
    its layer tars bottom-up (as ``manifest.json`` lists them). ``SIZE`` is given for layers only
    (a config's size changes with its timestamps)."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"{path} does not exist: save an image there first (image.save()).")
    try:
        with tarfile.open(path) as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            manifest = json.load(tar.extractfile(members["manifest.json"]))
    except (tarfile.TarError, KeyError) as err:
        raise BadInput(f"{path} is not an image tar written by docker save (no readable manifest.json): "
                       "write one with image.save().") from err
    rows = [{"FILE": "manifest.json", "WHAT": "which config and layers make each tag", "SIZE": ""}]
    if "repositories" in members:
        rows.append({"FILE": "repositories", "WHAT": "the tags (old format)", "SIZE": ""})
    seen = {"manifest.json", "repositories"}
    for entry in manifest:
        tags = ", ".join(entry.get("RepoTags") or []) or "an untagged image"
        rows.append({"FILE": entry["Config"], "WHAT": f"image config of {tags}", "SIZE": ""})
        seen.add(entry["Config"])
        for n, layer in enumerate(entry["Layers"], 1):
            rows.append({"FILE": layer, "WHAT": f"layer {n} of {len(entry['Layers'])}",
                         "SIZE": members[layer].size})
            seen.add(layer)
    rest = sorted(set(members) - seen)
    if rest:
        rows.append({"FILE": f"{len(rest)} more", "WHAT": "per-layer VERSION and json (old format)", "SIZE": ""})
    return pd.DataFrame(rows, columns=list(TAR_COLUMNS))


# --- inspect ------------------------------------------------------------------------------------

def inspect_summary(image: Any) -> pd.DataFrame:
    """The inspect fields a learner needs (``tables.IMAGE_FIELDS``), without the course's own
    bookkeeping labels (``org.dockercourse.*``, which hold run ids)."""
    table = inspect_table(attrs(image), IMAGE_FIELDS, only_first=True)
    return table[~table["field"].str.contains(NAMESPACE, regex=False)].reset_index(drop=True)
