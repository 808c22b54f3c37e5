"""The course's exceptions: one sentence that says what is wrong and what to do.

In a notebook the learner sees only that sentence, not a 40-line traceback:
IPython calls ``_render_traceback_`` when an exception defines it.
"""

from __future__ import annotations


class CourseError(Exception):
    """Base class: ``str(err)`` is the whole, actionable message."""

    def _render_traceback_(self) -> list[str]:  # IPython hook, see module docstring
        return [f"{type(self).__name__}: {self}"]


class DaemonNotFound(CourseError):
    """No Docker daemon answered at any place the course looked."""


class DaemonNotAnswering(CourseError):
    """The daemon took a call but gave no answer in time: overloaded, or stuck."""


class ImageNotAvailable(CourseError):
    """An image could be found neither locally nor in any registry the daemon can reach."""


class NameTaken(CourseError):
    """An object with that name already exists on the daemon."""


class NotFound(CourseError):
    """A container, network, volume or image of that name does not exist."""


class BadInput(CourseError):
    """An argument has the wrong type or form."""


class EngineError(CourseError):
    """The course's own engine or registry could not be installed or started."""


#: What runc says when the cgroup v1 freezer did not freeze a container in time (helpers.lifecycle.pause).
FREEZE_REFUSED = "unable to freeze"


# --- the faults of a class, in one sentence ---------------------------------------------------------

def explain(err: BaseException, client=None) -> CourseError | None:  # noqa: ANN001 (a DockerClient)
    """The course's one sentence for a docker-py error caused by a known fault, else None.

    Five faults happen in classes: the daemon stopped or restarted mid-notebook, the daemon
    took a call and never answered (a host carrying too many learners, or dockerd stuck on one
    container), a pause the kernel could not carry out on a very busy host, an object was removed
    under the notebook (another tab, ``./course clean``, ``docker rm``), and no registry answers
    a pull. Anything else is left as docker-py raised it.
    ``client`` (the daemon's) tells a registry that is down from an image that is in no registry.
    """
    import re

    import docker.errors
    import requests.exceptions

    text = str(err)
    if isinstance(err, requests.exceptions.ReadTimeout):
        waited = re.search(r"read timeout=([0-9.]+)", text)
        within = f"within {waited.group(1)} s" if waited else "in time"
        return DaemonNotAnswering(
            f"The Docker daemon took the call but did not answer {within} (too many learners on one host, "
            "or a container stuck in dockerd): run the cell again; if it hangs again, restart the daemon "
            "(`./course engine stop`, then `./course engine start`) and rerun from the Setup cell.")
    if isinstance(err, requests.exceptions.ConnectionError) or (
            isinstance(err, docker.errors.DockerException) and not isinstance(err, docker.errors.APIError)
            and ("Connection refused" in text or "FileNotFoundError" in text or "Connection aborted" in text)):
        return DaemonNotFound(
            "The Docker daemon stopped answering (it was stopped or restarted): start it again "
            "(`./course engine start` for the course's own), then run the notebook again from its Setup cell.")
    if isinstance(err, docker.errors.NotFound):
        for kind in ("container", "network", "volume"):
            if f"No such {kind}" in text:
                ref = text.rsplit(f"No such {kind}:", 1)[-1].strip(' ")')[:64] or "it"
                return NotFound(
                    f"The {kind} {ref} no longer exists (something removed it outside this notebook: another "
                    f"tab, `./course clean`, `docker rm`): run the cell that creates it again.")
    if isinstance(err, docker.errors.APIError) and FREEZE_REFUSED in text:
        return CourseError(
            "The kernel did not freeze the container's processes in time (the cgroup v1 freezer gives up "
            "on a very busy host, a known limit of runc) and nothing was paused: run the cell again.")
    if isinstance(err, docker.errors.APIError):
        url = str(getattr(getattr(err, "response", None), "url", "") or "")
        unreachable = ("dial tcp", "no such host", "connection refused", "i/o timeout", "TLS handshake")
        # the containerd image store (Docker 28) says the mirror had no such name instead of
        # trying Docker Hub: 'failed to resolve reference "docker.io/library/x:v1": …: not found'
        missing = ("failed to resolve reference" in text and "not found" in text) or "manifest unknown" in text
        if "/images/create" in url and (missing or any(s in text for s in unreachable)):
            image = _pulled(url)
            if _mirrors_answer(client):
                return ImageNotAvailable(
                    f"{image} is neither on this daemon nor in the course registry: check the name and tag "
                    "(client.images.search() lists the registry's images), or build it first.")
            return ImageNotAvailable(
                f"{image} cannot be pulled: no registry answers (the course registry is down and Docker Hub "
                "is out of reach): start it with `./course engine start`, then run this cell again.")
    return None


def _pulled(url: str) -> str:
    """``fromImage=busybox&tag=1.35`` of a pull's URL → ``busybox:1.35``."""
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(url).query)
    image, tag = (query.get("fromImage") or ["the image"])[0], (query.get("tag") or [""])[0]
    return f"{image}:{tag}" if tag else image


def _mirrors_answer(client) -> bool:  # noqa: ANN001
    """Whether every registry mirror the daemon pulls through answers (False if unknown)."""
    if client is None:
        return False
    import urllib.request

    def http_ok(url: str, timeout: float) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status < 500
        except OSError:
            return False

    try:
        mirrors = (client.info().get("RegistryConfig") or {}).get("Mirrors") or []
    except Exception:  # noqa: BLE001 — the daemon itself is gone: not a registry question
        return False
    return bool(mirrors) and all(http_ok(m.rstrip("/") + "/v2/", timeout=2) for m in mirrors)
