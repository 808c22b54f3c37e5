"""A Docker-in-Docker service for the course, the way CI systems and classes provide one.

GitLab's ``docker:dind`` service, a JupyterHub learner's dind sidecar: a daemon inside a
container, reached over TCP at *another host's* address. ``./course test`` runs the whole course
a second time against such a service (``python -m coursehost.dind pass -- PYTEST ARGS``):

* **the engine** — the ``dind`` lane of ``versions.toml``: Debian stable's Docker (26.1 today,
  what ``apt install docker.io`` gives on Debian 13) with its containerd, the classic
  ``overlay2`` store, and the common lane's runc and iptables — a second engine the course is
  proven on, beside the course's own (Debian testing's, on the containerd image store);
* **the image** — built offline, with no Docker Hub: a root filesystem of those programs, this
  machine's ``ps`` and the libraries they load, plus busybox for the start script, imported with
  ``docker import``. It is built once and stays cached on the local daemon as
  ``course-dind:<hash of those files>``;
* **the network** — its own bridge ``course-dind`` (``10.213.87.0/24``), so the daemon inside
  keeps Docker's usual ``172.17.0.0/16`` for its own ``docker0``, as a CI service has;
* **the mirror** — exactly what a teacher does for a class: the inner daemon is started with
  ``--registry-mirror=http://10.213.87.1:5765`` and ``--insecure-registry`` for it (the bridge's
  gateway, where a second front of the course registry listens for the pass), so
  ``client.images.pull("busybox", tag="1.35")`` works offline there too;
* **the daemon** — started with stock flags, as ``docker:dind`` or a class's daemon is (no
  ``--bip``, nothing forwarded to loopback): ``dockerd --host tcp://0.0.0.0:2375 --tls=false``
  inside the container (its own network namespace), data root on a tmpfs: removing the
  container leaves nothing behind.
  Published ports live on the service's host ``10.213.87.2``, which
  :func:`helpers.daemon_host` reads from ``DOCKER_HOST``.

A daemon that reaches neither Docker Hub nor the course registry: :func:`helpers.check_images`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
from docker.errors import NotFound

from . import debian, procs, registry
from helpers import connection
from .engine import GO_RUNTIME
from helpers.errors import EngineError
from . import imagekit
from .imagekit import FIXED_MTIME

REPO = "course-dind"
NAME = "course-dind"          # the service container and its network
SUBNET = "10.213.87.0/24"
GATEWAY = "10.213.87.1"       # the local machine as the service sees it: the mirror's address
ADDRESS = "10.213.87.2"       # the service's host: DOCKER_HOST and published ports


def slot(number: int) -> tuple[str, str, str, str]:
    """(name, subnet, gateway, address) of service slot ``number``: the pass uses slot 0; tests
    use slot 1, so they can run while a pass runs."""
    if number == 0:
        return NAME, SUBNET, GATEWAY, ADDRESS
    net = f"10.213.{87 + number}"
    return f"{NAME}-{number}", f"{net}.0/24", f"{net}.1", f"{net}.2"
PORT = 2375
#: Marks the service's container and network (not ``org.dockercourse.managed``: ``./course clean``
#: removes learners' objects, never the service a pass is using).
SERVICE_LABEL = "org.dockercourse.service"

#: Programs of the dind lane (versions.toml) copied into the image: path in the image -> program.
LANE_PROGRAMS = {"usr/sbin/dockerd": "dockerd", "usr/bin/containerd": "containerd",
                 "usr/bin/containerd-shim-runc-v2": "containerd-shim-runc-v2", "usr/sbin/runc": "runc",
                 "usr/sbin/docker-proxy": "docker-proxy", "usr/bin/docker-init": "docker-init",
                 "usr/sbin/xtables-nft-multi": "xtables-nft-multi"}
#: Programs copied from this machine (procps' ``ps`` runs ``docker top``; every Debian has it).
HOST_PROGRAMS = ["/usr/bin/ps"]
IPTABLES_LINKS = ["iptables", "iptables-save", "iptables-restore",
                  "ip6tables", "ip6tables-save", "ip6tables-restore"]
XTABLES_PLUGINS = "usr/lib/x86_64-linux-gnu/xtables"
DATA_FILES = ["/etc/os-release", "/usr/lib/os-release", "/etc/protocols", "/etc/services",
              "/etc/ethertypes"]

#: The service's start script. cgroup v1 controllers are mounted read-only in a container that
#: is not ``--privileged``: remount them writable (CAP_SYS_ADMIN allows it). Then forward the
#: service's own 127.0.0.1:5765 to the course registry and start dockerd with it as the mirror.
ENTRYPOINT = """#!/bin/sh
set -e
for d in /sys/fs/cgroup /sys/fs/cgroup/*/; do
  mount -o remount,rw "$d" 2>/dev/null || mount -o remount,bind,rw "$d" 2>/dev/null || true
done
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then   # cgroup v2: move to a leaf, enable controllers
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 < /sys/fs/cgroup/cgroup.procs > /sys/fs/cgroup/init/cgroup.procs || true
  sed -e 's/ / +/g' -e 's/^/+/' < /sys/fs/cgroup/cgroup.controllers \\
    > /sys/fs/cgroup/cgroup.subtree_control || true
fi
if [ -n "$COURSE_MIRROR" ]; then
  # the mirror for pulls; insecure (plain HTTP) also for `docker search MIRROR/term`
  set -- --registry-mirror "http://$COURSE_MIRROR" --insecure-registry "$COURSE_MIRROR" "$@"
fi
# offline by construction, as the course's engine (coursehost.engine.offline_env), with the mirror or
# without one (a class's daemon with no internet): a pull the mirror cannot serve fails at a dead
# loopback proxy instead of trying Docker Hub
export HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9
export NO_PROXY=127.0.0.0/8,localhost,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16
# stock flags otherwise, as docker:dind or a class's daemon starts
# (COURSE_LISTEN=127.0.0.1 where the daemon shares its network namespace with a lab: a pod)
exec dockerd --host "tcp://${COURSE_LISTEN:-0.0.0.0}:2375" --host unix:///run/docker.sock --tls=false "$@"
"""


def say(msg: str) -> None:
    print(f"[course] {msg}", file=sys.stderr, flush=True)


# --- the image ----------------------------------------------------------------------------------

def _libraries(binaries: list[Path], first: Path | None = None) -> set[str]:
    """Every shared library (and the loader) ``ldd`` lists for ``binaries``, looking in
    ``first`` before the machine's own folders."""
    found: set[str] = set()
    env = dict(os.environ, LD_LIBRARY_PATH=str(first)) if first else None
    out = subprocess.run(["ldd", *map(str, binaries)], capture_output=True, text=True, env=env).stdout
    for line in out.splitlines():
        if line.startswith("\t"):   # "\tlibc.so.6 => /lib/…/libc.so.6 (0x…)"; other lines name the binary
            found.update(part for part in line.split() if part.startswith("/"))
    return found


def rootfs_files() -> dict[str, Path]:
    """The image's files: path inside the image -> file on this machine (read through links).

    The dind lane's programs (fetched if need be), with the libraries ``ldd`` finds for them —
    the lane's own iptables libraries first, then this machine's glibc and friends.
    """
    try:
        root = debian.fetch("dind")
        lane = {inside: debian.program("dind", name) for inside, name in LANE_PROGRAMS.items()}
    except debian.AptFailed as err:
        raise EngineError(f"The Docker-in-Docker lane's Debian packages could not be fetched: {err}.") from None
    lane_libs = root / "usr/lib/x86_64-linux-gnu"
    plugins = sorted((root / XTABLES_PLUGINS).glob("*.so"))
    files: dict[str, Path] = dict(lane)
    files.update({p.lstrip("/"): Path(p) for p in HOST_PROGRAMS if Path(p).exists()})
    files["bin/busybox"] = debian.program("registry", "busybox")
    for lib in _libraries([*lane.values(), *map(Path, HOST_PROGRAMS), *plugins], lane_libs):
        inside = Path(lib)
        if lane_libs in inside.parents:   # the lane's own library, at its usual place in the image
            inside = Path("/usr/lib/x86_64-linux-gnu") / inside.relative_to(lane_libs)
        files[str(inside).lstrip("/")] = Path(lib)
    for plugin in plugins:
        files[f"{XTABLES_PLUGINS}/{plugin.name}"] = plugin
    for data in DATA_FILES:
        if Path(data).exists():
            files[data.lstrip("/")] = Path(data)
    return files


def fingerprint(files: dict[str, Path] | None = None) -> str:
    """A hash of what goes into the image: it changes when a Debian upgrade changes a binary."""
    files = files if files is not None else rootfs_files()
    h = hashlib.sha256(Path(__file__).read_bytes())   # how the image is built, start script included
    for name in sorted(files):
        st = files[name].stat()
        h.update(f"{name} {st.st_size} {int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:12]


def _add(tar: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, FIXED_MTIME, 0, 0
    info.size, info.linkname = len(data), link
    tar.addfile(info, io.BytesIO(data) if data else None)


def rootfs_tar(files: dict[str, Path] | None = None) -> bytes:
    """The service's root filesystem as a tar."""
    files = files if files is not None else rootfs_files()
    buf = io.BytesIO()
    dirs = {"bin", "sbin", "etc", "tmp", "run", "var", "var/lib", "var/lib/docker", "proc", "sys",
            "dev", "root", "usr", "usr/bin", "usr/sbin", "usr/local", "usr/local/bin"}
    for name in files:
        parent = Path(name).parent
        while str(parent) != ".":
            dirs.add(str(parent))
            parent = parent.parent
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in sorted(dirs):
            _add(tar, d, tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755)
        for name in sorted(files):
            src = files[name]
            mode = src.stat().st_mode & 0o7777
            _add(tar, name, tarfile.REGTYPE, mode, src.resolve().read_bytes())
        for link in IPTABLES_LINKS:
            _add(tar, f"usr/sbin/{link}", tarfile.SYMTYPE, 0o777, link="xtables-nft-multi")
        for applet in ("sh", "mount", "mkdir", "xargs", "sed", "sysctl", "cat", "ls", "ip", "wget"):
            _add(tar, f"usr/local/bin/{applet}", tarfile.SYMTYPE, 0o777, link="/bin/busybox")
        _add(tar, "bin/sh", tarfile.SYMTYPE, 0o777, link="busybox")
        _add(tar, "var/run", tarfile.SYMTYPE, 0o777, link="../run")
        _add(tar, "entrypoint.sh", tarfile.REGTYPE, 0o755, ENTRYPOINT.encode())
        _add(tar, "etc/passwd", tarfile.REGTYPE, 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        _add(tar, "etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\ndocker:x:999:\n")
    return buf.getvalue()


def image_ref() -> str:
    return f"{REPO}:{fingerprint()}"


def ensure_image(client: docker.DockerClient) -> str:
    """Build the service's image on ``client``'s daemon unless it is there; returns its name."""
    files = rootfs_files()
    ref = f"{REPO}:{fingerprint(files)}"
    if imagekit.have(client, ref):
        return ref
    started = time.monotonic()
    say(f"building the Docker-in-Docker image {ref} from the dind lane's dockerd {debian.version('dind', 'docker.io')} (once)")
    changes = ['ENTRYPOINT ["/entrypoint.sh"]', "ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               'VOLUME ["/var/lib/docker"]', f'LABEL {SERVICE_LABEL}="dind-image"']
    repo, tag = ref.split(":")
    client.api.import_image_from_data(rootfs_tar(files), repository=repo, tag=tag, changes=changes)
    imagekit.remove_older(client, REPO, ref)   # earlier builds (a Debian upgrade changed a binary)
    say(f"built {ref} in {time.monotonic() - started:.1f} s")
    return ref


# --- the service --------------------------------------------------------------------------------

def remove(client: docker.DockerClient, number: int = 0) -> None:
    """Remove the service's container (its tmpfs data root goes with it) and network."""
    name = slot(number)[0]
    for c in client.containers.list(all=True, filters={"label": f"{SERVICE_LABEL}={name}"}):
        with contextlib.suppress(NotFound):
            c.remove(force=True, v=True)
    for n in client.networks.list(filters={"label": f"{SERVICE_LABEL}={name}"}):
        with contextlib.suppress(NotFound):
            n.remove()


def start(client: docker.DockerClient, mirror: bool = True, timeout: float = 60, number: int = 0) -> str:
    """Start the service on ``client``'s daemon; returns the ``DOCKER_HOST`` that reaches it.

    With ``mirror=False`` the inner daemon has no registry mirror: like a class's daemon that
    nobody pointed at the course registry (used to test :func:`check_images`).
    """
    name, subnet, gateway, address = slot(number)
    ref = ensure_image(client)
    remove(client, number)
    labels = {SERVICE_LABEL: name}
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet, gateway=gateway)])
    client.networks.create(name, driver="bridge", ipam=ipam, labels=labels,
                           options={"com.docker.network.bridge.name": f"course-dind{number}"})
    # The low-level API: `--security-opt systempaths=unconfined` is the CLI's name for empty
    # MaskedPaths / ReadonlyPaths, which docker-py's high-level create has no argument for.
    host_config = client.api.create_host_config(
        # every capability the machine's root has: Docker 28 refuses to drop one the kernel's
        # bounding set lacks (SYS_RESOURCE here), and --privileged fails for the same reason
        cap_add=["ALL"],
        security_opt=["seccomp=unconfined", "apparmor=unconfined"],
        tmpfs={"/var/lib/docker": "rw,exec,dev,suid,size=4g"}, network_mode=name,
        cgroupns="private")   # its own cgroup root, as on a host: dockerd makes docker/<id> there
    host_config.update(MaskedPaths=[], ReadonlyPaths=[])
    created = client.api.create_container(
        ref, name=name, labels=labels, detach=True, host_config=host_config,
        # the Go runtime's settings of the course's own engine, for the same reason (GO_RUNTIME)
        environment={"COURSE_MIRROR": registry.front_address(gateway) if mirror else "", **GO_RUNTIME},
        networking_config=client.api.create_networking_config(
            {name: client.api.create_endpoint_config(ipv4_address=address)}))
    container = client.containers.get(created["Id"])
    container.start()
    host = f"tcp://{address}:{PORT}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.status != "running":
            break
        if procs.http_ok(f"http://{address}:{PORT}/_ping", timeout=0.5):
            return host
        time.sleep(0.05)
    logs = container.logs(tail=8).decode(errors="replace").strip().splitlines()
    remove(client, number)
    raise EngineError("The Docker-in-Docker service did not answer /_ping: " + " | ".join(logs))


# --- the whole pass, as ./course test runs it ---------------------------------------------------

def local_client() -> docker.DockerClient:
    """The daemon the service runs on: the one ``./course`` found (DOCKER_HOST), or the course's."""
    return connection.connect()


@contextlib.contextmanager
def service(mirror: bool = True, number: int = 0) -> Iterator[str]:
    """Service slot ``number`` for the length of a ``with`` block, one user at a time on this
    machine (a lock in ``.state/``), removed afterwards whatever happened. Yields its
    ``DOCKER_HOST``."""
    state = connection.STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    client = local_client()
    gateway = slot(number)[2]
    with open(state / f"dind-{number}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            host = start(client, mirror=mirror, number=number)
            if mirror:
                registry.ensure_front(state, sys.executable, gateway)
            yield host
        finally:
            remove(client, number)
            registry.stop_front(state, gateway)


def run_pass(pytest_args: list[str]) -> int:
    """Run pytest against the service, then check nothing of the run is left on it."""
    started = time.monotonic()
    with service() as host:
        say(f"Docker-in-Docker service up at {host} in {time.monotonic() - started:.1f} s; "
            "running the course against it")
        env = dict(os.environ, DOCKER_HOST=host, COURSE_PASS="dind")
        for key in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
            env.pop(key, None)
        rc = subprocess.run([sys.executable, "-m", "pytest", *pytest_args], env=env).returncode
        if rc == 0:
            left = subprocess.run([sys.executable, "-m", "tests.leftovers"], env=env,
                                  capture_output=True, text=True)
            if left.returncode != 0:
                say(f"leftovers on the Docker-in-Docker service after the run: {left.stdout.strip()}")
                rc = 1
    say(f"Docker-in-Docker pass: {'passed' if rc == 0 else 'FAILED'} in "
        f"{time.monotonic() - started:.1f} s; the service is removed")
    return rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursehost.dind",
                                     description="The course's Docker-in-Docker service.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pass", help="run pytest (the arguments after --) against a fresh service")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER)
    sub.add_parser("image", help="build the service's image (once) and print its name")
    sub.add_parser("remove", help="remove a service left by an interrupted pass")
    args = parser.parse_args(argv)
    try:
        if args.command == "pass":
            # ./course stops a pass with SIGTERM: leave through `finally`, removing the service
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
            extra = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
            return run_pass(extra)
        client = local_client()
        if args.command == "image":
            print(ensure_image(client))
        else:
            remove(client)
            registry.stop_front(connection.STATE_DIR, GATEWAY)
    except EngineError as err:
        say(str(err))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
