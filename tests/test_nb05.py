"""Notebook 05: the networking helpers say what is wrong on bad input, the swarm is shared by
runs and given back by the last one out, the exercise checks fail on wrong answers and pass on the
solutions, and every CLI form of the cheat sheet runs."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers import BASE_IMAGE, BadInput, NotFound, Run
from helpers import network
from helpers.checks import nb05
from helpers.naming import RUN
from helpers.pictures.topology import draw_topology, topology_table
from tests.cheatsheet import run_cli, sheet_commands

HTTPD = ["httpd", "-f", "-p", "80", "-h", "/www"]


@pytest.fixture
def pulled(client):
    client.images.pull("busybox", tag="1.35")


def sleeper(client, run, what, **kwargs):
    return client.containers.run(BASE_IMAGE, ["sleep", "120"], name=run.name(what), labels=run.labels,
                                 detach=True, **kwargs)


def test_parse_links():
    text = ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
            "212: veth74656ce@if211: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1500 qdisc noqueue master docker0 \\"
            "    link/ether 42:b4:d2:d0:81:b8 brd ff:ff:ff:ff:ff:ff\n"
            "5: docker0: <NO-CARRIER,BROADCAST,MULTICAST> mtu 1500 qdisc noqueue \\    link/ether 02:42:ea:f8:82:09 brd ff:ff:ff:ff:ff:ff\n")
    lo, veth, bridge = network.parse_links(text)
    assert (lo.index, lo.name, lo.peer, lo.master, lo.up) == (1, "lo", None, None, True)
    assert (veth.index, veth.name, veth.peer, veth.master, veth.mac) == (212, "veth74656ce", 211, "docker0", "42:b4:d2:d0:81:b8")
    assert veth.label == "veth74656ce@if211"
    assert not bridge.up


def test_parse_links_takes_the_peer_from_sysfs():
    """Engine 28 makes a container's veth end inside its namespace (index 2): busybox ip on the
    host then prints the host's own interface 2 after the "@" (or nothing). sysfs iflink wins."""
    text = ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
            "2: ifb0: <BROADCAST,NOARP> mtu 1500 qdisc noop qlen 32\\    link/ether 4a:9e:1c:00:11:22 brd ff:ff:ff:ff:ff:ff\n"
            "5: docker0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue \\    link/ether 02:42:91:77:82:d2 brd ff:ff:ff:ff:ff:ff\n"
            "132: vetheb25b70@ifb0: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1500 qdisc noqueue master docker0 \\"
            "    link/ether ae:c7:fe:e8:f6:d6 brd ff:ff:ff:ff:ff:ff\n"
            "133: veth307bd0e: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu 1500 qdisc noqueue master docker0 \\"
            "    link/ether 06:b9:87:f0:24:e2 brd ff:ff:ff:ff:ff:ff\n"
            "/sys/class/net/docker0/iflink:5\n/sys/class/net/ifb0/iflink:2\n/sys/class/net/lo/iflink:1\n"
            "/sys/class/net/veth307bd0e/iflink:2\n/sys/class/net/vetheb25b70/iflink:2\n")
    lo, ifb, bridge, a, b = network.parse_links(text)
    assert (lo.peer, ifb.peer, bridge.peer) == (None, None, None)     # iflink == ifindex: no partner
    assert (a.peer, a.label, a.master) == (2, "vetheb25b70@if2", "docker0")
    assert (b.peer, b.label) == (2, "veth307bd0e@if2")
    assert network._whole_listing(text) and not network._whole_listing(text[:text.index("/sys")])
    inside = network.parse_links("1: lo: <LOOPBACK,UP> mtu 65536\n2: eth0@if132: <BROADCAST,UP> mtu 1500\n"
                                 "/sys/class/net/eth0/iflink:132\n/sys/class/net/lo/iflink:1\n")[1]
    pair = network.VethPair("c", inside, a)
    assert pair.matches and not network.VethPair("c", inside, b).matches   # b's index is 133, not 132


def test_gateway_of_a_bridge_whose_ipam_names_none(client):
    """A stock Engine 20.10 leaves the default bridge's IPAM Gateway empty: its first address then."""
    from docker.models.networks import Network

    bare = Network(attrs={"Id": "x", "Name": "bridge", "Driver": "bridge",
                          "IPAM": {"Config": [{"Subnet": "172.17.0.0/16"}]}}, client=client)
    bare.reload = lambda: None
    assert network.gateway_of(client, bare) == "172.17.0.1"
    assert network.gateway_of(client, "bridge")                        # 26.1 and 28.5 fill it
    none = Network(attrs={"Id": "y", "Name": "none", "Driver": "null", "IPAM": {"Config": []}}, client=client)
    none.reload = lambda: None
    with pytest.raises(NotFound, match="no gateway"):
        network.gateway_of(client, none)


def test_cannot_reach_discounts_an_answer_during_a_network_create(monkeypatch):
    """Before Engine 28 creating a bridge network briefly lifts the isolation rule: a ping answered
    then (a network create event around it) is asked again; an answer with no such event counts."""
    answers: list[bool] = []
    events: list[list[dict]] = []
    monkeypatch.setattr(network, "reaches", lambda c, t, patience=3.0: answers.pop(0))
    monkeypatch.setattr(network, "_networks_created", lambda client, start, end: events.pop(0))
    box = type("Box", (), {"client": None})()
    created = [{"Type": "network", "Action": "create"}]
    answers[:], events[:] = [True, False], [created]
    assert network.cannot_reach(box, "10.0.0.2")                       # the answer came with a create
    answers[:], events[:] = [True], [[]]
    assert not network.cannot_reach(box, "10.0.0.2")                   # a real answer
    answers[:], events[:] = [True, True, True], [created, created, created]
    assert not network.cannot_reach(box, "10.0.0.2")                   # three times: give up, it reaches
    with pytest.raises(BadInput, match="attempts"):
        network.cannot_reach(box, "10.0.0.2", attempts=0)


def test_networks_created_reads_create_events(client, run):
    """The events API, by Type/Action: a network made inside the window is found."""
    import time

    start = time.time()
    net = client.networks.create(run.name("evt"), labels=run.labels)
    found = network._networks_created(client, start, time.time())
    assert any(e["Actor"]["ID"] == net.id for e in found)


def test_bad_input_is_one_sentence(client, run, pulled):
    with pytest.raises(BadInput, match="Container"):
        network.links("web")
    c = sleeper(client, run, "bad")
    with pytest.raises(BadInput, match="non-empty"):
        network.reaches(c, "")
    with pytest.raises(BadInput, match="bridge"):
        network.bridge_name(client, "host")
    with pytest.raises(NotFound, match="no network named"):
        network.bridge_name(client, run.name("missing"))
    with pytest.raises(NotFound, match="not on"):
        network.ip_in(c, "host")
    with pytest.raises(NotFound, match="publishes no"):
        network.host_port(c)
    with pytest.raises(BadInput, match="not a subnet"):
        network.create_with_subnet(client, run, "x", subnet="10.300.0.0/24")
    with pytest.raises(BadInput, match="port"):
        network.http_get(client, 0)
    with pytest.raises(BadInput):
        network.free_subnet(client, run, offset=-1)
    with pytest.raises(BadInput, match="topology_table"):
        draw_topology(pd.DataFrame())
    with pytest.raises(BadInput):
        topology_table(client, run, [], [c])
    c.stop(timeout=0)
    with pytest.raises(BadInput, match="start it"):
        network.links(c)


def test_subnets_of_two_runs_never_collide(client, pulled):
    a, b = Run(client, "tests"), Run(client, "tests")
    try:
        na = network.create_with_subnet(client, a, "net")
        nb = network.create_with_subnet(client, b, "net")
        sa, sb = network.subnet_of(client, na), network.subnet_of(client, nb)
        assert not sa.overlaps(sb)
        with pytest.raises(network.SubnetTaken, match="overlaps"):
            network.create_with_subnet(client, b, "again", subnet=str(sa))
    finally:
        a.cleanup()
        b.cleanup()


def test_veth_pairs_and_topology(client, run, pulled):
    net = client.networks.create(run.name("net"), labels=run.labels)
    web = client.containers.run(BASE_IMAGE, HTTPD, name=run.name("web"), labels=run.labels, detach=True,
                                network=net.name, ports={"80/tcp": (network.publish_address(client), None)})
    pairs = network.veth_pairs(client, run, [web])
    assert len(pairs) == 1 and pairs[0].matches
    assert pairs[0].host.master == network.bridge_name(client, net)
    assert "Hello from the Docker course" in network.http_get(client, network.host_port(web))
    topo = topology_table(client, run, [net], [web])
    assert topo["ends ok"].all() and topo["published"][0].endswith("->80/tcp")
    assert draw_topology(topo) is not None


def test_swarm_is_shared_and_given_back(client, pulled):
    a, b = Run(client, "tests"), Run(client, "tests")
    try:
        assert network.join_swarm(client, a)
        assert network.join_swarm(client, b)
        assert network.leave_swarm(client, a)
        assert network.swarm_state(client) == "active"          # b still uses it
        assert network.leave_swarm(client, b)
        leases = client.containers.list(all=True, filters={"label": [f"{network.SWARM_USER}=true", f"{RUN}={b.id}"]})
        assert leases == []
        if network.swarm_state(client) == "active":              # only when someone else still needs it
            client.swarm.reload()
            made = (client.swarm.attrs["Spec"].get("Labels") or {}).get(network.SWARM_MADE) == "true"
            others = network._users(client) or network.names_at_risk(client, b) or client.networks.list(
                filters={"driver": "overlay", "label": "org.dockercourse.managed"})
            assert not made or others
    finally:
        network.leave_swarm(client, a)
        network.leave_swarm(client, b)
        a.cleanup()
        b.cleanup()


def test_check_internal_network(client, run):
    assert not nb05.check_internal_network(client, run)
    net = client.networks.create(run.name("ex-net"), driver="bridge", labels=run.labels)
    assert "internal" in nb05.check_internal_network(client, run).message
    net.remove()
    net = client.networks.create(run.name("ex-net"), driver="bridge", internal=True)
    assert "labels" in nb05.check_internal_network(client, run).message
    net.remove()
    client.networks.create(run.name("ex-net"), driver="bridge", internal=True, labels=run.labels)
    assert nb05.check_internal_network(client, run)


def test_check_by_name(client, run, pulled):
    assert not nb05.check_by_name(client, run)
    a, b = sleeper(client, run, "ex-a"), sleeper(client, run, "ex-b")
    result = nb05.check_by_name(client, run)
    assert not result and "default bridge" in result.message
    net = client.networks.create(run.name("ex-net"), labels=run.labels)
    net.connect(a)
    net.connect(b)
    assert nb05.check_by_name(client, run)


def test_check_published(client, run, pulled):
    assert not nb05.check_published(client, run, 8080)
    plain = client.containers.run(BASE_IMAGE, HTTPD, name=run.name("ex-web"), labels=run.labels, detach=True)
    assert "not published" in nb05.check_published(client, run, 8080).message
    plain.remove(force=True)
    web = client.containers.run(BASE_IMAGE, HTTPD, name=run.name("ex-web"), labels=run.labels, detach=True,
                                ports={"80/tcp": (network.publish_address(client), None)})
    port = network.host_port(web)
    assert not nb05.check_published(client, run, str(port))           # wrong type
    assert not nb05.check_published(client, run, 80)                  # the container's port, not the host's
    assert nb05.check_published(client, run, port)


def test_check_host_end(client, run, pulled):
    assert not nb05.check_host_end(client, run, "veth0000000")
    a = sleeper(client, run, "ex-a")
    assert not nb05.check_host_end(client, run, "eth0")
    assert not nb05.check_host_end(client, run, None)
    eth0 = next(link for link in network.links(a) if link.name == "eth0")
    host = next(link for link in network.host_links(client, run) if link.index == eth0.peer)
    assert nb05.check_host_end(client, run, host.name)
    assert nb05.check_host_end(client, run, host.label)               # "veth…@ifN" is accepted too


def test_cheat_sheet_runs(client, run, pulled):
    commands = sheet_commands("05_networking.ipynb")
    assert any("network connect" in c for c in commands) and any("disconnect -f" in c for c in commands)
    subnet = network.free_subnet(client, run)
    subs = {"NET": run.name("net"), "NET2": run.name("net2"), "NAME": run.name("c"), "PUB": run.name("pub"),
            "OV": run.name("ov"), "MV": run.name("mv"), "SUBNET": str(subnet),
            "GATEWAY": str(next(subnet.hosts()))}
    label = f"--label org.dockercourse.managed=true --label org.dockercourse.run={run.id}"
    swarm = [c for c in commands if c.startswith("docker swarm") or " OV" in c]
    for command in commands:
        if command in swarm:
            continue
        if command.startswith("docker network create"):
            command = command.replace("docker network create", f"docker network create {label}")
        if command.startswith("docker run"):
            command = command.replace("docker run", f"docker run {label}", 1)
        if "PARENT" in command:
            subs["PARENT"] = network.bridge_name(client, subs["NET"])
        out = run_cli(command, subs)
        if command.startswith("docker port"):
            assert out.stdout.startswith("127.0.0.1:")
        if "--network none" in command:
            assert "eth0" not in out.stdout
        if "--network host" in command:
            assert "docker0" in out.stdout
        if command.endswith("/iflink"):                                # the host end's index
            assert out.stdout.strip().isdigit() and int(out.stdout) > 1
    # the swarm part: run the CLI for real only when nobody else uses or could be hurt by a swarm
    lease = Run(client, "tests", id=run.id)
    with network._SwarmLock(client):
        own = (network.swarm_state(client) == "inactive" and not network._users(client)
               and not network.names_at_risk(client, run))
        if own:
            for command in swarm[:1]:
                run_cli(command, subs)
    if not own:
        network.join_swarm(client, lease)
        out = run_cli(swarm[0], subs, check=False)
        assert out.returncode == 0 or "already part of a swarm" in out.stderr
    try:
        run_cli(f"docker network create {label} -d overlay --attachable {subs['OV']}")
        run_cli("docker network rm OV", subs)
    finally:
        if own:
            with network._SwarmLock(client):
                if network.names_at_risk(client, run) or network._users(client):
                    client.swarm.reload()   # someone came meanwhile: hand the swarm to the last one out
                    client.swarm.update(labels={network.SWARM_MADE: "true", network.GWBRIDGE_NEW: "false"})
                else:
                    run_cli("docker swarm leave --force")
        else:
            network.leave_swarm(client, lease)
    assert "docker swarm leave --force" in swarm


class _SlowSwarmContainer:
    """A container whose first ``fails`` starts meet a swarm too slow to attach it."""

    def __init__(self, fails: int, message: str = "attaching to network failed, make sure your network options "
                 "are correct and check manager logs: context deadline exceeded") -> None:
        self.fails, self.message, self.starts = fails, message, 0

    def start(self) -> None:
        from docker.errors import APIError

        self.starts += 1
        if self.starts <= self.fails:
            raise APIError(f"500 Server Error: Internal Server Error ({self.message})")


class _Containers:
    def __init__(self, made):
        self.made = made

    def create(self, *args, **kwargs):
        return self.made


def _fake_client(made):
    return type("C", (), {"containers": _Containers(made)})()


def test_run_attached_starts_again_when_the_swarm_was_too_slow(client, run):
    from docker.errors import APIError
    from docker.models.networks import Network

    ov = Network(attrs={"Id": "x", "Name": "ov"}, client=client)
    slow = _SlowSwarmContainer(fails=2)
    assert network.run_attached(_fake_client(slow), run, "ov-a", ov) is slow and slow.starts == 3
    never = _SlowSwarmContainer(fails=10)
    with pytest.raises(APIError):
        network.run_attached(_fake_client(never), run, "ov-a", ov)
    assert never.starts == 5                                   # five tries, then the daemon's own error
    unknown = _SlowSwarmContainer(fails=3, message="network ov not found")  # torn down after a failed attach
    assert network.run_attached(_fake_client(unknown), run, "ov-a", ov) is unknown and unknown.starts == 4
    elsewhere = _SlowSwarmContainer(fails=1, message="network someone-elses not found")
    with pytest.raises(APIError):
        network.run_attached(_fake_client(elsewhere), run, "ov-a", ov)
    assert elsewhere.starts == 1                               # only this network's "not found" is waited out
    other = _SlowSwarmContainer(fails=1, message="No such image")
    with pytest.raises(APIError):
        network.run_attached(_fake_client(other), run, "ov-a", ov)
    assert other.starts == 1                                   # other errors are not retried
    with pytest.raises(BadInput):
        network.run_attached(client, run, "ov-a", "ov")


def test_a_leave_that_missed_its_deadline_is_finished_by_a_second_one():
    """dockerd 20.10 on a busy host: the first leave times out half done; the course leaves again."""
    from docker.errors import APIError

    class Swarm:
        def __init__(self, fails, message="context deadline exceeded"):
            self.fails, self.message, self.leaves = fails, message, 0

        def leave(self, force=False):
            self.leaves += 1
            if self.leaves <= self.fails:
                raise APIError(f"500 Server Error: Internal Server Error ({self.message})")

    def daemon(swarm):
        return type("D", (), {"swarm": swarm})()

    once = Swarm(fails=1)
    network._leave(daemon(once), {})
    assert once.leaves == 2
    other = Swarm(fails=1, message="This node is not part of a swarm")
    with pytest.raises(APIError):
        network._leave(daemon(other), {})
    assert other.leaves == 1


def test_a_listing_that_came_back_empty_is_asked_again(monkeypatch):
    """A short exec's output can come back empty (DinD over TCP, busy): links() asks again."""
    from docker.models.containers import Container

    box = Container(attrs={"Id": "x", "Name": "/box", "State": {"Status": "running"}})
    answers = iter([(0, b""), (0, b"1: lo: <LOOPBACK,UP> mtu 65536 link/loopback 00:00:00:00:00:00\n"
                                  b"9: eth0@if10: <BROADCAST,UP> mtu 1500 link/ether 02:42:ac:11:00:02\n"
                                  b"/sys/class/net/eth0/iflink:10\n/sys/class/net/lo/iflink:1\n")])
    monkeypatch.setattr(box, "reload", lambda: None)
    monkeypatch.setattr(box, "exec_run", lambda cmd: next(answers))
    assert [link.name for link in network.links(box)] == ["lo", "eth0"]
    never = Container(attrs={"Id": "y", "Name": "/never", "State": {"Status": "running"}})
    calls = []
    monkeypatch.setattr(never, "reload", lambda: None)
    monkeypatch.setattr(never, "exec_run", lambda cmd: calls.append(cmd) or (0, b""))
    assert network.links(never) == [] and len(calls) == 3       # three tries, then what there is


def test_a_routing_table_that_came_back_lost_is_asked_again(monkeypatch):
    """A container's table can be empty (--network none) or lost by the daemon (moby#27289: the DinD
    pass once read "no default route" for a bridge container); the end line tells them apart."""
    from docker.models.containers import Container

    box = Container(attrs={"Id": "x", "Name": "/box", "State": {"Status": "running"}})
    monkeypatch.setattr(box, "reload", lambda: None)
    calls: list[list[str]] = []

    def answering(*answers: bytes) -> None:
        left = list(answers)
        calls.clear()
        monkeypatch.setattr(box, "exec_run", lambda cmd: calls.append(cmd) or (0, left.pop(0)))

    table = b"default via 172.17.0.1 dev eth0 \n172.17.0.0/16 dev eth0 scope link  src 172.17.0.2 \nend-of-routes\n"
    answering(b"", table)
    assert network.default_gateway(box) == "172.17.0.1" and len(calls) == 2
    answering(b"end-of-routes\n")                                        # --network none: no route, asked once
    assert network.routes(box) == [] and len(calls) == 1
    answering(b"", b"", b"")
    assert network.routes(box) == [] and len(calls) == 3                 # gives up after three
    assert calls[0] == network.ROUTES_COMMAND


def test_host_listings_are_asked_again_when_the_output_was_lost(run, monkeypatch):
    """On a busy daemon a short exec may come back with no output (moby#27289); the host always
    has links, so an empty answer is asked again — three times."""
    from docker.models.containers import Container

    shell = Container(attrs={"Id": "h", "Name": "/host-shell", "State": {"Status": "running"}})
    monkeypatch.setattr(shell, "reload", lambda: None)
    monkeypatch.setattr(network, "host_shell", lambda client, r: shell)
    calls: list[list[str]] = []

    def answering(*answers: bytes) -> None:
        left = list(answers)
        calls.clear()
        monkeypatch.setattr(shell, "exec_run", lambda cmd: calls.append(cmd) or (0, left.pop(0)))

    lo = (b"1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT link/loopback 00:00:00:00:00:00\n"
          b"/sys/class/net/lo/iflink:1\n")
    answering(b"", lo[:40], lo)                                         # empty, then cut short
    assert [link.name for link in network.host_links(None, run)] == ["lo"] and len(calls) == 3
    answering(b"", b"", b"", lo)
    assert network.host_links(None, run) == [] and len(calls) == 3     # gives up after three
    answering(b"default via 172.17.0.1 dev eth0\n")
    assert network.host_routes(None, run) == ["default via 172.17.0.1 dev eth0"] and calls == [["ip", "route"]]


def test_host_listings_share_one_host_network_container_of_the_run(client, run, pulled):
    """The host's interfaces are read in one container of the run's, in the host's network
    namespace, made on first use, used again (started again if stopped) and removed by clean-up."""
    first = network.host_links(client, run)
    shells = client.containers.list(all=True, filters=run.filters)
    assert [c.name for c in shells] == [run.name(network.HOST_SHELL)]
    shell = shells[0]
    assert shell.attrs["HostConfig"]["NetworkMode"] == "host" and run.labels.items() <= shell.labels.items()
    assert "docker0" in {link.name for link in first}          # the host's, not a container's own
    shell.stop(timeout=0)
    assert network.host_routes(client, run)                    # started again, not made again
    assert [c.id for c in client.containers.list(filters=run.filters)] == [shell.id]
    run.cleanup()
    assert not client.containers.list(all=True, filters=run.filters)
