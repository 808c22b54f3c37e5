"""``./course class``: start, stop and look at a class on this machine (see coursehost.classroom).

``start`` makes sure the course's engine and registry run, builds the lab image and the seat
daemon's image (once each), installs JupyterHub's proxy from npm (pinned in versions.toml) into
``.state/class/``, starts the hub in the background and creates the teacher's account, whose
password it writes to ``.state/class/teacher-password`` (readable by root only). ``stop`` stops
the hub, which stops every seat, then removes whatever of the class is still on the daemon.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import classroom, debian, dind, engine, labimage, procs, registry
from helpers import connection
from helpers.errors import EngineError

ROOT = Path(__file__).resolve().parent.parent


def say(msg: str) -> None:
    print(f"[course] {msg}", file=sys.stderr, flush=True)


def state() -> Path:
    return connection.STATE_DIR / "class"


def proxy_version() -> str:
    return debian.versions()["npm"]["configurable-http-proxy"][1]


def ensure_proxy() -> Path:
    """configurable-http-proxy from npm, at the pinned version, in ``.state/class/proxy``."""
    folder = state() / "proxy"
    program = folder / "node_modules" / ".bin" / "configurable-http-proxy"
    version_file = folder / "node_modules" / "configurable-http-proxy" / "package.json"
    want = proxy_version()
    if program.exists() and f'"version": "{want}"' in version_file.read_text():
        return program
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise EngineError("JupyterHub's proxy is configurable-http-proxy, a Node.js program: install Node.js "
                          "and npm (apt-get install nodejs npm) and run ./course class again.")
    say(f"installing configurable-http-proxy {want} from npm into {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund", "--silent",
                           f"configurable-http-proxy@{want}"], capture_output=True, text=True)
    if done.returncode != 0 or not program.exists():
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise EngineError(f"npm could not install configurable-http-proxy {want}: {last}")
    return program


def url(listen: str, port: int) -> str:
    return f"http://{listen}:{port}"


def hub_running() -> int | None:
    return procs.read_pid(state() / "hub.pid")


def start(listen: str = "127.0.0.1", port: int = 8000) -> str:
    """Bring the class up (each step only if needed); returns the hub's URL."""
    ipaddress.ip_address(listen)   # a ValueError is turned into one sentence by main()
    if listen in ("0.0.0.0", "::"):
        raise EngineError("The class listens on one address, never on all of them: pass --listen with the "
                          "address of this machine your learners reach (its LAN address).")
    client, _ = engine.ensure()
    folder = state()
    folder.mkdir(parents=True, exist_ok=True)
    klass = classroom.class_id(connection.STATE_DIR)
    if hub_running():
        say(f"the class is already running at {url(listen, port)}")
        return url(listen, port)
    classroom.ensure_class_network(client, klass)
    registry.ensure_front(connection.STATE_DIR, sys.executable, classroom.CLASS_GATEWAY)
    daemon_image = dind.ensure_image(client)
    lab_image = labimage.ensure_image(client, say=say)
    proxy = ensure_proxy()
    env = dict(os.environ, COURSE_CLASS_STATE=str(folder), COURSE_CLASS_ID=klass, COURSE_CLASS_IP=listen,
               COURSE_CLASS_PORT=str(port), COURSE_CLASS_PROXY=str(proxy), COURSE_LAB_IMAGE=lab_image,
               COURSE_DAEMON_IMAGE=daemon_image,
               COURSE_CLASS_CODE=secret("class-code", lambda: secrets.token_hex(4)),
               COURSE_TEACHER_PASSWORD=secret("teacher-password", lambda: secrets.token_urlsafe(32)),
               COURSE_PRIVILEGED="1" if classroom.may_run_privileged() else "0",
               DOCKER_HOST=f"unix://{engine.socket_path()}", PYTHONPATH=str(ROOT))
    log = folder / "hub.log"
    log.unlink(missing_ok=True)
    say(f"starting JupyterHub on {url(listen, port)} (log: {log})")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(ROOT / "coursehost" / "hub_config.py")],
                            cwd=folder, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    (folder / "hub.pid").write_text(f"{proc.pid}\n")
    procs.wait_until(lambda: procs.http_ok(f"{url(listen, port)}/hub/health"), "JupyterHub", log,
                     timeout=90, proc=proc)
    return url(listen, port)


def secret(name: str, make) -> str:
    """The class's secret ``name`` (``class-code``, ``teacher-password``), made once and kept in
    ``.state/class/`` readable by root only."""
    path = state() / name
    if not path.exists():
        path.write_text(make() + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def publish() -> dict[str, str]:
    """Push the lab image and the seat daemon's image to the course registry as ``course/lab`` and
    ``course/dind`` (for Zero to JupyterHub: deploy/jupyterhub/values.yaml); returns their tags."""
    client, _ = engine.ensure()
    tags = {}
    for image, repo in ((labimage.ensure_image(client, say=say), "course/lab"), (dind.ensure_image(client), "course/dind")):
        tag = image.split(":", 1)[1]
        target = f"{registry.store_address()}/{repo}"
        client.images.get(image).tag(target, tag)
        say(f"pushing {image} to the course registry as {repo}:{tag}")
        for line in client.images.push(target, tag=tag, stream=True, decode=True):
            if "error" in line:
                raise EngineError(f"Pushing {repo}:{tag} to the course registry failed: {line['error']}")
        client.images.remove(f"{target}:{tag}")
        tags[repo] = tag
    return tags


def stop() -> None:
    """Stop the hub (it stops every seat) and remove what is left of the class."""
    pid = hub_running()
    if pid is not None:
        # the idle culler first: the hub stops its services with SIGINT and waits up to 20 s for
        # each, and the culler, busy asking the hub that is going away, took 31 s to go (seen
        # under load); SIGTERM ends it at once, and the hub then finds it gone
        for child, argv in procs.command_lines().items():
            if "jupyterhub_idle_culler" in argv and procs.parent_pid(child) == pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGTERM)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 120
        while procs.pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        say("stopped JupyterHub")
    (state() / "hub.pid").unlink(missing_ok=True)
    client = connection.connect()
    klass = classroom.class_id(connection.STATE_DIR)
    classroom.remove_all(client, klass)
    registry.stop_front(connection.STATE_DIR, classroom.CLASS_GATEWAY)
    for name in ("class-code", "teacher-password", "jupyterhub.sqlite"):
        (state() / name).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./course class", description="A class on this machine: JupyterHub "
                                     "with a lab and a Docker daemon per learner.")
    parser.add_argument("action", nargs="?", default="run", choices=["run", "start", "stop", "status", "publish"],
                        help="run (default): start, wait for Ctrl-C, stop; start/stop: in the background; "
                             "publish: push the lab and daemon images to the course registry (Kubernetes)")
    parser.add_argument("--listen", default="127.0.0.1",
                        help="the address learners reach the hub at (default 127.0.0.1; a LAN address "
                             "exposes the hub's sign-up page to everyone on that network)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        if args.action == "stop":
            stop()
            return 0
        if args.action == "publish":
            for repo, tag in publish().items():
                print(f"{repo}:{tag}")
            return 0
        if args.action == "status":
            pid = hub_running()
            print(f"hub      {'running' if pid else 'stopped'}")
            if pid:
                client = connection.connect()
                klass = classroom.class_id(connection.STATE_DIR)
                seats = {c.labels.get(classroom.SEAT_LABEL) for c in client.containers.list(
                    filters={"label": f"{classroom.CLASS_LABEL}={klass}"})} - {None}
                print(f"seats    {len(seats)}: {', '.join(sorted(seats)) or '-'}")
            return 0
        if args.listen not in ("127.0.0.1", "::1", "localhost"):
            say(f"warning: the hub listens on {args.listen}: everyone who reaches that address and knows the class "
                "code gets a Docker daemon of their own on this machine.")
        base = start("127.0.0.1" if args.listen == "localhost" else args.listen, args.port)
        say(f"the class is open at {base} — learners sign in with a name of their choosing and the class "
            f"code {secret('class-code', str)}; the teacher signs in as 'teacher' with the password in "
            f"{state() / 'teacher-password'} (admin page: {base}/hub/admin)")
        if args.action == "run":
            say("Ctrl-C stops the class and removes every seat")
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
            stop()
    except ValueError:
        say(f"--listen wants an IP address of this machine, not {args.listen!r}.")
        return 2
    except EngineError as err:
        say(str(err))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
