"""The faults of a real class — the daemon restarted mid-notebook, a container removed under a
notebook, the registry down — each show the learner one clear sentence, and the next run passes.

The shared course engine and registry are never stopped: the daemon and registry faults use a
private dockerd (own socket, data root, exec root and pid file; no bridge, no iptables, so it
never touches the course engine's docker0) and a private registry on other ports. Notebook cells
run in real Jupyter kernels, so what is checked is what the learner sees.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from coursehost import imagekit, procs
from coursehost.engine import GO_RUNTIME
from helpers.errors import DaemonNotAnswering, DaemonNotFound, ImageNotAvailable, NotFound, explain

ROOT = Path(__file__).resolve().parent.parent
def _engine_lane_path() -> str | None:
    """PATH with the engine lane's programs first (dockerd, containerd, runc), or None where the
    lane cannot be had (no apt here)."""
    from coursehost import debian
    try:
        return debian.path_with("engine") if debian.fetch("engine") else None
    except debian.AptFailed:
        return None


ENGINE_PATH = _engine_lane_path() if os.geteuid() == 0 else None
pytestmark = pytest.mark.skipif(ENGINE_PATH is None or not all(shutil.which(c) for c in ("unshare", "nsenter")),
                                reason="a private dockerd needs root, the engine lane of versions.toml "
                                       "(coursehost/debian.py) and util-linux")


def free_port_pair() -> int:
    """A port P with P and P+1 both free on loopback (a registry's front and store)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free pair of ports")


class PrivateDaemon:
    """A dockerd of our own that can be stopped and started without disturbing anyone."""

    def __init__(self, folder: Path, mirror_port: int) -> None:
        self.folder, self.mirror_port = folder, mirror_port
        self.socket = folder / "d.sock"
        self.host = f"unix://{self.socket}"
        self.exec_root = Path("/run") / f"dcf-{secrets.token_hex(3)}"
        self.pidfile = folder / "d.pid"
        self.proc: subprocess.Popen | None = None

    def start(self) -> docker.DockerClient:
        dockerd = ["dockerd", "--host", self.host, "--data-root", str(self.folder / "data"),
                   "--exec-root", str(self.exec_root), "--pidfile", str(self.pidfile),
                   "--bridge", "none", "--iptables=false", "--ip-masq=false",
                   "--registry-mirror", f"http://127.0.0.1:{self.mirror_port}"]
        # In a network namespace of its own: dockerd --bridge none deletes any link named docker0
        # it can see, and on the host that is the course engine's. Here it sees only its own lo.
        self.proc = procs.spawn(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *dockerd],
                                self.folder / "dockerd.log",
                                env={**os.environ, **GO_RUNTIME, "PATH": ENGINE_PATH})  # as the course's
        procs.wait_until(self.answers, "the private dockerd", self.folder / "dockerd.log", timeout=60, proc=self.proc)
        return self.client()

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, timeout=30)

    def answers(self) -> bool:
        try:
            return self.socket.exists() and self.client().ping()
        except (docker.errors.DockerException, OSError):
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def private() -> Iterator[PrivateDaemon]:
    if os.environ.get("COURSE_PASS") == "dind":
        pytest.skip("the private daemon does not depend on the pass's daemon: run once, in the main pass")
    folder = Path(tempfile.mkdtemp(prefix="course-faults-"))
    daemon = PrivateDaemon(folder, free_port_pair())
    try:
        client = daemon.start()
        client.api.import_image_from_data(imagekit.rootfs_tar(), repository=imagekit.BASE_REPO,
                                          tag=imagekit.BASE_TAG, changes=['CMD ["sh"]', "ENV PATH=/bin"])
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(daemon.exec_root, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


class Kernel:
    """A Jupyter kernel running cells as a notebook does (cwd notebooks/, DOCKER_HOST as given)."""

    def __init__(self, docker_host: str | None = None) -> None:
        from bench.learner import start_ipc_kernel

        env = dict(os.environ)
        if docker_host:
            env["DOCKER_HOST"] = docker_host
        self.km, self.kc = start_ipc_kernel(str(ROOT / "notebooks"), env)

    def cell(self, code: str) -> dict:
        """Run one cell: its status, its stdout, and its error output (ename, evalue) if any."""
        out: list[str] = []
        errors: list[tuple[str, str]] = []

        def hook(msg: dict) -> None:
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                errors.append((msg["content"]["ename"], msg["content"]["evalue"]))

        reply = self.kc.execute_interactive(code, timeout=120, output_hook=hook)
        return {"status": reply["content"]["status"], "stdout": "".join(out), "errors": errors}

    def kill(self) -> None:
        """As when a tab is closed on a stuck kernel, or it crashes: no clean-up runs."""
        os.kill(self.km.provisioner.pid, signal.SIGKILL)
        self.km.provisioner.process.wait(timeout=30)
        self.close()

    def close(self) -> None:
        from bench.learner import stop_ipc_kernel

        stop_ipc_kernel(self.km, self.kc)


SETUP = ("from helpers import BASE_IMAGE, Run, connect\n"
         "client = connect()\nrun = Run(client, 'faults')\n")
START = ("c = client.containers.run(BASE_IMAGE, ['sleep', '600'], name=run.name('c'), labels=run.labels, "
         "detach=True)\nc.reload()\nprint(c.status)")


def one_sentence(errors: list[tuple[str, str]], ename: str) -> str:
    assert len(errors) == 1, errors
    name, value = errors[0]
    assert name == ename, errors
    assert "\n" not in value and ": " in value and len(value) < 300, value
    return value


def managed_objects(client: docker.DockerClient) -> list[str]:
    label = {"label": "org.dockercourse.managed"}
    return ([c.name for c in client.containers.list(all=True, filters=label)]
            + [n.name for n in client.networks.list(filters=label)]
            + [t for i in client.images.list() for t in i.tags if t.startswith("dc-")])


# --- the daemon restarted mid-run ----------------------------------------------------------------

def test_daemon_restarted_mid_run(private):
    kernel = Kernel(private.host)
    try:
        assert kernel.cell(SETUP + START)["status"] == "ok"
        private.stop()                                            # the daemon goes away mid-notebook
        done = kernel.cell("containers = client.containers.list()")
        assert done["status"] == "error"
        text = one_sentence(done["errors"], "DaemonNotFound")
        assert "stopped answering" in text and "Setup cell" in text
        private.start()                                           # back (a restart)
    finally:
        kernel.kill()                                             # the learner gives up on that kernel
    again = Kernel(private.host)                                  # the next run passes
    try:
        done = again.cell(SETUP + START + "\nprint(run.cleanup())")
        assert done["status"] == "ok" and done["stdout"].startswith("running"), done
    finally:
        again.close()
    assert managed_objects(private.client()) == []                # the first run's objects were reaped


def test_explain_a_dead_daemon(private):
    """The translation itself, on the real exception docker-py raises for a socket nobody serves."""
    url = f"unix://{private.folder / 'nobody.sock'}"
    with pytest.raises(docker.errors.DockerException) as err:   # connecting: the version handshake fails
        docker.DockerClient(base_url=url, timeout=5)
    assert isinstance(explain(err.value), DaemonNotFound)
    gone = docker.DockerClient(base_url=url, version="1.41", timeout=5)
    with pytest.raises(Exception) as err:                        # later calls: requests' ConnectionError
        gone.containers.list()
    assert isinstance(explain(err.value), DaemonNotFound)


# --- the daemon takes a call and never answers -----------------------------------------------------

class SilentDaemon:
    """A unix socket that answers ``/_ping`` and ``/version`` (so ``connect()`` finds a daemon)
    and then takes every other call without ever answering: what learners saw when dockerd 20.10
    held a container stuck "pausing" and every call waited on its lock."""

    def __init__(self, folder: Path) -> None:
        import socketserver
        import threading

        self.path = folder / "silent.sock"
        self.release = threading.Event()
        release = self.release

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while True:
                    request = self.rfile.readline().decode()
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    if "/_ping" in request or "/version" in request:
                        body = b"OK" if "/_ping" in request else b'{"ApiVersion": "1.41", "Version": "20.10"}'
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                        continue
                    release.wait(60)  # the stuck call: no answer until the test is over
                    return

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(str(self.path), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def test_a_daemon_that_never_answers_says_so_in_one_sentence(tmp_path):
    silent = SilentDaemon(tmp_path)
    kernel = Kernel(f"unix://{silent.path}")
    try:
        done = kernel.cell("import helpers.connection\nhelpers.connection.CALL_TIMEOUT = 1\n"
                           "from helpers import connect\nclient = connect()\nprint(client.api.timeout)")
        assert done["status"] == "ok" and done["stdout"].strip() == "1", done
        done = kernel.cell("client.containers.list()")
        text = one_sentence(done["errors"], "DaemonNotAnswering")
        assert text.startswith("The Docker daemon took the call but did not answer within 1 s")
        assert "./course engine stop" in text and "Setup cell" in text
    finally:
        kernel.close()
        silent.close()


# --- a container removed under a notebook ---------------------------------------------------------

def test_container_removed_under_a_notebook(client):
    kernel = Kernel()                                             # the shared course engine
    try:
        done = kernel.cell(SETUP + START + "\nprint(c.name)")
        assert done["status"] == "ok", done
        name = done["stdout"].split()[-1]
        client.containers.get(name).remove(force=True)            # another tab, docker rm, ./course clean
        done = kernel.cell("c.reload()")
        text = one_sentence(done["errors"], "NotFound")
        assert "no longer exists" in text and "run the cell that creates it again" in text
        done = kernel.cell("c = client.containers.get(run.name('c'))")
        assert "no longer exists" in one_sentence(done["errors"], "NotFound")
        done = kernel.cell(START + "\nprint(run.cleanup())")       # re-running the cell passes
        assert done["status"] == "ok" and done["stdout"].startswith("running"), done
        assert "'containers': 1" in done["stdout"]
    finally:
        kernel.close()


def test_other_errors_are_left_as_docker_raises_them(client):
    """Only the known faults are translated: a learner's own mistake keeps docker's message."""
    kernel = Kernel()
    try:
        done = kernel.cell(SETUP + "client.containers.run(BASE_IMAGE, ['no-such-command'], remove=True, "
                                   "name=run.name('bad'), labels=run.labels)")
        assert done["status"] == "error" and done["errors"][0][0] in ("ContainerError", "APIError"), done
        done = kernel.cell("1 / 0")
        assert done["errors"][0][0] == "ZeroDivisionError"
        # a start that fails leaves the created container (remove=True never gets its turn): clean-up takes it
        done = kernel.cell("print(run.cleanup()['containers'])")
        assert done["stdout"].strip() == "1", done
    finally:
        kernel.close()


# --- the registry down ----------------------------------------------------------------------------

def registry_command(daemon: PrivateDaemon, state: Path, code: str) -> None:
    """Run ``code`` in the private daemon's network namespace, where its mirror's port is."""
    env = dict(os.environ, COURSE_REGISTRY_PORT=str(daemon.mirror_port), PYTHONPATH=str(ROOT))
    netns = f"--net=/proc/{daemon.proc.pid}/ns/net"
    done = subprocess.run(["nsenter", netns, sys.executable, "-c", code], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_registry_down(private):
    """The private daemon's mirror is a registry that is not running: a pull fails with one
    sentence; once the registry runs (with the base image pushed), the same pull passes."""
    private.start() if not private.answers() else None
    kernel = Kernel(private.host)
    try:
        done = kernel.cell(SETUP + "image = client.images.pull('busybox', tag='1.35')")
        text = one_sentence(done["errors"], "ImageNotAvailable")
        assert text.startswith("busybox:1.35 cannot be pulled") and "./course engine start" in text
    finally:
        kernel.close()

    state = private.folder / "state"
    try:
        registry_command(private, state, (
            "import sys, docker\nfrom pathlib import Path\nfrom coursehost import registry, imagekit\n"
            f"registry.ensure_running(Path({str(state)!r}), sys.executable)\n"
            f"imagekit.publish(docker.DockerClient(base_url={private.host!r}), registry.store_address(),"
            f" Path({str(state)!r}) / 'registry' / 'catalogue.json')\n"))
        again = Kernel(private.host)
        try:
            done = again.cell(SETUP + "image = client.images.pull('busybox', tag='1.35')\nprint(image.tags)")
            assert done["status"] == "ok" and "busybox:1.35" in done["stdout"], done
        finally:
            again.close()
    finally:
        for name in ("front", "store"):  # they run in the namespace; their pids are ordinary pids
            procs.stop(state / "registry" / f"{name}.pid")


def test_an_image_in_no_registry_is_not_called_a_registry_fault(client, run):
    """With the course registry up, a pull of a name no registry has says so, not 'registry down'."""
    with pytest.raises(docker.errors.APIError) as err:
        client.images.pull(run.name("nowhere"), tag="v1")
    text = str(explain(err.value, client))
    assert text.startswith(f"{run.name('nowhere')}:v1 is neither on this daemon nor in the course registry")


def test_explain_leaves_unknown_errors_alone():
    assert explain(ValueError("x")) is None
    assert explain(docker.errors.APIError("409 Conflict")) is None
    assert isinstance(explain(docker.errors.NotFound("No such container: dc-abc123-web")), NotFound)
    frozen = explain(docker.errors.APIError("500 Server Error: Cannot pause container 2f10: OCI runtime pause "
                                            "failed: unable to freeze: unknown"))
    assert "did not freeze" in str(frozen) and "run the cell again" in str(frozen)
    import requests.exceptions
    assert isinstance(explain(requests.exceptions.ReadTimeout("Read timed out.")), DaemonNotAnswering)
    assert "in time" in str(explain(requests.exceptions.ReadTimeout("Read timed out.")))
    assert ImageNotAvailable  # the registry fault's class, checked end to end above
