"""The course's own engine and its offline kit: Docker 28.5.2 from the engine lane of
versions.toml on the containerd image store, a reproducible base image, a registry that serves
pulls and search, and a daemon log that shows every pull served by the course's registry — never
Docker Hub."""

from __future__ import annotations

import hashlib
import json
import os
import re
import urllib.request
from pathlib import Path

import pytest

from coursehost import debian, engine, imagekit, offline, procs, registry
from helpers import connection


def test_rootfs_tar_is_reproducible_and_complete():
    a, b = imagekit.rootfs_tar(), imagekit.rootfs_tar()
    assert hashlib.sha256(a).hexdigest() == hashlib.sha256(b).hexdigest()
    import io
    import tarfile
    names = tarfile.open(fileobj=io.BytesIO(a)).getnames()
    for needed in ("bin/busybox", "bin/sh", "bin/httpd", "bin/wget", "bin/nc", "bin/ip", "etc/passwd", "tmp"):
        assert needed in names
    assert 1_500_000 < len(a) < 3_000_000  # about 2 MB


def test_search_results_filter_limit_and_shape():
    repos = ["library/busybox", "course/busybox-httpd", "course/other"]
    out = registry.search_results("busybox", 25, imagekit.CATALOGUE, repos)
    assert [r["name"] for r in out["results"]] == ["busybox", "course/busybox-httpd"]  # by stars
    assert out["results"][0]["is_official"] is True and out["results"][1]["is_automated"] is True
    assert registry.search_results("busybox", 1, imagekit.CATALOGUE, repos)["num_results"] == 1
    assert registry.search_results("nothing-like-this", 25, imagekit.CATALOGUE, repos)["results"] == []


def course_engine_in_use(client) -> bool:
    return client.info().get("RegistryConfig", {}).get("Mirrors") == [f"http://{registry.front_address()}/"]


def test_registry_front_answers_search_and_serves_manifests(client):
    if not course_engine_in_use(client):
        pytest.skip("this daemon does not use the course registry on this machine as its mirror")
    with urllib.request.urlopen(f"http://{registry.front_address()}/v1/search?q=busybox&n=25", timeout=5) as r:
        names = [x["name"] for x in json.load(r)["results"]]
    assert "busybox" in names
    assert registry.has_tag("library/busybox", imagekit.BASE_TAG)
    results = client.images.search(f"{registry.front_address()}/busybox")
    assert {"busybox", "course/busybox-httpd"} <= {r["name"] for r in results}


def _log_from(offset: int) -> str:
    with open(connection.STATE_DIR / "dockerd.log", "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def _log_size() -> int:
    return (connection.STATE_DIR / "dockerd.log").stat().st_size


#: dockerd 28's (containerd's) debug lines for each registry request, its answer, its failure:
#: the host is read from the request's URL (not every line has a host field).
REQUEST = re.compile(r'msg="do request" .*?url="https?://([^/"]+)')
ANSWER = re.compile(r'msg="fetch response received" .*?url="https?://([^/"]+)')
#: BuildKit's resolver (a Dockerfile's FROM) logs its requests and answers without their URL; it
#: resolves through the engine's registry configuration (the mirror). Its answers must come from
#: the course registry's front, a Python server.
BUILDKIT_REQUEST = re.compile(r'msg="do request" (?!.*url=").*user-agent=buildkit/')
URLLESS_ANSWER = re.compile(r'msg="fetch response received" (?!.*url=")(.*)')
FAILED = re.compile(r'msg="fetch failed" error="((?:[^"\\]|\\.)*)"')


def _is_local(host: str) -> bool:
    return host.startswith(("127.", "localhost", "[::1]"))


def test_daemon_log_shows_every_pull_served_by_the_course_registry(client):
    """Every registry request of the engine goes to the course registry (or another registry on
    this machine a lesson runs), and what it lacks (a mistyped tag) dies at the engine's dead
    loopback proxy: no answer from Docker Hub, no DNS query for it, no packet off the machine."""
    if not course_engine_in_use(client):
        pytest.skip("this daemon does not use the course registry on this machine as its mirror")
    start = _log_size()
    client.images.pull("busybox", tag=imagekit.BASE_TAG)
    from docker.errors import APIError
    with pytest.raises(APIError):
        client.images.pull("busybox", tag="no-such-tag-dc")     # the mirror lacks it: Docker Hub next
    ours = _log_from(start)
    mirror = registry.front_address()
    served = rf'msg="fetch response received" .*?url="http://{mirror}/v2/library/busybox/manifests/{imagekit.BASE_TAG}\?'
    assert re.search(served, ours), "the pull skipped the mirror"
    hub = [error for error in FAILED.findall(ours) if "registry-1.docker.io" in error]
    assert hub and all("proxyconnect tcp: dial tcp 127.0.0.1:9" in e for e in hub), hub[:3]

    log = _log_from(0)                                          # this engine's whole life
    hosts = REQUEST.findall(log)
    assert len(hosts) + len(BUILDKIT_REQUEST.findall(log)) == log.count('msg="do request"') and mirror in hosts
    assert all('response.header.server="BaseHTTP/' in a for a in URLLESS_ANSWER.findall(log))
    assert set(hosts) <= {h for h in hosts if _is_local(h)} | {"registry-1.docker.io"}, set(hosts)
    assert all(_is_local(h) for h in ANSWER.findall(log)), "a registry off this machine answered"
    assert all("127.0.0.1:9" in e for e in FAILED.findall(log) if "registry-1.docker.io" in e)
    assert "lookup registry-1.docker.io" not in log and "lookup index.docker.io" not in log
    pulled = re.findall(r'msg="image pulled" digest="(\S+)" remote="docker.io/library/busybox:(\S+)"', log)
    assert ("sha256:" + hashlib.sha256(offline.image_blobs()[2]).hexdigest(), imagekit.BASE_TAG) in pulled


def test_the_course_engine_and_what_it_starts_share_its_go_runtime_settings(client, run):
    """dockerd, its containerd and every shim (and so runc and its hooks) carry GO_RUNTIME: the
    re-executions of dockerd at each container start then skip their garbage collections."""
    GO_RUNTIME = engine.GO_RUNTIME

    if not course_engine_in_use(client):
        pytest.skip("this daemon is not the course's own engine")
    dockerd = procs.read_pid(connection.STATE_DIR / "docker.pid")
    container = client.containers.run(imagekit.BASE_IMAGE, ["sleep", "30"], detach=True,
                                      name=run.name("go-runtime"), labels=run.labels)
    try:
        commands = {pid: " ".join(argv) for pid, argv in procs.command_lines().items()}
        containerd = [p for p, cmd in commands.items() if cmd.startswith("containerd ") and _parent(p) == dockerd]
        shim = [p for p, cmd in commands.items() if "containerd-shim" in cmd and f"-id {container.id}" in cmd]
        assert containerd and shim, (containerd, shim)
        for pid in [dockerd, *containerd, *shim]:
            env = dict(line.split("=", 1) for line in
                       open(f"/proc/{pid}/environ", "rb").read().decode().split("\0") if "=" in line)
            assert {k: env.get(k) for k in GO_RUNTIME} == GO_RUNTIME, commands[pid][:80]
    finally:
        container.remove(force=True)


def _parent(pid: int) -> int:
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def test_another_checkouts_engine_is_found_and_named(tmp_path, monkeypatch):
    """A second checkout does not start a second course engine beside the first one (they would
    share docker0, its iptables chains and the registry's ports): it names the running one, and
    how to stop or use it, in one sentence."""
    from helpers.errors import EngineError

    def process(pid: str, *argv: str) -> None:
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    process("101", "dockerd", "--debug", "--data-root", "/srv/other/.state/docker",
            "--exec-root", engine.EXEC_ROOT_PREFIX + "0badcafe")
    process("102", "/usr/sbin/dockerd", "--data-root", str(engine.state_dir() / "docker"),
            "--exec-root", str(engine.exec_root()))                          # this checkout's own
    process("103", "dockerd", "--data-root", "/tmp/x/data", "--exec-root", "/run/dcf-abc123")  # not the course's
    process("104", "python", "--exec-root", engine.EXEC_ROOT_PREFIX + "12345678", "--data-root", "/y/.state/docker")
    (tmp_path / "self").mkdir()
    assert engine.other_engines(tmp_path) == [Path("/srv/other/.state")]

    monkeypatch.setattr(engine, "running_client", lambda: None)
    monkeypatch.setattr(engine, "install_packages", lambda: None)
    monkeypatch.setattr(engine, "other_engines", lambda: [Path("/srv/other/.state")])
    monkeypatch.setattr(engine.registry, "ensure_running", lambda *a: pytest.fail("started a registry"))
    monkeypatch.setattr(engine, "start_dockerd", lambda: pytest.fail("started a second engine"))
    with pytest.raises(EngineError) as err:
        engine.start()
    message = str(err.value)
    assert "/srv/other" in message and "./course engine stop" in message
    assert "DOCKER_HOST=unix:///srv/other/.state/docker.sock" in message and message.count(". ") == 0


# --- the engine of versions.toml ----------------------------------------------------------------

def _course_engine_pid(client) -> int:
    if not course_engine_in_use(client):
        pytest.skip("this daemon is not the course's own engine")
    pid = procs.read_pid(connection.STATE_DIR / "docker.pid")
    assert pid is not None
    return pid


def test_the_engine_is_the_engine_lanes_docker(client):
    """dockerd runs from the engine lane's folder (.state/debian/engine-<hash>/), and says it is
    the docker.io and containerd versions.toml names (28.5.2, 2.1.9)."""
    pid = _course_engine_pid(client)
    exe = Path(os.readlink(f"/proc/{pid}/exe"))
    assert debian.lane_dir("engine") in exe.parents and exe.name == "dockerd", exe
    assert debian.lane_dir("engine").name.startswith("engine-") and not engine.outdated()
    version = client.version()
    assert version["Version"].split("+")[0] == debian.version("engine", "docker.io")
    components = {c["Name"]: c["Version"] for c in version["Components"]}
    assert components["containerd"].split("+")[0] == debian.version("engine", "containerd")
    assert components["runc"].split("+")[0] == debian.version("engine", "runc")


def test_the_engine_uses_the_containerd_image_store(client):
    """A daemon on the containerd store reports the overlayfs snapshotter: `Storage Driver:
    overlayfs` with `driver-type io.containerd.snapshotter.v1` (docs.docker.com/engine/storage/containerd/)."""
    _course_engine_pid(client)
    info = client.info()
    assert info["Driver"] == "overlayfs"
    assert ["driver-type", "io.containerd.snapshotter.v1"] in info["DriverStatus"]


def test_outdated_compares_the_running_binaries_with_versions_toml(tmp_path, monkeypatch):
    """The engine (dockerd) or the registry's store running from a lane folder that versions.toml
    no longer names means restart; an unreadable /proc entry or no process means nothing to do."""
    monkeypatch.setattr(engine, "state_dir", lambda: tmp_path)
    proc = tmp_path / "proc"
    dockerd_pid, store_pid = os.getpid(), os.getppid()                 # two live pids
    (tmp_path / "registry").mkdir()

    def runs(pid: int, exe: Path | None) -> None:
        folder = proc / str(pid)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "exe").unlink(missing_ok=True)
        if exe is not None:
            (folder / "exe").symlink_to(exe)

    assert engine.outdated(proc) is False                              # nothing runs
    (tmp_path / "docker.pid").write_text(f"{dockerd_pid}\n")
    (tmp_path / "registry" / "store.pid").write_text(f"{store_pid}\n")
    runs(dockerd_pid, debian.lane_dir("engine") / "usr/sbin/dockerd")
    runs(store_pid, debian.lane_dir("registry") / "usr/bin/docker-registry")
    assert engine.outdated(proc) is False                              # both the lanes of now
    runs(dockerd_pid, debian.STATE_DIR / "debian" / "engine-0ld0ld0ld0" / "usr/sbin/dockerd")
    assert engine.outdated(proc) is True                               # an engine of older pins
    runs(dockerd_pid, Path("/usr/sbin/dockerd"))
    assert engine.outdated(proc) is True                               # the machine's own dockerd
    runs(dockerd_pid, None)
    assert engine.outdated(proc) is False                              # not ours to read: leave it
    runs(store_pid, debian.STATE_DIR / "debian" / "registry-0ld0ld0ld0" / "usr/bin/docker-registry")
    assert engine.outdated(proc) is True                               # the registry's store too
    (tmp_path / "registry" / "store.pid").write_text("999999999\n")
    assert engine.outdated(proc) is False                              # a stale pid file


def test_the_base_images_digest_is_the_same_everywhere(client):
    """The base image is built with a fixed creation time: its manifest (and so, on the containerd
    store, the image ID) is the same on every machine, engine and day."""
    config, layer, manifest = offline.image_blobs()
    assert offline.image_blobs() == (config, layer, manifest)
    assert json.loads(config)["created"] == "2023-01-01T00:00:00Z"
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    if not course_engine_in_use(client):
        pytest.skip("this daemon does not use the course registry on this machine as its mirror")
    request = urllib.request.Request(f"http://{registry.store_address()}/v2/library/busybox/manifests/"
                                     f"{imagekit.BASE_TAG}", headers={"Accept": offline.MANIFEST})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.headers["Docker-Content-Digest"] == digest
    image = client.images.pull("busybox", tag=imagekit.BASE_TAG)
    assert image.id == digest                                           # containerd store: ID = manifest digest
    assert f"busybox@{digest}" in image.attrs["RepoDigests"]
