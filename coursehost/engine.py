"""The course's own Docker engine, for a Linux machine where no daemon answers and we are root.

Started the way a CI ``docker:dind`` service would be: Debian's ``dockerd`` on its own socket,
data root and pid file inside the checkout's ignored ``.state/`` folder (so it never touches
another daemon's state), pointed at the course registry as its Docker Hub mirror, ready when
``/_ping`` answers. ``./course engine stop`` stops it and the registry.

When any daemon already answers (``DOCKER_HOST``, a docker context, the default socket), the
course uses that one and never changes its configuration.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from pathlib import Path

import docker
from docker.errors import DockerException

from . import debian, imagekit, procs, registry
from helpers import connection
from helpers.errors import DaemonNotFound, EngineError


def say(msg: str) -> None:
    print(f"[course] {msg}", file=sys.stderr, flush=True)


def state_dir() -> Path:
    return connection.STATE_DIR


def socket_path() -> Path:
    return state_dir() / "docker.sock"


#: What names a course engine's run-time folder (``exec_root``): one per checkout.
EXEC_ROOT_PREFIX = "/run/docker-course-"


def exec_root() -> Path:
    """dockerd's run-time folder: short (containerd's socket paths have a length limit) and
    unique to this checkout."""
    digest = hashlib.sha256(str(state_dir()).encode()).hexdigest()[:8]
    return Path(f"{EXEC_ROOT_PREFIX}{digest}")


def other_engines(proc: Path = Path("/proc")) -> list[Path]:
    """The state folders of the course engines running on this machine other than this checkout's.

    Found by their dockerd's command line (``--exec-root /run/docker-course-…``). Two such
    engines would share the machine's ``docker0`` bridge, its iptables chains and the course
    registry's ports, and stopping one would take the registry from under the other.
    """
    found = []
    for argv in procs.command_lines(proc).values():
        if not argv or Path(argv[0]).name != "dockerd" or "--exec-root" not in argv[:-1]:
            continue
        root = argv[argv.index("--exec-root") + 1]
        if root.startswith(EXEC_ROOT_PREFIX) and root != str(exec_root()) and "--data-root" in argv[:-1]:
            found.append(Path(argv[argv.index("--data-root") + 1]).parent)  # STATE/docker
    return sorted(set(found))


def install_packages() -> None:
    """Fetch the engine and registry lanes of ``versions.toml`` into ``.state/debian/`` (apt, no
    install: coursehost/debian.py); quick when they are there."""
    try:
        for lane in ("engine", "registry"):
            if not (debian.lane_dir(lane) / ".complete").exists():
                say(f"fetching the {lane} lane's Debian packages (versions.toml) into .state/debian/ (about 10 s)")
            debian.fetch(lane)
    except debian.AptFailed as err:
        raise EngineError(f"{err}.") from None


def outdated(proc: Path = Path("/proc")) -> bool:
    """Whether the running engine's dockerd, or the registry's store, is not the one
    ``versions.toml`` names now (its lane folder changed): both are then restarted on the new
    binaries, before the old folder is pruned from under them."""
    for pidfile, lane in ((state_dir() / "docker.pid", "engine"), (state_dir() / "registry" / "store.pid", "registry")):
        pid = procs.read_pid(pidfile)
        if pid is None:
            continue
        try:
            exe = Path(os.readlink(proc / str(pid) / "exe"))
        except OSError:
            continue
        if debian.lane_dir(lane) not in exe.parents:
            return True
    return False


def running_client() -> docker.DockerClient | None:
    """A client for the course's engine if it is up."""
    if procs.read_pid(state_dir() / "docker.pid") is None or not socket_path().exists():
        return None
    try:
        client = docker.DockerClient(base_url=f"unix://{socket_path()}", timeout=60)
        client.ping()
        return client
    except DockerException:
        return None


#: A loopback port where nothing listens (discard): the proxy of an engine that stays offline.
DEAD_PROXY = "http://127.0.0.1:9"


def offline_env() -> dict[str, str]:
    """dockerd's environment: offline by construction unless ``COURSE_ALLOW_HUB=1``.

    With a mirror, dockerd still falls back to Docker Hub for what the mirror lacks (a mistyped
    tag, say). Sending everything but local addresses through a proxy on a dead loopback port
    makes that fallback fail at once, on this machine: no DNS query, no packet leaves.
    """
    env = dict(os.environ)
    if env.get("COURSE_ALLOW_HUB") == "1":
        return env
    local = "127.0.0.0/8,localhost,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"
    env.update(HTTP_PROXY=DEAD_PROXY, HTTPS_PROXY=DEAD_PROXY, NO_PROXY=local,
               http_proxy=DEAD_PROXY, https_proxy=DEAD_PROXY, no_proxy=local)
    return env


#: The Go runtime's settings for the engine and all it starts. dockerd, containerd, every shim and
#: runc are Go programs, and every container start re-executes the 70 MB dockerd binary twice
#: (libnetwork's ``set-ipv6`` and ``libnetwork-setkey`` hook), each re-exec a fresh Go runtime that
#: garbage-collects several times while it initialises. With the collector paced by a memory
#: limit instead of by heap growth (the Go GC guide's ``GOGC=off`` + ``GOMEMLIMIT``), those
#: short programs never collect, and the engine's processes collect only as they near the limit.
#: Children inherit the environment, runc's hooks included.
GO_RUNTIME = {"GOGC": "off", "GOMEMLIMIT": "768MiB"}


def start_dockerd() -> docker.DockerClient:
    state = state_dir()
    log = state / "dockerd.log"
    argv = [str(debian.program("engine", "dockerd")), "--debug",
            "--host", f"unix://{socket_path()}",
            "--data-root", str(state / "docker"),
            "--exec-root", str(exec_root()),
            "--pidfile", str(state / "docker.pid"),
            # the containerd image store, as a new Docker Desktop and a fresh Engine 29 use
            # (docs.docker.com/engine/storage/containerd/)
            "--feature", "containerd-snapshotter=true",
            # room for a class: Docker's default pools hold 31 networks, so 30 learners making
            # a network or two each ran out ("could not find an available, non-overlapping IPv4
            # address pool"); /24s of 172.20.0.0/14 are 1,024 networks
            "--default-address-pool", "base=172.20.0.0/14,size=24",
            "--registry-mirror", f"http://{registry.front_address()}"]
    say(f"starting the course's Docker engine (log: {log})")
    log.unlink(missing_ok=True)  # one log per start: it shows what this engine did, nothing older
    env = {**offline_env(), **GO_RUNTIME}
    env["PATH"] = debian.path_with("engine", env.get("PATH"))  # containerd, runc, iptables of the lane
    proc = procs.spawn(argv, log, env=env)
    procs.wait_until(lambda: running_client() is not None, "the course's Docker engine", log,
                     timeout=60, proc=proc)
    client = running_client()
    assert client is not None
    return client


def ensure_images(client: docker.DockerClient) -> None:
    """Put the base image, and the registry image notebook 08 runs, into the course registry
    unless they are there already."""
    from . import registry_image
    registry_image.ensure(registry.store_address())
    if registry.has_tag("library/" + imagekit.BASE_REPO, imagekit.BASE_TAG):
        return
    say(f"building {imagekit.BASE_IMAGE} from Debian's busybox-static and pushing it to the course registry")
    # the reproducible image (coursehost/offline.py): the same digest as a class's registry serves
    from . import offline
    offline.publish(registry.store_address(), state_dir() / "registry" / "catalogue.json")


def start() -> docker.DockerClient:
    """Install what is missing, then start the registry and the engine (each only if needed)."""
    if platform.system() != "Linux" or os.geteuid() != 0:
        raise EngineError("The course's own engine needs Linux and root: start Docker yourself "
                          "(Docker Desktop, or your distribution's docker) and run this again.")
    state_dir().mkdir(parents=True, exist_ok=True)
    install_packages()
    if outdated():
        say("versions.toml names another engine than the one running: restarting it on the new one")
        stop()
    client = running_client()
    if client is None:
        others = other_engines()
        if others:
            other = others[0].parent if others[0].name == ".state" else others[0]
            raise EngineError(f"The course's engine of another checkout ({other}) is running, and two would share "
                              f"docker0 and the registry: stop it first (./course engine stop in {other}), or "
                              f"set DOCKER_HOST=unix://{others[0]}/docker.sock to use it.")
    registry.ensure_running(state_dir(), sys.executable)
    client = client or start_dockerd()
    ensure_images(client)
    debian.prune()
    return client


def stop() -> None:
    """Stop the course's engine and registry (their data stays in .state/ for next time)."""
    if procs.stop(state_dir() / "docker.pid", timeout=30):
        say("stopped the course's Docker engine")
    registry.stop(state_dir())
    socket_path().unlink(missing_ok=True)


def ensure() -> tuple[docker.DockerClient, str]:
    """A daemon for the course: an answering one as it is, else the course's own engine.

    Returns the client and the ``DOCKER_HOST`` value that reaches it.
    """
    found = connection.find_daemon()
    if found is not None:
        client, ep = found
        if ep.source != "the course's own engine":
            say(f"using the Docker daemon at {ep.source} as it is (its configuration is not changed)")
            return client, os.environ.get("DOCKER_HOST") or ep.base_url or ""
    try:
        client = start()
    except EngineError:
        if found is None and (platform.system() != "Linux" or os.geteuid() != 0):
            raise DaemonNotFound(connection.no_daemon_advice()) from None
        raise
    say("using the course's own Docker engine")
    return client, f"unix://{socket_path()}"


def status() -> dict[str, str]:
    state = state_dir()
    return {
        "engine": "running" if running_client() else "stopped",
        "socket": str(socket_path()),
        "registry store": "running" if procs.http_ok(f"http://{registry.store_address()}/v2/") else "stopped",
        "registry front": "running" if procs.http_ok(f"http://{registry.front_address()}/_ping") else "stopped",
        "base image in registry": str(registry.has_tag("library/" + imagekit.BASE_REPO, imagekit.BASE_TAG)),
        "log": str(state / "dockerd.log"),
    }
