"""For setup cells: is the course's base image on this daemon, or can it get it?

A class's daemon that was never pointed at the course registry, on a network with no internet,
cannot pull ``busybox:1.35``; :func:`check_images` says so in one sentence and names the fix
(README, "Run it in a class"), instead of a pull error deep inside some later cell.
"""

from __future__ import annotations

import contextlib

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from . import connection
from .base import BASE_IMAGE, REGISTRY_PORT
from .errors import ImageNotAvailable


def check_images(client: docker.DockerClient, image: str = BASE_IMAGE) -> None:
    """Make sure ``image`` (the course's base image) is on the daemon, pulling it if needed.

    Raises :class:`ImageNotAvailable` with one sentence when the daemon can reach neither
    Docker Hub nor the course registry (a class's daemon that was never pointed at the mirror).
    """
    with contextlib.suppress(ImageNotFound):
        client.images.get(image)
        return
    repo, _, tag = image.partition(":")
    try:
        client.images.pull(repo, tag=tag or "latest")
    except (APIError, DockerException):
        host = connection.describe(client).replace("http+docker://localhost", "the local socket")
        raise ImageNotAvailable(
            f"The Docker daemon at {host} can reach neither Docker Hub nor the course registry, so "
            f"{image} cannot be pulled: start that daemon with --registry-mirror=http://REGISTRY:"
            f"{REGISTRY_PORT} (\"registry-mirrors\" in daemon.json), as README 'Run it in a "
            "class' shows.") from None
