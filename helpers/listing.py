"""Image listings that survive another client removing images meanwhile (no pandas, no tables).

On the containerd image store (Docker Desktop's, and a fresh Engine 29's), listing images while
another client removes one can fail as a whole: "failed to read config content: … NotFound"
(moby/moby#46077); a listing followed by an inspect answers 404. On a daemon a class shares, the
clean-up, the reaper and the leftover check list images while other learners remove theirs.
"""

from __future__ import annotations

import time
from typing import Any

import docker


def vanished_meanwhile(err: docker.errors.APIError) -> bool:
    """Whether ``err`` is the daemon's answer when an image was removed while it listed: 404, or
    the containerd store's "failed to read config content: NotFound"."""
    text = str(err.explanation or err)
    return err.status_code == 404 or "NotFound" in text or "not found" in text


def api_images(api: docker.APIClient, attempts: int = 8, **kwargs: Any) -> list[Any]:
    """``api.images(**kwargs)`` (``docker images``' listing, as dicts), asked again up to
    ``attempts`` times when an image vanished meanwhile; the daemon's error if it persists."""
    for attempt in range(attempts):
        try:
            return api.images(**kwargs)
        except docker.errors.APIError as err:
            if not vanished_meanwhile(err) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))   # the removal under way finishes in milliseconds
    raise AssertionError("unreachable")


def client_images(client: docker.DockerClient, attempts: int = 8, **kwargs: Any) -> list[Any]:
    """``client.images.list(**kwargs)`` (Image objects, each inspected), asked again likewise."""
    for attempt in range(attempts):
        try:
            return client.images.list(**kwargs)
        except docker.errors.APIError as err:
            if not vanished_meanwhile(err) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")
