"""The offline kit: a reproducible base image, a registry that serves pulls and search, and a
daemon log that shows every pull served by the course's registry — never Docker Hub."""

from __future__ import annotations

import hashlib
import json
import re
import urllib.request
from pathlib import Path

import pytest

from helpers import connection, imagekit, procs, registry


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


def test_daemon_log_shows_every_pull_served_by_the_course_registry(client):
    """Every pull asks the course registry first, and anything it lacks (a mistyped tag) dies at
    the engine's dead loopback proxy: no DNS query for Docker Hub, no packet off the machine."""
    if not course_engine_in_use(client):
        pytest.skip("this daemon does not use the course registry on this machine as its mirror")
    client.images.pull("busybox", tag=imagekit.BASE_TAG)  # at least one pull in the log
    log = (connection.STATE_DIR / "dockerd.log").read_text(errors="replace")
    mirror = f"http://{registry.front_address()}/"
    tries = re.findall(r'msg="Trying to pull (\S+) from (\S+) (v\d)"', log)
    assert tries, "the daemon log shows no pull"
    assert all(source in (mirror, "https://registry-1.docker.io") for _, source, _ in tries)
    asked_mirror = {name for name, source, _ in tries if source == mirror}
    assert {name for name, _, _ in tries} <= asked_mirror, "a pull skipped the course registry"
    assert "lookup registry-1.docker.io" not in log and "lookup index.docker.io" not in log
    fallbacks = [line for line in re.findall(r'msg="Error getting v2 registry: (.*)"', log)
                 if "docker.io" in line]  # (pushes to the store try https first: not Docker Hub)
    assert all("127.0.0.1:9" in line for line in fallbacks), fallbacks[:3]
    served = re.findall(r'"Pulling ref from V2 registry: (\S+)"', log)
    assert "busybox:1.35" in served


def test_the_course_engine_and_what_it_starts_share_its_go_runtime_settings(client, run):
    """dockerd, its containerd and every shim (and so runc and its hooks) carry GO_RUNTIME: the
    re-executions of dockerd at each container start then skip their garbage collections."""
    from coursehost.engine import GO_RUNTIME

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
    from coursehost import engine
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
