"""Looking at container networking on the live system (notebook 05).

Everything here asks the daemon, never the notebook machine: a container's own interfaces come
from ``ip`` run inside it (``exec``), the host side (bridges, veth ends) from the run's helper
container in the host's network namespace (``network_mode="host"``). So the same cells work when
the daemon is remote (a Docker-in-Docker service reached over TCP), where "the host" is the
daemon's machine, not the notebook's.

Also here: a subnet of the run's own (never one two parallel runs would both claim), publishing a
port on the daemon host's loopback only, and sharing a single-node swarm between runs so that
the last one out leaves it as it was found.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import docker
from docker.errors import APIError, NotFound as DockerNotFound
from docker.models.containers import Container
from docker.models.networks import Network

from . import reaper
from .connection import daemon_host
from .errors import BadInput, CourseError, NotFound
from .base import BASE_IMAGE
from .naming import MANAGED, NAMESPACE, OWNER, RUN, Run, remove_network_when_free


class SubnetTaken(CourseError):
    """A subnet overlaps a network or route the daemon already has."""


# --- interfaces -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Link:
    """One network interface: ``ip -o link``'s line (``211: eth0@if212: <…> … master docker0 …
    link/ether 02:42:…``) with its peer read from sysfs (``/sys/class/net/NAME/iflink``)."""

    index: int
    name: str
    peer: int | None  # the ifindex of the other end of a veth pair (or a macvlan's parent): sysfs iflink
    master: str | None  # the bridge this interface is plugged into
    mac: str
    up: bool

    @property
    def label(self) -> str:
        """The name as iproute2's ``ip link`` prints it: ``eth0@if212``."""
        return f"{self.name}@if{self.peer}" if self.peer is not None else self.name


_LINK = re.compile(r"^(?P<index>\d+):\s+(?P<name>[^:@\s]+)(?:@(?:if(?P<peer>\d+)|[^:\s]+))?:\s+<(?P<flags>[^>]*)>(?P<rest>.*)$")
_IFLINK = re.compile(r"^/sys/class/net/(?P<name>[^/\s]+)/iflink:(?P<iflink>\d+)$")

#: What the listings run: ``ip -o link``, then each interface's ``iflink`` from sysfs, in one exec.
#: ``iflink`` is the ifindex of the interface's link partner (a veth's peer, a macvlan's parent);
#: it equals the interface's own index when it has none. ``ip`` prints that number as ``@ifN`` only
#: when it cannot name it: since Engine 28 a container's end of a veth pair is made inside the
#: container's namespace (moby/moby#49302), so its index is small (often 2) and busybox ``ip`` in
#: the host's namespace prints the *host's* interface of that index (``veth…@ifb0``) or nothing at
#: all. sysfs gives the number on every version (Linux Documentation/ABI/testing/sysfs-class-net).
LINKS_COMMAND = ["sh", "-c", "ip -o link; grep -H . /sys/class/net/*/iflink 2>/dev/null"]


def parse_links(text: str) -> list[Link]:
    """Parse the output of ``ip -o link`` (busybox or iproute2), optionally followed by
    ``grep -H . /sys/class/net/*/iflink`` lines (:data:`LINKS_COMMAND`).

    Returns one :class:`Link` per interface. A peer read from sysfs wins over ``@ifN`` (which
    busybox may print as a name, or not at all); without sysfs lines ``@ifN`` is the peer.
    """
    iflinks: dict[str, int] = {}
    for line in text.splitlines():
        m = _IFLINK.match(line.strip())
        if m:
            iflinks[m["name"]] = int(m["iflink"])
    found = []
    for line in text.splitlines():
        m = _LINK.match(line.strip())
        if not m:
            continue
        rest = m["rest"]
        master = re.search(r"\bmaster (\S+)", rest)
        mac = re.search(r"link/\S+ ([0-9a-f:]{17})", rest)
        index = int(m["index"])
        if m["name"] in iflinks:
            peer = iflinks[m["name"]] if iflinks[m["name"]] != index else None
        else:
            peer = int(m["peer"]) if m["peer"] else None
        found.append(Link(index, m["name"], peer, master[1] if master else None, mac[1] if mac else "",
                          "UP" in m["flags"].split(",")))
    return found


def _exec(container: Container, command: list[str]) -> tuple[int, str]:
    if not isinstance(container, Container):
        raise BadInput(f"expected a docker-py Container, not {type(container).__name__}: "
                       "pass client.containers.get(name).")
    container.reload()
    if container.status != "running":
        raise BadInput(f"{container.name} is {container.status}: start it before looking inside it.")
    code, out = container.exec_run(command)
    return code, out.decode(errors="replace")


def _asked_again(ask: Callable[[], str], whole: Callable[[str], bool], attempts: int = 3) -> str:
    """The output of a listing that is never empty, asked for again while it comes back lost.

    A short exec's, or a short ``--rm`` container's, output can come back empty: the daemon may
    close the stream before the last bytes (moby#27289; seen in the DinD pass over TCP, and with a
    class on one host).
    """
    out = ""
    for _ in range(attempts):
        out = ask()
        if whole(out):
            break
    return out


def _whole_listing(out: str) -> bool:
    """Whether a :data:`LINKS_COMMAND` listing came back whole: it names ``lo`` (every network
    namespace has one) and ends with a complete sysfs line (a cut-short stream loses the tail)."""
    lines = out.splitlines()
    return (re.search(r"^\d+:\s+lo:", out, re.MULTILINE) is not None and out.endswith("\n")
            and bool(lines) and _IFLINK.match(lines[-1].strip()) is not None)


def _exec_listing(container: Container, command: list[str]) -> str:
    """The output of a listing that always names ``lo`` (every network namespace has one)."""
    whole = _whole_listing if command == LINKS_COMMAND else (lambda out: re.search(r"\blo\b", out) is not None)
    return _asked_again(lambda: _exec(container, command)[1], whole)


def links(container: Container) -> list[Link]:
    """The network interfaces a container sees (``docker exec C ip -o link``), each with its
    peer's index from sysfs (:data:`LINKS_COMMAND`). Raises :class:`BadInput` for a container
    that is not running."""
    return parse_links(_exec_listing(container, LINKS_COMMAND))


def addresses(container: Container) -> dict[str, list[str]]:
    """``{"eth0": ["172.17.0.2/16"], "lo": ["127.0.0.1/8"]}`` from ``ip -o -4 addr`` inside."""
    found: dict[str, list[str]] = {}
    for line in _exec_listing(container, ["ip", "-o", "-4", "addr"]).splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "inet":
            found.setdefault(parts[1], []).append(parts[3])
    return found


#: The last line :data:`ROUTES_COMMAND` prints after the table.
ROUTES_END = "end-of-routes"
#: ``ip route``, then a line that always comes: a container's table can be empty (``--network
#: none``), and without it an output the daemon lost (moby#27289) could not be told from that.
ROUTES_COMMAND = ["sh", "-c", f"ip route; echo {ROUTES_END}"]


def routes(container: Container) -> list[str]:
    """The container's routing table (``docker exec C ip route``), one route a line; ``[]`` for a
    container with no network. Asked again when the daemon lost the output (the DinD pass once
    saw a bridge container with no default route). Raises :class:`BadInput` for a container that
    is not running."""
    out = _asked_again(lambda: _exec(container, ROUTES_COMMAND)[1], lambda out: ROUTES_END in out.split())
    return [r.strip() for r in out.splitlines() if r.strip() and r.strip() != ROUTES_END]


def default_gateway(container: Container) -> str | None:
    """The ``via`` address of the default route, or None when there is no default route."""
    for r in routes(container):
        m = re.match(r"default via (\S+)", r)
        if m:
            return m[1]
    return None


def reaches(container: Container, target: str, patience: float = 3.0) -> bool:
    """Whether a ping from inside the container to ``target`` is answered within ``patience`` s.

    One ``ping -c1 -W1`` at a time, again while they go unanswered: on a busy host (a whole class)
    the first echo may wait for ARP or be dropped. A name that does not resolve, or no route, is
    answered at once: False without waiting. Only ever aim it at the course's own containers or a
    bridge gateway: never outside the machine.
    """
    if not isinstance(target, str) or not target:
        raise BadInput("target should be a container name or an IP address (a non-empty str).")
    if not isinstance(patience, (int, float)) or not 0 < patience <= 60:
        raise BadInput(f"patience should be the seconds to keep trying (up to 60), not {patience!r}.")
    deadline = time.monotonic() + patience
    while True:
        code, out = _exec(container, ["ping", "-c1", "-W1", target])
        if code == 0:
            return True
        # no output at all is a lost stream (moby#27289, Docker 26.1 under load), not an answer
        if (out.strip() and "packet loss" not in out) or time.monotonic() >= deadline:
            return False


def _networks_created(client: docker.DockerClient, start: float, end: float, margin: float = 1.0) -> list[dict]:
    """The daemon's network ``create`` events from ``start - margin`` to ``end + margin`` (epoch
    seconds; whole seconds, widened outwards). Waits until that moment has passed, since the
    events API streams until ``until``."""
    events = client.events(since=int(start - margin), until=int(end + margin) + 1,
                           filters={"type": "network", "event": "create"}, decode=True)
    try:
        return [e for e in events if e.get("Type") == "network" and e.get("Action") == "create"]
    finally:
        events.close()


def cannot_reach(container: Container, target: str, patience: float = 1.0, attempts: int = 3) -> bool:
    """Whether no ping from inside the container to ``target`` is answered within ``patience`` s
    (:func:`reaches`): the claim "X cannot reach Y" of two isolated networks.

    An answer that coincides with a network ``create`` event on the daemon (anyone's: another
    learner's, the classmate of the tests) is discounted and the ping tried again, up to
    ``attempts`` times. Before Engine 28 the bridge driver, creating any bridge network, removes
    and re-adds the rule that jumps to ``DOCKER-ISOLATION-STAGE-1`` in the ``FORWARD`` chain, and a
    ping sent in that instant crosses between networks. Engine 28 rewrote the iptables set-up
    (moby/moby#48815: new ``DOCKER-FORWARD``/``DOCKER-BRIDGE`` chains, raw-table rules against
    direct routing), and a later 28.x dropped the isolation chains for rules that stay in place
    (moby/moby#49981, merged May 2025). An answer with no such event is real: False.
    Raises :class:`BadInput` as :func:`reaches` does.
    """
    if not isinstance(attempts, int) or attempts < 1:
        raise BadInput(f"attempts should be a whole number >= 1, not {attempts!r}.")
    for _ in range(attempts):
        started = time.time()
        if not reaches(container, target, patience):
            return True
        if not _networks_created(container.client, started, time.time()):
            return False
    return False


#: What the host-side listings run in: one host-network container per run, made on first use.
HOST_SHELL = "host-shell"


def host_shell(client: docker.DockerClient, run: Run) -> Container:
    """The run's container in the daemon host's network namespace (``docker run -d --network host
    busybox sleep …``), started on first use and removed with the run's other objects.

    The host-side listings exec in it: an exec takes about 60 ms of CPU, a ``docker run --rm``
    about 165 ms (a container to create, start, tear down and remove), and notebook 05 reads the
    host's interfaces eight times.
    """
    name = run.name(HOST_SHELL)
    try:
        shell = client.containers.get(name)
    except DockerNotFound:
        try:
            return client.containers.run(BASE_IMAGE, ["sleep", "86400"], name=name, network_mode="host",
                                         labels=run.labels, detach=True)
        except APIError as err:
            if err.status_code != 409:  # not "name taken" (a second thread of the run made it first)
                raise
            shell = client.containers.get(name)
    if shell.status != "running":
        shell.start()
        shell.reload()
    return shell


def _on_host(client: docker.DockerClient, run: Run, argv: list[str]) -> str:
    """What ``argv`` prints in the daemon host's network namespace: the same as ``docker run --rm
    --network host busybox …``, exec'd in the run's host shell (``host_shell``); the host always
    has links and routes, so an empty answer was lost and is asked for again."""
    shell = host_shell(client, run)  # running: host_shell saw to it
    whole = _whole_listing if argv == LINKS_COMMAND else (lambda out: bool(out.strip()))
    return _asked_again(lambda: shell.exec_run(argv)[1].decode(errors="replace"), whole)


def host_links(client: docker.DockerClient, run: Run) -> list[Link]:
    """The interfaces of the daemon's host, as ``docker run --rm --network host busybox ip -o link``
    lists them, each with its peer's index from sysfs (:data:`LINKS_COMMAND`; read in the run's
    host shell)."""
    return parse_links(_on_host(client, run, LINKS_COMMAND))


def host_routes(client: docker.DockerClient, run: Run) -> list[str]:
    """The routing table of the daemon's host (``ip route`` in the host's network namespace)."""
    return [r.strip() for r in _on_host(client, run, ["ip", "route"]).splitlines() if r.strip()]


# --- networks ---------------------------------------------------------------------------------

def _network(client: docker.DockerClient, network: Network | str) -> Network:
    if isinstance(network, Network):
        network.reload()
        return network
    if not isinstance(network, str):
        raise BadInput(f"network should be a Network or its name, not {type(network).__name__}.")
    try:
        return client.networks.get(network)
    except DockerNotFound:
        raise NotFound(f"there is no network named {network!r}: list them with client.networks.list().") from None


def remove(network: Network) -> None:
    """``network.remove()``, once the daemon has let go of the containers just removed from it.

    A swarm (overlay) network stays "in use by task" for a moment after its containers are
    removed, the swarm dropping their attachments asynchronously; a plain ``remove()`` then fails.
    """
    if not isinstance(network, Network):
        raise BadInput(f"network.remove() takes a Network, not {type(network).__name__}: "
                       "pass client.networks.get(name).")
    try:
        remove_network_when_free(network.client.api, network.id)
    except DockerNotFound:
        raise NotFound(f"the network {network.name!r} is gone already: nothing to remove.") from None


#: What dockerd says when the swarm did not attach a container to an overlay network in time: a
#: swarm manager on a busy host (30 learners on 2 cores) misses its deadline; a new start succeeds.
_ATTACH_TOO_SLOW = "attaching to network failed"


def run_attached(client: docker.DockerClient, run: Run, what: str, network: Network,
                 command: tuple[str, ...] = ("sleep", "600"), attempts: int = 5) -> Container:
    """``docker run -d --name WHAT --network OVERLAY busybox:1.35 sleep 600``, started again when
    a busy swarm did not attach it in time ("attaching to network failed … deadline exceeded"), or
    when the node's swarm agent has not yet heard of the network made a moment ago ("network ID
    not found"; seen with 30 learners on one host)."""
    if not isinstance(network, Network):
        raise BadInput(f"network should be the Network from client.networks.create(), not {type(network).__name__}.")
    container = client.containers.create(BASE_IMAGE, list(command), name=run.name(what), labels=run.labels,
                                         network=network.name)
    # after a failed attach the node tears its copy of the network down, and a start meanwhile
    # finds it gone, by id or by name, until the swarm hands it out again
    not_yet = (f"network {network.id} not found", f"network {network.name} not found")
    for attempt in range(1, attempts + 1):
        try:
            container.start()
            return container
        except APIError as err:
            unknown = any(s in str(err) for s in not_yet)
            if not (unknown or _ATTACH_TOO_SLOW in str(err)) or attempt == attempts:
                raise
            if unknown:  # no event says when the agent learns of a network: back off a little
                time.sleep(0.5 * attempt)


def bridge_name(client: docker.DockerClient, network: Network | str) -> str:
    """The Linux bridge behind a bridge network: ``docker0`` for the default one,
    ``br-<first 12 hex of the network id>`` for a user-defined one."""
    net = _network(client, network)
    if net.attrs.get("Driver") != "bridge":
        raise BadInput(f"{net.name} uses the {net.attrs.get('Driver')} driver, not bridge: "
                       "only bridge networks have a Linux bridge on the host.")
    return (net.attrs.get("Options") or {}).get("com.docker.network.bridge.name") or f"br-{net.id[:12]}"


def subnet_of(client: docker.DockerClient, network: Network | str) -> ipaddress.IPv4Network:
    """The (first) IPv4 subnet of a network, as an :class:`ipaddress.IPv4Network`."""
    net = _network(client, network)
    for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
        if cfg.get("Subnet") and ":" not in cfg["Subnet"]:
            return ipaddress.ip_network(cfg["Subnet"])
    raise NotFound(f"{net.name} has no IPv4 subnet (driver {net.attrs.get('Driver')}): none and host networks have none.")


def gateway_of(client: docker.DockerClient, network: Network | str) -> str:
    """The gateway address of a network (the bridge's own IP on a bridge network), as a str.

    From the network's IPAM ``Gateway``. A stock Engine 20.10 started without ``--bip`` leaves the
    default bridge's ``Gateway`` empty (26.1 and later fill it); docker0 then holds the subnet's
    first address, which the default IPAM driver hands out first, so that is returned.
    Raises :class:`NotFound` for a network with no IPv4 subnet (none, host).
    """
    net = _network(client, network)
    for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
        if cfg.get("Gateway"):
            return cfg["Gateway"]
    for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
        if cfg.get("Subnet") and ":" not in cfg["Subnet"] and net.attrs.get("Driver") == "bridge":
            return str(next(ipaddress.ip_network(cfg["Subnet"]).hosts()))
    raise NotFound(f"{net.name} has no gateway: none and host networks have none.")


def ip_in(container: Container, network: Network | str) -> str:
    """A container's IP address on one network (from its inspect document)."""
    container.reload()
    name = network.name if isinstance(network, Network) else network
    nets = container.attrs["NetworkSettings"]["Networks"]
    if name not in nets:
        raise NotFound(f"{container.name} is not on {name} (it is on {', '.join(nets) or 'no network'}): "
                       f"connect it first.")
    return nets[name]["IPAddress"]


def ipam_table(network: Network):
    """The IPAM part of ``docker network inspect`` as a table (one row per address pool)."""
    import pandas as pd
    network.reload()
    ipam = network.attrs.get("IPAM") or {}
    rows = [{"driver": ipam.get("Driver", ""), "subnet": c.get("Subnet", ""), "gateway": c.get("Gateway", ""),
             "ip range": c.get("IPRange", "")} for c in ipam.get("Config") or []]
    return pd.DataFrame(rows, columns=["driver", "subnet", "gateway", "ip range"])


def members_table(network: Network):
    """The containers of a network (inspect's ``Containers``), sorted by name: name, IPv4, MAC."""
    import pandas as pd
    network.reload()
    rows = [{"container": c["Name"], "IPv4": c.get("IPv4Address", ""), "MAC": c.get("MacAddress", "")}
            for c in (network.attrs.get("Containers") or {}).values()]
    return pd.DataFrame(sorted(rows, key=lambda r: r["container"]), columns=["container", "IPv4", "MAC"])


def _taken(client: docker.DockerClient, run: Run) -> list[ipaddress.IPv4Network]:
    taken = []
    for net in client.networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            if cfg.get("Subnet") and ":" not in cfg["Subnet"]:
                taken.append(ipaddress.ip_network(cfg["Subnet"]))
    for r in host_routes(client, run):
        dest = r.split()[0]
        if dest != "default" and ":" not in dest:
            taken.append(ipaddress.ip_network(dest, strict=False))
    return taken


def free_subnet(client: docker.DockerClient, run: Run, offset: int = 0) -> ipaddress.IPv4Network:
    """A /24 in 10.200.0.0/13 for this run, derived from the run id (so two runs start in
    different places) and clear of every network and route the daemon's host has."""
    if not isinstance(offset, int) or offset < 0:
        raise BadInput("offset should be a whole number >= 0.")
    space = list(ipaddress.ip_network("10.200.0.0/13").subnets(new_prefix=24))
    start = (int(run.id, 16) + offset) % len(space)
    taken = _taken(client, run)
    for i in range(len(space)):
        candidate = space[(start + i) % len(space)]
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise SubnetTaken("every /24 of 10.200.0.0/13 is in use on this daemon: remove old networks (./course clean).")


def create_with_subnet(client: docker.DockerClient, run: Run, what: str, subnet: str | None = None,
                       **kwargs) -> Network:
    """``docker network create --subnet S --gateway G`` for this run, with its labels.

    Without ``subnet`` a free one is chosen (:func:`free_subnet`) and, if a parallel run claims
    it first ("Pool overlaps"), the next one is tried. With an explicit ``subnet`` that overlaps,
    :class:`SubnetTaken` says so in one sentence.
    """
    if subnet is not None:
        try:
            ipaddress.ip_network(subnet)
        except ValueError:
            raise BadInput(f"{subnet!r} is not a subnet: write it as 10.201.3.0/24.") from None
    for attempt in range(5):
        net_ = ipaddress.ip_network(subnet) if subnet else free_subnet(client, run, offset=attempt)
        gateway = str(next(net_.hosts()))
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=str(net_), gateway=gateway)])
        try:
            return client.networks.create(run.name(what), ipam=ipam, labels=run.labels, **kwargs)
        except APIError as err:
            if "overlap" not in str(err).lower():
                raise
            if subnet is not None:
                raise SubnetTaken(f"{subnet} overlaps a network the daemon already has: choose another "
                                  f"subnet, or leave it out to let the course pick a free one.") from None
    raise SubnetTaken("five free-looking subnets were claimed by others meanwhile: run the cell again.")


# --- veth pairs -------------------------------------------------------------------------------

@dataclass(frozen=True)
class VethPair:
    container: str
    inside: Link  # eth0@ifN in the container
    host: Link | None  # interface N on the host

    @property
    def matches(self) -> bool:
        """Both ends point at each other: inside ``@ifN`` is the host's index N and vice versa."""
        return (self.host is not None and self.inside.peer == self.host.index
                and self.host.peer == self.inside.index)


def veth_pairs(client: docker.DockerClient, run: Run, containers: list[Container]) -> list[VethPair]:
    """For each container, its ``eth*`` interfaces paired with their host ends (read once)."""
    on_host = {link.index: link for link in host_links(client, run)}
    pairs = []
    for c in containers:
        for link in links(c):
            if link.name.startswith("eth") and link.peer is not None:
                pairs.append(VethPair(c.name, link, on_host.get(link.peer)))
    return pairs


# --- published ports --------------------------------------------------------------------------

def publish_address(client: docker.DockerClient) -> str:
    """Where to publish a port so that only this machine reaches it: ``127.0.0.1`` for a local
    daemon, the daemon host's own address for a remote one — never ``0.0.0.0``."""
    host = daemon_host(client)
    if host in ("127.0.0.1", "localhost", "::1"):
        return "127.0.0.1"
    return socket.gethostbyname(host)


def host_port(container: Container, port: str = "80/tcp") -> int:
    """The host port docker chose for a published container port."""
    container.reload()
    bindings = (container.attrs["NetworkSettings"]["Ports"] or {}).get(port)
    if not bindings:
        raise NotFound(f"{container.name} publishes no {port}: run it with ports={{'{port}': "
                       f"(publish_address(client), None)}}.")
    return int(bindings[0]["HostPort"])


def http_get(client: docker.DockerClient, port: int, path: str = "/", timeout: float = 15) -> str:
    """GET ``http://<daemon host>:port/path`` from the notebook; the body as text."""
    if not isinstance(port, int) or not 0 < port < 65536:
        raise BadInput(f"port should be an int between 1 and 65535, not {port!r}.")
    url = f"http://{daemon_host(client)}:{port}{path}"
    # A server started a moment ago may not listen yet: docker-proxy then accepts and resets the
    # connection. httpd gives no readiness event to wait on, so retry such resets until `timeout`.
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (our own container)
                return response.read().decode()
        except (ConnectionResetError, ConnectionRefusedError, urllib.error.URLError) as err:
            reason = getattr(err, "reason", err)
            if not isinstance(reason, (ConnectionResetError, ConnectionRefusedError)) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# --- a swarm shared by runs ---------------------------------------------------------------------

SWARM_USER = NAMESPACE + "swarm-user"
SWARM_LOCK = "dc-swarm-lock"
SWARM_MADE = NAMESPACE + "swarm-made-by-course"
GWBRIDGE_NEW = NAMESPACE + "gwbridge-made-by-course"
_STALE_LOCK_SECONDS = 120


def swarm_state(client: docker.DockerClient) -> str:
    """``inactive``, ``active``, ``pending``… as ``docker info`` reports ``Swarm.LocalNodeState``."""
    return client.info()["Swarm"]["LocalNodeState"]


def _owner_alive(owner: str) -> bool:
    """The reaper's judgement; an owner it cannot judge here (another machine) counts as alive."""
    return reaper.owner_alive(owner) is not False


class _SwarmLock:
    """A daemon-wide lock: a created (never started) container with a fixed name. Creating a
    container with a taken name fails atomically, so only one run at a time decides."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    def __enter__(self) -> None:
        labels = {MANAGED: "true", OWNER: reaper.owner_of()}
        deadline = time.monotonic() + 60
        while True:
            try:
                self.container = self.client.containers.create(BASE_IMAGE, ["true"], name=SWARM_LOCK, labels=labels)
                return
            except APIError as err:
                if err.status_code != 409:
                    raise
            if time.monotonic() > deadline:
                raise CourseError(f"another run holds {SWARM_LOCK} for over a minute: if no notebook is "
                                  f"running, remove it (docker rm {SWARM_LOCK}).")
            self._wait_or_break()

    def _wait_or_break(self) -> None:
        try:
            held = self.client.containers.get(SWARM_LOCK)
        except DockerNotFound:
            return
        created = datetime.fromisoformat(held.attrs["Created"].split(".")[0].rstrip("Z")).replace(tzinfo=timezone.utc)
        age = (datetime.now(timezone.utc) - created).total_seconds()
        if not _owner_alive(held.labels.get(OWNER, "")) or age > _STALE_LOCK_SECONDS:
            _remove_quietly(held)
            return
        try:  # the daemon tells us when the holder removes it
            held.wait(condition="removed", timeout=5)
        except DockerNotFound:
            return
        except Exception:  # noqa: BLE001 (a timeout: look again)
            return

    def __exit__(self, *exc: object) -> None:
        _remove_quietly(self.container)


def _remove_quietly(container: Container) -> None:
    try:
        container.remove(force=True)
    except DockerNotFound:
        pass


def _users(client: docker.DockerClient) -> list[Container]:
    """Runs that use the course's swarm now (their lease containers), dropping dead kernels' leases."""
    alive = []
    for c in client.containers.list(all=True, filters={"label": f"{SWARM_USER}=true"}):
        if _owner_alive(c.labels.get(OWNER, "")):
            alive.append(c)
        else:
            _remove_quietly(c)
    return alive


def join_swarm(client: docker.DockerClient, run: Run) -> bool:
    """Make sure the daemon is a (single-node) swarm manager and record this run as a user.

    ``docker swarm init --advertise-addr 127.0.0.1`` when it is in no swarm yet (the swarm is
    then labelled as the course's, so the last run out leaves it); an existing swarm is reused.
    Returns True when the daemon is an active swarm manager.
    """
    with _SwarmLock(client):
        try:
            client.containers.get(run.name("swarm-lease"))
        except DockerNotFound:
            client.containers.create(BASE_IMAGE, ["true"], name=run.name("swarm-lease"),
                                     labels={**run.labels, SWARM_USER: "true"})
        if swarm_state(client) == "inactive":
            had_gwbridge = any(n.name == "docker_gwbridge" for n in client.networks.list(names=["docker_gwbridge"]))
            client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377",
                              labels={SWARM_MADE: "true", GWBRIDGE_NEW: str(not had_gwbridge).lower()})
    return swarm_state(client) == "active" and bool(client.info()["Swarm"].get("ControlAvailable"))


_YOUNG_NETWORK_SECONDS = 600


def _age(created: str) -> float:
    moment = datetime.fromisoformat(created.split(".")[0].rstrip("Z")).replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - moment).total_seconds()


def names_at_risk(client: docker.DockerClient, run: Run) -> list[str]:
    """Others' running containers on user-defined networks whose names someone may need.

    Leaving a swarm (dockerd 20.10) wipes the embedded DNS records of every container that exists
    at that moment, on every user-defined network: afterwards they no longer find each other by
    name. So the course leaves only when no one else's container shares such a network with
    another one — or sits on a young one (made in the last 10 minutes), which may get a
    neighbour a second later.
    """
    young = {n.name for n in client.networks.list() if _age(n.attrs.get("Created", "1970-01-01T00:00:00Z"))
             < _YOUNG_NETWORK_SECONDS}
    members: dict[str, list[str]] = {}
    for c in client.containers.list(sparse=True):
        if c.attrs.get("Labels", {}).get(RUN) == run.id:
            continue
        for net in ((c.attrs.get("NetworkSettings") or {}).get("Networks") or {}):
            if net not in ("bridge", "host", "none"):
                members.setdefault(net, []).append(c.attrs["Names"][0].lstrip("/"))
    return sorted({name for net, names in members.items() if len(names) > 1 or net in young for name in names})


def leave_swarm(client: docker.DockerClient, run: Run) -> bool:
    """Drop this run's use of the swarm; the last run out leaves a swarm the course made.

    Never leaves a swarm the daemon was in before the course, nor while another run still uses
    it (a lease, or an overlay network of another run), nor while someone else's containers are on
    user-defined networks (see :func:`names_at_risk`): the next run out leaves it then. Leaving also
    wipes the names of this run's own containers, so call it last, just before ``run.cleanup()``.
    Returns True when this run's part is gone.
    """
    with _SwarmLock(client):
        for c in client.containers.list(all=True, filters={"label": [f"{SWARM_USER}=true", f"{RUN}={run.id}"]}):
            _remove_quietly(c)
        if swarm_state(client) != "active":
            return True
        client.swarm.reload()
        labels = client.swarm.attrs.get("Spec", {}).get("Labels") or {}
        if labels.get(SWARM_MADE) != "true" or _users(client):
            return True
        others = [n for n in client.networks.list(filters={"driver": "overlay", "label": MANAGED})
                  if n.attrs.get("Labels", {}).get(RUN) != run.id]
        if others or names_at_risk(client, run):
            return True
        _leave(client, labels)
    return True


def _leave(client: docker.DockerClient, labels: dict[str, str]) -> None:
    try:
        client.swarm.leave(force=True)
    except APIError as err:
        # dockerd 20.10, busy (a whole class on it): a leave that misses its deadline stops the
        # manager but leaves the node "active" with a broken cluster ("grpc: the client connection
        # is closing"), where every swarm call fails. A second leave finishes the job.
        if "deadline exceeded" not in str(err):
            raise
        client.swarm.leave(force=True)
    if labels.get(GWBRIDGE_NEW) == "true":
        for gw in [n for n in client.networks.list(names=["docker_gwbridge"]) if n.name == "docker_gwbridge"]:
            try:
                gw.remove()
            except (DockerNotFound, APIError):
                pass  # a container still uses it: it stays, as docker itself would leave it


def release_swarm(client: docker.DockerClient) -> bool:
    """The last one out, once every run has ended (the test command, ``./course clean``): leave
    the swarm the course made if no run uses it any more, as :func:`leave_swarm` defers to.

    Returns True when the daemon is in no swarm of the course's making (any more).
    """
    if swarm_state(client) != "active":
        return True
    with _SwarmLock(client):
        client.swarm.reload()
        labels = client.swarm.attrs.get("Spec", {}).get("Labels") or {}
        if labels.get(SWARM_MADE) != "true":
            return True  # the daemon was in this swarm before the course: never ours to leave
        if _users(client) or client.networks.list(filters={"driver": "overlay", "label": MANAGED}):
            return False
        _leave(client, labels)
    return True
