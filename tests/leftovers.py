"""After a test run: list every object of the course still on the daemon; exit 1 if any.

``./course test`` runs this once the tests pass, so "nothing of the run remains" is checked,
not assumed. Base images (busybox) are not the course's objects and may stay cached.
"""

from __future__ import annotations

import sys

from helpers.connection import connect
from helpers.listing import client_images
from helpers.naming import MANAGED, RUN_TAG
from helpers.network import release_swarm


def leftovers() -> list[str]:
    client = connect()
    # sparse listings: no per-object inspect that could 404 when another run removes it meanwhile
    found = [f"container {c.attrs['Names'][0].lstrip('/')}"
             for c in client.containers.list(all=True, sparse=True, filters={"label": MANAGED})]
    found += [f"network {n.name}" for n in client.networks.list(filters={"label": MANAGED})]
    found += [f"volume {v.name}" for v in client.volumes.list(filters={"label": MANAGED})]
    found += [f"image {i.short_id} ({', '.join(i.tags) or 'untagged'})"
              for i in client_images(client, all=True, filters={"label": MANAGED})]
    found += [f"image tag {t}" for i in client_images(client, all=True) for t in i.tags if RUN_TAG.search(t)]
    # notebook 05 leaves the swarm it made only when no one else could lose names by it; the
    # test command is the last one out, so the swarm must go now
    if not release_swarm(client):
        found.append("the course's swarm, still in use")
    return sorted(set(found))


if __name__ == "__main__":
    left = leftovers()
    print("; ".join(left) if left else "none")
    sys.exit(1 if left else 0)
