"""Checks for notebook 01 · Images."""

from __future__ import annotations

import json
import tarfile

import docker
from docker.errors import ImageNotFound

from ..base import BASE_IMAGE
from ..naming import Run
from . import Result, not_yet, passed


def _image(client: docker.DockerClient, ref: str):
    try:
        return client.images.get(ref)
    except ImageNotFound:
        return None


def check_tagged(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 1.1: ``busybox:1.35`` also named ``run.image("mine", "1.0")``."""
    ref = run.image("mine", "1.0")
    image = _image(client, ref)
    if image is None:
        return not_yet("1.1", f"there is no image {ref}: tag {BASE_IMAGE} with repository run.name('mine') "
                              "and tag '1.0'.")
    base = _image(client, BASE_IMAGE)
    if base is None or image.id != base.id:
        return not_yet("1.1", f"{ref} is {image.short_id}, not {BASE_IMAGE}: tag the base image itself.")
    return passed("1.1", f"{ref} and {BASE_IMAGE} are one image under two names.")


def check_saved(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 1.2: ``run.image("mine", "1.0")`` saved to ``run.path("mine.tar")``."""
    ref, path = run.image("mine", "1.0"), run.path("mine.tar")
    if not path.is_file() or path.stat().st_size == 0:
        return not_yet("1.2", f"{path.name} is missing or empty in run.files: write image.save()'s chunks "
                              "to run.path('mine.tar').")
    try:
        with tarfile.open(path) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))
    except (tarfile.TarError, KeyError, TypeError, ValueError):
        return not_yet("1.2", f"{path.name} is not an image tar from docker save (no manifest.json in it).")
    tags = [t for entry in manifest for t in entry.get("RepoTags") or []]
    if ref not in tags:
        return not_yet("1.2", f"{path.name} holds {tags or 'no tag'}, not {ref}: save it by that name "
                              f"(image.save(named={ref!r})) so docker load brings the name back.")
    return passed("1.2", f"{path.name} holds {ref}: docker load -i would restore it.")


def check_untagged(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 1.3: the tag ``run.image("mine", "old")`` removed, ``run.image("mine", "1.0")`` kept."""
    old, keep = run.image("mine", "old"), run.image("mine", "1.0")
    if _image(client, old) is not None:
        return not_yet("1.3", f"{old} is still there: remove that name (client.images.remove(...)).")
    if _image(client, keep) is None:
        return not_yet("1.3", f"{keep} is gone too: remove only the name {old}, not the image "
                              "(re-tag it with Exercise 1.1's solution).")
    return passed("1.3", f"{old} was only a name: the image is still there as {keep}.")
