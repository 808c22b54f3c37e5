"""The Debian packages behind the course's own engine and registry, and installing them with apt.

Standard library only, and no imports from the rest of ``helpers``: ``./course`` runs this file
with the system ``python3`` (``python3 helpers/debian.py prefetch``) *while* the virtualenv is
being made, so that a fresh machine's two slow installs overlap. The engine step installs
whatever is still missing afterwards, and reports what went wrong, so the prefetch stays silent.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

#: command -> the Debian package that provides it
PACKAGES = {"dockerd": "docker.io", "iptables": "iptables", "docker-registry": "docker-registry"}
#: the course's base image is made of this binary (Debian's busybox-static)
BUSYBOX = Path("/bin/busybox")


class AptFailed(RuntimeError):
    """The packages could not be installed: no apt-get here, or apt-get failed (its last line of
    stderr says why)."""


def missing(commands: dict[str, str] = PACKAGES) -> list[str]:
    """The packages to install: those whose command is nowhere, and busybox-static."""
    found = [pkg for cmd, pkg in commands.items()
             if shutil.which(cmd) is None and not Path("/usr/sbin", cmd).exists()]
    if not BUSYBOX.exists():
        found.append("busybox-static")
    return found


def apt_install(packages: list[str]) -> None:
    """``apt-get update`` then ``apt-get install -y`` the packages, quietly; AptFailed says why not."""
    if shutil.which("apt-get") is None:
        raise AptFailed(f"{', '.join(packages)} missing and this is not a Debian-like system (no apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise AptFailed(f"`{' '.join(argv)}` failed: {last}")


def install_missing(commands: dict[str, str] = PACKAGES, why: str = "") -> None:
    """Install the packages :func:`missing` names, saying so on stderr; AptFailed says why not."""
    need = missing(commands)
    if need:
        print(f"[course] installing Debian packages{why}: {' '.join(need)}", file=sys.stderr, flush=True)
        apt_install(need)


def engine_will_be_needed() -> bool:
    """Whether ``./course`` is about to start its own engine here: Linux, root, apt, and no sign
    of another daemon (DOCKER_HOST, a docker context, a default socket). A daemon that is there is
    used as it is, so nothing is installed for it."""
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    if os.environ.get("DOCKER_HOST") or os.environ.get("DOCKER_CONTEXT"):
        return False
    config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        if json.loads(config.read_text()).get("currentContext") not in (None, "", "default"):
            return False
    except (OSError, ValueError, AttributeError):
        pass
    sock = Path("/var/run/docker.sock")
    if sock.is_socket():
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            try:
                s.connect(str(sock))
                return False  # something listens there: the engine step will ask it
            except OSError:
                pass
    return True


def prefetch() -> int:
    """Install the engine's packages now if it will need them; silent, always 0 (see above)."""
    try:
        if missing() and engine_will_be_needed():
            install_missing(why=" alongside the virtualenv")
    except Exception:  # noqa: BLE001 — the engine step tries again and says what is wrong
        pass
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["prefetch"]:
        sys.exit("usage: python3 helpers/debian.py prefetch")
    sys.exit(prefetch())
