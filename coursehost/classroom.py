"""A class on one machine: JupyterHub, and for each learner a lab and a Docker daemon of their own.

``./course class start`` runs, on the teacher's machine and the course's own engine:

* **the hub** — JupyterHub (``jupyterhub``), its proxy (``configurable-http-proxy`` from npm),
  learners who sign up with a password of their own (``jupyterhub-nativeauthenticator``, open
  sign-up; the teacher is the admin) and ``jupyterhub-idle-culler``, every one pinned
  (requirements.txt, versions.toml). It listens on 127.0.0.1 unless the teacher names a LAN
  address;
* **a seat per learner**, made when they start their server and removed when it stops (the
  learner, the teacher or the idle culler stops it), by :class:`CourseSpawner` (DockerSpawner):
  its own bridge network ``dc-class-<class>-<user>``, on it a Docker-in-Docker daemon
  (``docker`` on that network: the DinD lane's engine of ``coursehost.dind``, the course
  registry as its mirror) and the learner's JupyterLab container with ``DOCKER_HOST=tcp://docker:2375``.
  A seat's network reaches no other seat's, so no learner can see or touch another's
  containers. Memory and CPU are limited per container (:data:`SEAT`).

:data:`SEAT` is the one place the seat's settings live: ``deploy/jupyterhub/values.yaml`` (Zero
to JupyterHub, for more than one machine) is checked against it by ``tests/test_class.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import APIError, NotFound

from helpers.base import REGISTRY_PORT

#: What a seat gets, on one machine and on Kubernetes alike (values.yaml is checked against it).
SEAT = {
    "lab_memory": "1536M",        # the learner's JupyterLab: the kernels and their tables
    "lab_cpus": 1.0,
    "daemon_memory": "2G",        # the learner's Docker daemon and every container it runs
    "daemon_cpus": 1.0,
    "daemon_storage": "10Gi",     # its data root (an emptyDir on Kubernetes)
    "idle_timeout": 3600,         # seconds without activity before the culler stops a seat
}
#: The class network: the hub's API and the course registry listen on its gateway, an address
#: of the teacher's machine every seat reaches (seats reach no one else).
CLASS_SUBNET = "10.214.0.0/24"
CLASS_GATEWAY = "10.214.0.1"
HUB_API_PORT = 8081
#: The label every object of a class carries (value: the class id), beside the seat's user.
CLASS_LABEL = "org.dockercourse.class"
SEAT_LABEL = "org.dockercourse.seat"
DAEMON_ALIAS = "docker"
DAEMON_PORT = 2375


def class_id(state: Path) -> str:
    """A short id of the class of this checkout (one class per checkout and machine)."""
    return hashlib.sha256(str(state.resolve()).encode()).hexdigest()[:6]


def safe_name(user: str) -> str:
    """A learner's name as Docker object names allow it (lowercase letters, digits, ``-``)."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", user.lower()).strip("-")[:40]
    return cleaned or hashlib.sha256(user.encode()).hexdigest()[:8]


def memory_bytes(text: str) -> int:
    """``1536M`` / ``2G`` / ``10Gi`` as bytes."""
    number, unit = re.fullmatch(r"(\d+)([KMGT]i?)?", text).groups()  # type: ignore[union-attr]
    power = {"K": 1, "M": 2, "G": 3, "T": 4}[unit[0]] if unit else 0
    return int(number) * 1024 ** power


def may_run_privileged(status: Path = Path("/proc/self/status")) -> bool:
    """Whether this machine's root can run ``--privileged`` containers: it needs every capability,
    CAP_SYS_RESOURCE (bit 24) included, in its bounding set (``CapBnd``)."""
    for line in status.read_text().splitlines():
        if line.startswith("CapBnd:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return False


def daemon_host_config(client: docker.DockerClient, privileged: bool, data_volume: str) -> dict:
    """The seat daemon's host configuration: privileged on an ordinary host; where root lacks
    CAP_SYS_RESOURCE, every capability it has and unconfined seccomp/AppArmor/system paths, as
    the course's DinD pass runs (coursehost.dind)."""
    limits = {"mem_limit": SEAT["daemon_memory"], "nano_cpus": int(SEAT["daemon_cpus"] * 1e9)}
    binds = {data_volume: {"bind": "/var/lib/docker", "mode": "rw"}}
    if privileged:
        config = client.api.create_host_config(privileged=True, binds=binds, **limits)
    else:
        config = client.api.create_host_config(
            cap_add=["ALL"], security_opt=["seccomp=unconfined", "apparmor=unconfined"],
            binds=binds, cgroupns="private", **limits)
        config.update(MaskedPaths=[], ReadonlyPaths=[])
    return config


@dataclass(frozen=True)
class Seat:
    """The Docker objects of one learner's seat in class ``klass``."""

    klass: str
    user: str

    @property
    def prefix(self) -> str:
        return f"dc-class-{self.klass}-{safe_name(self.user)}"

    @property
    def network(self) -> str:
        return self.prefix

    @property
    def daemon(self) -> str:
        return f"{self.prefix}-docker"

    @property
    def volume(self) -> str:
        return f"{self.prefix}-docker"

    @property
    def lab(self) -> str:
        return f"{self.prefix}-lab"

    @property
    def labels(self) -> dict[str, str]:
        return {CLASS_LABEL: self.klass, SEAT_LABEL: self.user}

    def create(self, client: docker.DockerClient, daemon_image: str, privileged: bool,
               timeout: float = 60) -> str:
        """Make the seat's network, daemon volume and daemon, and wait until it answers;
        returns the daemon's address on the seat network. Raises RuntimeError (one sentence,
        with the daemon's last log lines) when it does not answer within ``timeout`` s."""
        self.remove(client)
        client.networks.create(self.network, driver="bridge", labels=self.labels)
        client.volumes.create(self.volume, labels=self.labels)
        host_config = daemon_host_config(client, privileged, self.volume)
        from .engine import GO_RUNTIME
        created = client.api.create_container(
            daemon_image, name=self.daemon, labels=self.labels, detach=True, host_config=host_config,
            environment={"COURSE_MIRROR": f"{CLASS_GATEWAY}:{REGISTRY_PORT}", **GO_RUNTIME},
            networking_config=client.api.create_networking_config(
                {self.network: client.api.create_endpoint_config(aliases=[DAEMON_ALIAS])}))
        container = client.containers.get(created["Id"])
        container.start()
        address = ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            container.reload()
            if container.status != "running":
                break
            address = container.attrs["NetworkSettings"]["Networks"][self.network]["IPAddress"]
            if address and _answers(f"http://{address}:{DAEMON_PORT}/_ping"):
                return address
            time.sleep(0.1)
        logs = " | ".join(container.logs(tail=5).decode(errors="replace").strip().splitlines())
        self.remove(client)
        raise RuntimeError(f"{self.user}'s Docker daemon did not answer in {timeout:.0f} s: {logs}")

    def remove(self, client: docker.DockerClient) -> None:
        """Remove everything of the seat: lab, daemon (and what ran in it), volume, network."""
        for name in (self.lab, self.daemon):
            with contextlib.suppress(NotFound):
                client.containers.get(name).remove(force=True, v=True)
        with contextlib.suppress(NotFound):
            client.volumes.get(self.volume).remove(force=True)
        with contextlib.suppress(NotFound):
            client.networks.get(self.network).remove()


def _answers(url: str) -> bool:
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=0.5) as response:
            return response.status == 200
    except OSError:
        return False


def leftovers(client: docker.DockerClient, klass: str) -> list[str]:
    """Every object of class ``klass`` still on the daemon, as ``kind name`` strings."""
    where = {"label": f"{CLASS_LABEL}={klass}"}
    found = [f"container {c.name}" for c in client.containers.list(all=True, filters=where)]
    found += [f"network {n.name}" for n in client.networks.list(filters=where)]
    found += [f"volume {v.name}" for v in client.volumes.list(filters=where)]
    return found


def remove_all(client: docker.DockerClient, klass: str) -> None:
    """Remove every seat of class ``klass`` (the teacher stops the class)."""
    where = {"label": f"{CLASS_LABEL}={klass}"}
    for c in client.containers.list(all=True, filters=where):
        with contextlib.suppress(NotFound, APIError):
            c.remove(force=True, v=True)
    for v in client.volumes.list(filters=where):
        with contextlib.suppress(NotFound, APIError):
            v.remove(force=True)
    for n in client.networks.list(filters=where):
        with contextlib.suppress(NotFound, APIError):
            n.remove()


def ensure_class_network(client: docker.DockerClient, klass: str) -> None:
    """The class network whose gateway (:data:`CLASS_GATEWAY`) is the teacher's machine as every
    seat sees it: the hub's API and the course registry's front listen there."""
    name = f"dc-class-{klass}"
    with contextlib.suppress(NotFound):
        client.networks.get(name)
        return
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=CLASS_SUBNET, gateway=CLASS_GATEWAY)])
    client.networks.create(name, driver="bridge", ipam=ipam, labels={CLASS_LABEL: klass},
                           options={"com.docker.network.bridge.name": "course-class"})


def environment_for_lab() -> dict[str, str]:
    """What the learner's lab gets: its daemon, and where published ports are reached."""
    return {"DOCKER_HOST": f"tcp://{DAEMON_ALIAS}:{DAEMON_PORT}"}


def _spawner_base():  # DockerSpawner imports jupyterhub: only the hub process needs it
    from dockerspawner import DockerSpawner
    return DockerSpawner


def make_spawner_class():
    """The hub's spawner: DockerSpawner that makes the learner's seat before the lab starts and
    removes it after the lab stops. Built on demand so importing this module needs no JupyterHub."""
    import asyncio

    DockerSpawner = _spawner_base()

    class CourseSpawner(DockerSpawner):
        async def start(self):
            klass = os.environ["COURSE_CLASS_ID"]
            seat = Seat(klass, self.user.name)
            client = docker.from_env(timeout=120)
            self.network_name = seat.network
            self.extra_create_kwargs = {"labels": seat.labels}
            self.environment.update(environment_for_lab())
            await asyncio.to_thread(seat.create, client, os.environ["COURSE_DAEMON_IMAGE"],
                                    os.environ.get("COURSE_PRIVILEGED") == "1")
            return await super().start()

        async def stop(self, now=False):
            await super().stop(now=now)
            klass = os.environ["COURSE_CLASS_ID"]
            await asyncio.to_thread(Seat(klass, self.user.name).remove, docker.from_env(timeout=120))

    return CourseSpawner


# --- past one machine: Zero to JupyterHub ---------------------------------------------------------

#: Placeholders the teacher replaces in deploy/jupyterhub/values.yaml: the course registry's
#: address (README "Run it in a class"), the images' tags `./course class publish` prints, the
#: class code and the teacher's password.
PLACEHOLDERS = ("REGISTRY", "LAB_TAG", "DAEMON_TAG", "CLASS_CODE", "TEACHER_PASSWORD")

VALUES_HEADER = """\
# Zero to JupyterHub (helm chart `jupyterhub`) for a class past one machine: the same lab image,
# seat settings and registry as `./course class` on one machine. GENERATED from
# coursehost/classroom.py (SEAT, kubernetes_values) by `python -m coursehost.classroom values`;
# tests/test_class.py fails when this file and the one-machine settings drift apart.
#
#   ./course class publish       # pushes course/lab and course/dind to the course registry, prints their tags
#   helm upgrade --install course jupyterhub/jupyterhub -f deploy/jupyterhub/values.yaml
#
# Replace REGISTRY (the course registry's address, README "Run it in a class"), LAB_TAG and
# DAEMON_TAG (what `./course class publish` printed), CLASS_CODE and TEACHER_PASSWORD (32+
# characters). Each learner's pod runs their lab and, beside it, their own Docker daemon (the
# course's Docker-in-Docker image) on the pod's loopback: only their own lab reaches it.
#
# SECURITY TRADE-OFF: the daemon container runs privileged. A privileged container is
# root on the node (it can load kernel modules, mount the node's disks, see every pod's processes), so a
# learner who controls that daemon controls the node. Use this only on nodes dedicated to the
# class (a separate node pool with a taint), for learners you would give a shell on those nodes;
# never on a cluster that also runs other people's workloads. Its data root is an emptyDir: it
# vanishes with the pod.
"""


def kubernetes_values() -> dict:
    """The helm values of deploy/jupyterhub/values.yaml, made from :data:`SEAT` and the one-machine
    hub configuration (coursehost/hub_config.py), with :data:`PLACEHOLDERS` for what only the
    teacher knows."""
    return {
        "hub": {"config": {
            "JupyterHub": {"authenticator_class": "shared-password"},
            "SharedPasswordAuthenticator": {"user_password": "CLASS_CODE", "admin_password": "TEACHER_PASSWORD"},
            "Authenticator": {"admin_users": ["teacher"], "allow_all": True},
        }},
        "cull": {"enabled": True, "timeout": SEAT["idle_timeout"]},
        "singleuser": {
            "image": {"name": "REGISTRY:5765/course/lab", "tag": "LAB_TAG"},
            "cmd": ["python3", "-m", "jupyterhub.singleuser"],
            "defaultUrl": "/lab/tree/notebooks",
            "memory": {"limit": SEAT["lab_memory"], "guarantee": SEAT["lab_memory"]},
            "cpu": {"limit": SEAT["lab_cpus"]},
            "extraEnv": {"DOCKER_HOST": f"tcp://localhost:{DAEMON_PORT}"},
            "extraContainers": [{
                "name": "docker",
                "image": "REGISTRY:5765/course/dind:DAEMON_TAG",
                "env": [{"name": "COURSE_MIRROR", "value": f"REGISTRY:{REGISTRY_PORT}"},
                        {"name": "COURSE_LISTEN", "value": "127.0.0.1"}],
                "securityContext": {"privileged": True},
                "resources": {"limits": {"memory": SEAT["daemon_memory"], "cpu": str(SEAT["daemon_cpus"])}},
                "volumeMounts": [{"name": "docker-data", "mountPath": "/var/lib/docker"}],
            }],
            "storage": {"type": "none", "extraVolumes": [
                {"name": "docker-data", "emptyDir": {"sizeLimit": SEAT["daemon_storage"]}}]},
        },
    }


def values_yaml() -> str:
    """deploy/jupyterhub/values.yaml as it must read."""
    import yaml
    return VALUES_HEADER + yaml.safe_dump(kubernetes_values(), sort_keys=False, default_flow_style=False)


if __name__ == "__main__":
    import sys
    if sys.argv[1:] != ["values"]:
        sys.exit("usage: python -m coursehost.classroom values")
    print(values_yaml(), end="")
