"""Checks for notebook 05 · Networking."""

from __future__ import annotations

import time

import docker
from docker.errors import NotFound as DockerNotFound

from ..errors import CourseError
from ..naming import RUN, Run
from ..network import host_links, http_get, links, reaches
from . import Result, not_yet, passed


def _container(client: docker.DockerClient, name: str):
    try:
        c = client.containers.get(name)
    except DockerNotFound:
        return None
    return c


def check_internal_network(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 5.1: a user-defined, internal bridge network ``run.name("ex-net")`` with the run's labels."""
    name = run.name("ex-net")
    found = [n for n in client.networks.list(names=[name]) if n.name == name]
    if not found:
        return not_yet("5.1", f"there is no network named {name}: create it with client.networks.create(run.name('ex-net'), …).")
    net = found[0]
    net.reload()
    if (net.attrs.get("Labels") or {}).get(RUN) != run.id:
        return not_yet("5.1", f"{name} lacks the course labels: pass labels=run.labels.")
    if net.attrs.get("Driver") != "bridge":
        return not_yet("5.1", f"{name} uses the {net.attrs.get('Driver')} driver: use driver='bridge'.")
    if not net.attrs.get("Internal"):
        return not_yet("5.1", f"{name} is not internal: pass internal=True (docker network create --internal).")
    return passed("5.1", f"{name} is an internal bridge network: its containers reach each other, nothing else.")


#: How long Exercise 5.2's check keeps asking whether ``ex-a`` reaches ``ex-b`` by name (s).
BY_NAME_PATIENCE = 10.0


def check_by_name(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 5.2: running containers ``ex-a`` and ``ex-b`` on a shared user-defined network, so
    that ``ex-a`` reaches ``ex-b`` by name."""
    a, b = (_container(client, run.name(w)) for w in ("ex-a", "ex-b"))
    if a is None or b is None:
        return not_yet("5.2", f"start two containers named {run.name('ex-a')} and {run.name('ex-b')} (sleep 600).")
    if a.status != "running" or b.status != "running":
        return not_yet("5.2", "both containers must be running: give them a command that keeps going (sleep 600).")
    shared = set(a.attrs["NetworkSettings"]["Networks"]) & set(b.attrs["NetworkSettings"]["Networks"])
    user_defined = shared - {"bridge", "host", "none"}
    if not user_defined:
        hint = " (the default bridge has no name resolution)" if "bridge" in shared else ""
        return not_yet("5.2", f"they share no user-defined network{hint}: create one and pass network=… to both.")
    # asked again for a few seconds: right after `network connect`, under load, the first pings
    # can go unanswered or the name not resolve yet (once, against a class's 26.1 daemon over TCP)
    deadline = time.monotonic() + BY_NAME_PATIENCE
    while not reaches(a, b.name):
        if time.monotonic() > deadline:
            return not_yet("5.2", f"{a.name} cannot ping {b.name} by name yet.")
    return passed("5.2", f"{a.name} reaches {b.name} by name on {sorted(user_defined)[0]}.")


def check_published(client: docker.DockerClient, run: Run, port: object) -> Result:
    """Exercise 5.3: ``ex-web`` serves httpd on container port 80, published on the loopback only
    (not 0.0.0.0) at a port docker chose; ``port`` is that host port."""
    c = _container(client, run.name("ex-web"))
    if c is None or c.status != "running":
        return not_yet("5.3", f"run {run.name('ex-web')} with httpd -f -p 80 -h /www, detached.")
    bindings = (c.attrs["NetworkSettings"]["Ports"] or {}).get("80/tcp")
    if not bindings:
        return not_yet("5.3", "port 80/tcp is not published: pass ports={'80/tcp': (publish_address(client), None)}.")
    if any(b["HostIp"] in ("", "0.0.0.0", "::") for b in bindings):
        return not_yet("5.3", "the port is published on every interface (0.0.0.0): publish on the loopback only.")
    if not isinstance(port, int) or isinstance(port, bool):
        return not_yet("5.3", f"port should be the host port as an int, not {type(port).__name__}.")
    if port != int(bindings[0]["HostPort"]):
        return not_yet("5.3", f"{port} is not the host port docker chose: read it from container.ports.")
    try:
        body = http_get(client, port)
    except (OSError, CourseError) as err:
        return not_yet("5.3", f"nothing answered on port {port} ({err}): is httpd serving /www?")
    if "Hello" not in body:
        return not_yet("5.3", "the page does not come from the course's /www/index.html: use -h /www.")
    return passed("5.3", "the page is served through a port published on the loopback only.")


def check_host_end(client: docker.DockerClient, run: Run, answer: object) -> Result:
    """Exercise 5.4: the host-side name of the veth pair of ``ex-a``'s ``eth0``."""
    a = _container(client, run.name("ex-a"))
    if a is None or a.status != "running":
        return not_yet("5.4", f"start {run.name('ex-a')} first (Exercise 5.2).")
    if not isinstance(answer, str) or not answer:
        return not_yet("5.4", "answer should be the host interface's name, a str such as 'veth1a2b3c4'.")
    eth0 = next((link for link in links(a) if link.name == "eth0"), None)
    if eth0 is None or eth0.peer is None:
        return not_yet("5.4", f"{a.name} has no eth0 with a peer: is it on a bridge network?")
    host = {link.index: link for link in host_links(client, run)}.get(eth0.peer)
    if host is None:
        return not_yet("5.4", "the host end was not found: is the container still running?")
    if answer.split("@")[0] != host.name:
        return not_yet("5.4", f"{answer!r} is not the host end of {a.name}'s eth0: find index N of eth0@ifN among the host's links.")
    return passed("5.4", f"{a.name}'s eth0 is one end of a veth pair whose other end is on the host.")
