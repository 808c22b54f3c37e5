"""Background services of the course (dockerd, the registry): start, find, stop by pid file.

Each service writes its pid file and log into the state folder, runs in its own session so
that Ctrl-C in a terminal does not stop it, and is stopped by ``./course engine stop``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from helpers.errors import EngineError
from helpers.reaper import pid_alive  # noqa: F401 (one definition, used here and by the reaper)


def command_lines(proc: Path = Path("/proc")) -> dict[int, list[str]]:
    """Every process's command line (``/proc/PID/cmdline``) by pid; processes that end meanwhile,
    or whose command line is not ours to read, are left out."""
    found = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        found[int(entry.name)] = [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]
    return found


def parent_pid(pid: int, proc: Path = Path("/proc")) -> int | None:
    """The parent of process ``pid`` (``/proc/PID/stat``'s fourth field), or None if it is gone."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def read_pid(pidfile: Path) -> int | None:
    """The pid in ``pidfile`` if that process is alive, else None."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def spawn(argv: Sequence[str], log: Path, pidfile: Path | None = None,
          env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``argv`` in the background, detached from this terminal, logging to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    if pidfile is not None:
        pidfile.write_text(f"{proc.pid}\n")
    return proc


def wait_until(ready: Callable[[], bool], what: str, log: Path, timeout: float = 30.0,
               proc: subprocess.Popen | None = None) -> None:
    """Poll ``ready`` (cheap, about 20 times a second) until it is true; fail with the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    tail = log.read_text(errors="replace").splitlines()[-8:] if log.exists() else []
    raise EngineError(f"{what} did not become ready (see {log}): " + " | ".join(tail))


def http_ok(url: str, timeout: float = 1.0, headers: dict[str, str] | None = None) -> bool:
    """Whether ``url`` answers 2xx (connection refused, 404 and time-outs are all False)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except OSError:
        return False


def stop(pidfile: Path, timeout: float = 20.0) -> bool:
    """SIGTERM the process in ``pidfile``, wait for it to go (SIGKILL after ``timeout``)."""
    pid = read_pid(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    return True
