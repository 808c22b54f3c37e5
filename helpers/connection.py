"""Connecting to a Docker daemon, the way the docker CLI and testcontainers do.

Where the course looks, in order:

1. ``DOCKER_HOST`` (with ``DOCKER_TLS_VERIFY`` / ``DOCKER_CERT_PATH``), through docker-py's
   own ``from_env`` — when it is set, it is the only place looked at, as with the CLI;
2. the current docker context (``docker context use …``), when it is not ``default``;
3. the default socket (``/var/run/docker.sock``);
4. the course's own engine (``./course engine start``), whose socket lives in the checkout.

Nothing here changes the user's environment or any daemon's configuration.
When no daemon answers, :class:`~helpers.errors.DaemonNotFound` says in one sentence what
to do for *this* setup (Binder, a DOCKER_HOST that is down, a Linux box, a laptop).
"""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import DockerException

from .errors import DaemonNotFound

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
#: Where ``./course engine start`` puts its state (ignored by git).
STATE_DIR = Path(os.environ.get("COURSE_STATE_DIR", Path(__file__).resolve().parent.parent / ".state"))
COURSE_SOCKET = f"unix://{STATE_DIR / 'docker.sock'}"
#: Seconds a call may take once connected: 30 learners' kernels on one small daemon made some
#: calls take over docker-py's default 60 s (measured by ./course bench); the docker CLI waits forever.
CALL_TIMEOUT = 300


@dataclass(frozen=True)
class Endpoint:
    """One place a daemon may answer, and why the course looks there."""

    source: str
    base_url: str | None  # None: docker-py's from_env() decides (DOCKER_HOST and TLS variables)


def candidate_endpoints() -> list[Endpoint]:
    """The places to try, in order (see the module docstring)."""
    if os.environ.get("DOCKER_HOST"):
        return [Endpoint("DOCKER_HOST", None)]
    found: list[Endpoint] = []
    try:
        ctx = docker.ContextAPI.get_current_context()
    except DockerException:
        ctx = None
    if ctx is not None and ctx.Name != "default" and ctx.Host:
        found.append(Endpoint(f"docker context {ctx.Name!r}", ctx.Host))
    found.append(Endpoint("the default socket", DEFAULT_SOCKET))
    found.append(Endpoint("the course's own engine", COURSE_SOCKET))
    return found


def _client(ep: Endpoint, timeout: float) -> docker.DockerClient:
    if ep.base_url is None:
        return docker.from_env(timeout=timeout)
    if ep.source.startswith("docker context"):
        ctx = docker.ContextAPI.get_current_context()
        return docker.DockerClient(base_url=ep.base_url, tls=ctx.TLSConfig, timeout=timeout)
    return docker.DockerClient(base_url=ep.base_url, timeout=timeout)


def _answers(ep: Endpoint) -> docker.DockerClient | None:
    if ep.base_url and ep.base_url.startswith("unix://") and not Path(ep.base_url[7:]).exists():
        return None
    try:
        client = _client(ep, timeout=5)  # a quick answer to the ping...
        client.ping()
        client.api.timeout = CALL_TIMEOUT  # ...but a busy daemon (a whole class on it) may take longer
        return client
    except (DockerException, OSError):
        return None


def find_daemon() -> tuple[docker.DockerClient, Endpoint] | None:
    """The first endpoint that answers ``/_ping``, with a client for it; None if none does."""
    for ep in candidate_endpoints():
        client = _answers(ep)
        if client is not None:
            client.course_source = ep.source  # read by describe()
            return client, ep
    return None


def no_daemon_advice() -> str:
    """One sentence: why no daemon answered here, and the fix for this kind of machine."""
    host = os.environ.get("DOCKER_HOST")
    if os.environ.get("BINDER_SERVICE_HOST") or os.environ.get("BINDER_REQUEST"):
        return ("Binder gives no Docker daemon, so these cells cannot run here: read the committed "
                "outputs, or run the course where Docker runs (README, 'Run it in a class').")
    if host:
        return (f"No Docker daemon answers at DOCKER_HOST={host}: start that daemon (or the dind "
                "service), or unset DOCKER_HOST to use the local one.")
    if platform.system() == "Linux" and hasattr(os, "geteuid") and os.geteuid() == 0:
        return ("No Docker daemon is running: start the course's own engine with "
                "`./course engine start` in the course folder (or open the course with `./course open`).")
    if platform.system() == "Linux":
        return ("No Docker daemon answers and you are not root: ask for access to one "
                "(join the 'docker' group, or set DOCKER_HOST to your class's daemon).")
    return "No Docker daemon answers: start Docker Desktop (or set DOCKER_HOST), then run this cell again."


def connect() -> docker.DockerClient:
    """A docker-py client for the first daemon that answers.

    Raises :class:`DaemonNotFound` with one actionable sentence when none does.
    """
    found = find_daemon()
    if found is None:
        raise DaemonNotFound(no_daemon_advice())
    explain_faults_in_ipython(found[0])
    return found[0]


def explain_faults_in_ipython(client: docker.DockerClient | None = None) -> None:
    """In a notebook, show the course's one sentence (:func:`helpers.errors.explain`) instead of
    docker-py's traceback when the daemon stops or hangs, an object vanishes or no registry answers.

    Other errors show as usual. Outside IPython this does nothing.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    shell._course_client = client  # the daemon whose registry mirrors explain() asks about
    if getattr(shell, "_course_explains", False):
        return
    import requests.exceptions

    from .errors import explain

    def handler(shell, etype, value, tb, tb_offset=None):  # noqa: ANN001 (IPython's signature)
        course = explain(value, getattr(shell, "_course_client", None))
        if course is None:  # IPython ignores a returned traceback here: show it as usual
            shell.showtraceback((etype, value, tb), tb_offset=tb_offset, running_compiled_code=True)
        else:
            shell.showtraceback((type(course), course, None))

    shell.set_custom_exc((DockerException, requests.exceptions.ConnectionError,
                          requests.exceptions.ReadTimeout), handler)
    shell._course_explains = True


def describe(client: docker.DockerClient) -> str:
    """Where this client talks to, for the setup cell (stable text, no ids)."""
    return getattr(client, "course_source", client.api.base_url)


def daemon_host(client: docker.DockerClient) -> str:
    """The host where published ports are reached: localhost for a local engine,
    the service's host for a TCP daemon (a dind service lives on another host)."""
    url = client.api.base_url
    if url.startswith(("http://", "https://")):
        host = url.split("://", 1)[1].rsplit(":", 1)[0].strip("[]") or "127.0.0.1"
        try:  # a service name (GitLab's `docker`): ports are published on an IP, so resolve it
            return socket.gethostbyname(host)
        except OSError:
            return host
    return "127.0.0.1"
