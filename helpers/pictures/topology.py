"""A picture of bridge networking drawn from live data: the host, its bridges, one veth pair per
container, each container's IP and published ports (notebook 05).

:func:`topology_table` gathers the data (a DataFrame the notebook also shows, since nbval does not
compare pictures); :func:`draw_topology` draws exactly that table and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import docker
import pandas as pd
from docker.models.containers import Container
from docker.models.networks import Network

from ..errors import BadInput
from ..naming import Run
from ..network import bridge_name, host_links, links, subnet_of

COLUMNS = ("bridge", "network", "subnet", "container", "IP", "inside", "host end", "ends ok", "published")


def _published(container: Container) -> str:
    ports = (container.attrs["NetworkSettings"].get("Ports") or {})
    return ", ".join(f"{b['HostPort']}->{p}" for p, bs in sorted(ports.items()) for b in bs or [])


def topology_table(client: docker.DockerClient, run: Run, networks: Sequence[Network],
                   containers: Sequence[Container]) -> pd.DataFrame:
    """One row per (bridge network, container on it): bridge, subnet, the container's IP, both
    ends of its veth pair (read live: ``ip -o link`` and sysfs ``iflink`` inside and on the host,
    see :data:`helpers.network.LINKS_COMMAND`), and published ports.

    ``ends ok`` is True when the host end's partner is the container's interface and vice versa
    (by ifindex) and the host end's master is the network's bridge. Returns a DataFrame with the
    columns :data:`COLUMNS`; raises :class:`BadInput` when no network or no container is given.
    """
    if not networks or not containers:
        raise BadInput("give at least one bridge network and one container on it.")
    on_host = {link.index: link for link in host_links(client, run)}
    rows = []
    for net in networks:
        net.reload()
        bridge, subnet = bridge_name(client, net), subnet_of(client, net)
        for c in containers:
            c.reload()
            ep = c.attrs["NetworkSettings"]["Networks"].get(net.name)
            if not ep:
                continue
            # the container's interface on this network is the one holding its IP
            inside = next((link for link in links(c) if link.mac == ep["MacAddress"]), None)
            host = on_host.get(inside.peer) if inside and inside.peer else None
            rows.append({"bridge": bridge, "network": net.name, "subnet": str(subnet), "container": c.name,
                         "IP": ep["IPAddress"], "inside": inside.label if inside else "",
                         "host end": host.label if host else "",
                         "ends ok": bool(host and inside and host.peer == inside.index and host.master == bridge),
                         "published": _published(c)})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def draw_topology(table: pd.DataFrame, host_label: str = "the daemon's host"):
    """Draw a topology table: a box for the host, one bridge per network, a veth line per
    container (host end on the bridge, eth end in the container) and the published ports."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    if not isinstance(table, pd.DataFrame) or not set(COLUMNS) <= set(table.columns):
        raise BadInput("draw_topology wants the DataFrame that topology_table returns.")
    bridges = list(dict.fromkeys(table["bridge"]))
    width = max(len(g) for _, g in table.groupby("bridge", sort=False)) if len(table) else 1
    fig, ax = plt.subplots(figsize=(3.2 * max(width, 2) + 1, 2.6 * len(bridges) + 0.8))
    ax.set_xlim(0, 3.2 * max(width, 2) + 1)
    ax.set_ylim(0, 2.6 * len(bridges) + 0.8)
    ax.axis("off")
    ax.add_patch(FancyBboxPatch((0.1, 0.1), 3.2 * max(width, 2) + 0.8, 2.6 * len(bridges) + 0.5,
                                boxstyle="round,pad=0.05", fc="#f4f6fb", ec="#556"))
    ax.text(0.3, 2.6 * len(bridges) + 0.35, host_label, fontsize=10, weight="bold", va="center")
    for i, bridge in enumerate(bridges):
        rows = table[table["bridge"] == bridge]
        y = 2.6 * (len(bridges) - i - 1) + 0.4
        ax.add_patch(FancyBboxPatch((0.4, y), 3.2 * max(width, 2) + 0.2, 0.5, boxstyle="round,pad=0.02",
                                    fc="#cfe3ff", ec="#2a5db0"))
        first = rows.iloc[0]
        ax.text(0.6, y + 0.25, f"{bridge}  ({first['network']}, {first['subnet']})", fontsize=8, va="center")
        for j, (_, r) in enumerate(rows.iterrows()):
            x = 0.6 + 3.2 * j
            ax.plot([x + 1.3, x + 1.3], [y + 0.5, y + 1.1], color="#2a5db0", lw=2)
            ax.text(x + 1.4, y + 0.7, r["host end"], fontsize=7, color="#2a5db0")
            ax.add_patch(FancyBboxPatch((x, y + 1.1), 2.8, 0.95, boxstyle="round,pad=0.03", fc="white", ec="#333"))
            ax.text(x + 0.1, y + 1.8, r["container"], fontsize=8, weight="bold")
            ax.text(x + 0.1, y + 1.55, f"{r['inside']}  {r['IP']}", fontsize=7)
            if r["published"]:
                ax.text(x + 0.1, y + 1.3, f"published {r['published']}", fontsize=7, color="#b03a2a")
    ax.set_title("bridge networking, read from the live system", fontsize=10)
    fig.tight_layout()
    return fig
