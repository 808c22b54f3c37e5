"""How the course finds and uses a daemon that is not a local socket: DOCKER_HOST (with TLS),
docker contexts, Binder's missing daemon, the Docker-in-Docker service of ./course test, and
check_images() for a class's daemon that cannot reach any registry."""

from __future__ import annotations

import os
import subprocess
import io
import tarfile

import docker
import pytest

from coursehost import debian, dind, registry
from helpers import check_images, connection
from helpers.connection import connect, daemon_host
from helpers.errors import DaemonNotFound, EngineError, ImageNotAvailable

pytestmark = pytest.mark.skipif(
    os.environ.get("COURSE_PASS") == "dind",
    reason="tests of the local machine's setup: the local pass ran them")


#: The daemon ./course found (read before any test changes the environment).
LOCAL_DOCKER_HOST = os.environ.get("DOCKER_HOST", "")
COURSE_SOCKET = connection.COURSE_SOCKET


@pytest.fixture
def nowhere(monkeypatch, tmp_path):
    """No DOCKER_HOST, no context, no default socket, no course engine: no daemon anywhere."""
    for var in ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setattr(connection, "DEFAULT_SOCKET", f"unix://{tmp_path}/none.sock")
    monkeypatch.setattr(connection, "COURSE_SOCKET", f"unix://{tmp_path}/course.sock")
    return tmp_path


# --- Binder ---------------------------------------------------------------------------------------

def test_binder_without_daemon_says_one_sentence(nowhere, monkeypatch):
    monkeypatch.setenv("BINDER_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(DaemonNotFound) as err:
        connect()
    message = str(err.value)
    assert message.startswith("Binder gives no Docker daemon")
    assert message.count(". ") == 0 and message.endswith(").")          # one sentence
    assert "Run it in a class" in message                                # where to get one
    assert err.value._render_traceback_() == [f"DaemonNotFound: {message}"]


def test_ipython_shows_just_that_line(nowhere, monkeypatch, capsys):
    """What a learner on Binder sees when the setup cell runs: one line, no traceback."""
    from IPython.core.interactiveshell import InteractiveShell
    monkeypatch.setenv("BINDER_SERVICE_HOST", "10.0.0.1")
    shell = InteractiveShell.instance()
    try:
        result = shell.run_cell("from helpers import connect\nclient = connect()")
    finally:
        InteractiveShell.clear_instance()
    assert isinstance(result.error_in_exec, DaemonNotFound)
    shown = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert shown == [f"DaemonNotFound: {connection.no_daemon_advice()}"]


# --- DOCKER_HOST, TLS and contexts: docker-py's own handling ------------------------------------

def test_docker_host_that_is_down_is_named(nowhere, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    assert [ep.source for ep in connection.candidate_endpoints()] == ["DOCKER_HOST"]  # only there
    with pytest.raises(DaemonNotFound, match=r"DOCKER_HOST=tcp://127\.0\.0\.1:9"):
        connect()


def test_tls_variables_reach_docker_py(nowhere, monkeypatch):
    """DOCKER_TLS_VERIFY / DOCKER_CERT_PATH (GitLab's dind on 2376) go through from_env."""
    certs = nowhere / "certs"
    certs.mkdir()
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (certs / name).write_text("not read until a connection is made\n")
    monkeypatch.setenv("DOCKER_HOST", "tcp://localhost:2376")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(certs))
    assert connection.candidate_endpoints() == [connection.Endpoint("DOCKER_HOST", None)]
    client = docker.from_env(version="1.41")     # what _client() calls, without asking the server
    assert client.api.base_url == "https://localhost:2376"
    assert client.api.cert == (str(certs / "cert.pem"), str(certs / "key.pem"))
    assert client.api.verify == str(certs / "ca.pem")
    assert daemon_host(client) == "127.0.0.1"  # the service's host, as an IP ports can be published on


def test_docker_context_is_used(nowhere, client):
    """A context made with the docker CLI (in a temporary DOCKER_CONFIG) that points at the
    course engine's socket: connect() finds the daemon through it."""
    local = LOCAL_DOCKER_HOST or COURSE_SOCKET
    if not local.startswith("unix://"):
        pytest.skip("needs the daemon on a local socket")
    env = dict(os.environ)                      # DOCKER_CONFIG is the temporary one, no DOCKER_HOST
    for argv in (["docker", "context", "create", "course-test", "--docker", f"host={local}"],
                 ["docker", "context", "use", "course-test"]):
        subprocess.run(argv, env=env, check=True, capture_output=True)
    sources = [ep.source for ep in connection.candidate_endpoints()]
    assert sources[0] == "docker context 'course-test'"
    found = connect()
    assert found.course_source == "docker context 'course-test'"
    assert found.ping() and found.info()["ID"] == client.info()["ID"]


# --- the Docker-in-Docker service -----------------------------------------------------------------

def test_service_image_holds_a_whole_daemon():
    files = dind.rootfs_files()
    for program in ("usr/sbin/dockerd", "usr/bin/containerd", "usr/sbin/runc", "usr/sbin/docker-proxy",
                    "usr/sbin/xtables-nft-multi", "usr/bin/ps", "bin/busybox"):
        assert program in files
    assert any(name.endswith("libc.so.6") for name in files)
    assert any("ld-linux" in name for name in files)
    with tarfile.open(fileobj=io.BytesIO(dind.rootfs_tar(files))) as tar:
        names = set(tar.getnames())
        script = tar.extractfile("entrypoint.sh").read().decode()
    assert {"entrypoint.sh", "bin/sh", "usr/sbin/iptables", "var/lib/docker", "etc/os-release"} <= names
    assert "--registry-mirror" in script and "--tls=false" in script
    # stock flags, as docker:dind or a class's daemon: no --bip, nothing forwarded to loopback
    assert "--bip" not in script and "DNAT" not in script and "route_localnet" not in script
    # the dind lane's engine (versions.toml), not the local one
    assert files["usr/sbin/dockerd"] == debian.program("dind", "dockerd")
    assert debian.lane_dir("dind") in files["usr/sbin/dockerd"].parents
    assert dind.fingerprint(files) == dind.fingerprint(files)


def test_daemon_host_of_the_service():
    client = docker.DockerClient(base_url=f"tcp://{dind.ADDRESS}:{dind.PORT}", version="1.41")
    assert daemon_host(client) == dind.ADDRESS != "127.0.0.1"


def test_registry_never_listens_everywhere(tmp_path):
    for host in ("0.0.0.0", "::"):
        with pytest.raises(EngineError, match="never listens on every address"):
            registry.ensure_front(tmp_path, "python3", host)


def test_check_images_on_the_course_engine(client):
    assert check_images(client) is None        # the local engine has the mirror


def _hub_lookups_from(address: str) -> int:
    """How many times the course engine's embedded DNS passed on a lookup of Docker Hub's
    registry from ``address`` (its debug log names each query it forwards)."""
    log = connection.STATE_DIR / "dockerd.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return sum(1 for line in lines if "query registry-1.docker.io." in line and f"from {address}:" in line)


@pytest.mark.skipif(not LOCAL_DOCKER_HOST.startswith("unix://"),
                    reason="starts a Docker-in-Docker service and reaches it from this machine: needs the daemon on a "
                           "local socket")
def test_daemon_without_mirror_says_so(client):
    """A class's daemon nobody pointed at the course registry, with no internet: the setup
    cell's check says so in one sentence and names the fix — and the service, offline by
    construction, never even looks Docker Hub up."""
    address = dind.slot(1)[3]
    before = _hub_lookups_from(address)
    with dind.service(mirror=False, number=1) as host:     # slot 1: a pass may be using slot 0
        inner = docker.DockerClient(base_url=host, timeout=60)
        # the second engine of the matrix: Debian stable's Docker on the classic overlay2 store
        assert inner.version()["Version"].startswith(debian.version("dind", "docker.io") + "+")
        assert inner.info()["Driver"] == "overlay2"
        assert inner.images.list() == []
        with pytest.raises(ImageNotAvailable) as err:
            check_images(inner)
        message = str(err.value)
        assert "neither Docker Hub nor the course registry" in message
        assert "--registry-mirror=http://" in message and "registry-mirrors" in message
        assert host.removeprefix("tcp://") in message and message.endswith("shows.")
    assert _hub_lookups_from(address) == before      # the pull failed at the dead proxy, on loopback
    gone = {"label": f"{dind.SERVICE_LABEL}={dind.slot(1)[0]}"}
    assert client.containers.list(all=True, filters=gone) == [] and client.networks.list(filters=gone) == []
