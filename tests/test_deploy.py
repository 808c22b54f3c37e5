"""The shipped configurations (GitHub Actions, GitLab CI, Zero to JupyterHub, a classroom compose
file, Binder) are parsed and checked for the settings that matter; the daemon-free registry they
rely on (coursehost.offline) is run here and compared with what the course's engine publishes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from coursehost import debian, imagekit, offline, procs, registry

ROOT = Path(__file__).resolve().parent.parent


def load(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text())


def mirror_of(args: list[str]) -> str:
    """The one --registry-mirror of a daemon's arguments; the same address must be an insecure
    registry too (plain HTTP), so `docker search MIRROR/term` works as pulls do."""
    found = [a.split("=", 1)[1] for a in args if a.startswith("--registry-mirror=")]
    assert len(found) == 1, args
    assert f"--insecure-registry={found[0].removeprefix('http://')}" in args, args
    return found[0]


def test_github_workflow():
    wf = load(".github/workflows/course.yml")
    jobs = wf["jobs"]
    # the job CI runs on a fresh Debian 12 machine: .ci/run, which is ./course test
    course = jobs["course"]
    assert course["container"]["image"] == "debian:12" and "--privileged" in course["container"]["options"]
    assert any(step.get("run") == ".ci/run" for step in course["steps"])
    # the job against a docker:dind service pointed at the course registry
    dind = jobs["dind-service"]
    script = "\n".join(step.get("run", "") for step in dind["steps"])
    assert dind["env"]["DIND_IMAGE"].startswith("docker:") and dind["env"]["DIND_IMAGE"].endswith("-dind")
    assert "--registry-mirror=http://172.17.0.1:5765" in script
    assert "--insecure-registry=172.17.0.1:5765" in script
    assert "coursehost.offline registry --listen 172.17.0.1" in script
    assert 'DOCKER_HOST=tcp://$ip:2375' in script and "./course test" in script
    # the service's address from its network's entry: API 1.52 (Engine 29) has no top-level one
    assert "docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' dind" in script
    # the registry's packages come from Debian's archive by a private apt: Debian's keyring is needed
    assert "debian-archive-keyring" in script and "apt-get install -y -qq python3-venv docker-registry" not in script
    assert "0.0.0.0:5765" not in script
    assert dind["steps"][-1]["if"] == "always()" and "docker rm -f" in dind["steps"][-1]["run"]
    assert (ROOT / ".ci/run").read_text().rstrip().endswith("exec ./course test")


def test_gitlab_ci():
    ci = load(".gitlab-ci.yml")
    job = ci["course"]
    service = job["services"][0]
    assert service["name"].startswith("docker:") and service["name"].endswith("-dind")
    assert service["alias"] == "docker"
    v = job["variables"]
    assert v["DOCKER_HOST"] == "tcp://docker:2376"              # TLS port
    assert v["DOCKER_TLS_CERTDIR"] == "/certs"
    assert v["DOCKER_CERT_PATH"] == "/certs/client"
    assert v["DOCKER_TLS_VERIFY"] == "1"
    assert v["FF_NETWORK_PER_BUILD"] == "true"                  # the service reaches the job as `build`
    assert mirror_of(service["command"]) == "http://build:5765"
    assert any("coursehost.offline registry --listen" in line for line in job["before_script"])
    assert job["script"] == ["./course test"]


def test_jupyterhub_values():
    """Zero to JupyterHub: a seat as on one machine (tests/test_class.py checks the file is exactly
    what coursehost/classroom.py makes): the lab beside its own privileged daemon on the pod's
    loopback, the course registry as that daemon's mirror, its data on an emptyDir."""
    text = (ROOT / "deploy/jupyterhub/values.yaml").read_text()
    values = yaml.safe_load(text)
    single = values["singleuser"]
    assert single["extraEnv"]["DOCKER_HOST"] == "tcp://localhost:2375"
    sidecar, = [c for c in single["extraContainers"] if c["name"] == "docker"]
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env == {"COURSE_MIRROR": "REGISTRY:5765", "COURSE_LISTEN": "127.0.0.1"}  # only the learner's own pod
    assert sidecar["image"].startswith("REGISTRY:5765/course/dind:")
    assert single["image"]["name"] == "REGISTRY:5765/course/lab"
    assert sidecar["securityContext"]["privileged"] is True
    mount, = sidecar["volumeMounts"]
    assert mount["mountPath"] == "/var/lib/docker"
    volume, = [v for v in single["storage"]["extraVolumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume
    # the security trade-off is stated next to the privileged sidecar
    assert "SECURITY TRADE-OFF" in text and "root on the node" in text


def test_binder():
    env = load("binder/environment.yml")
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip == ["-r ../requirements.txt"] and (ROOT / "binder" / pip[0].split()[1]).exists()
    post = ROOT / "binder/postBuild"
    assert os.access(post, os.X_OK)
    lines = post.read_text().splitlines()
    assert lines[0] == "#!/bin/bash" and "set -euo pipefail" in lines
    assert "pip install --no-deps -e ." in lines


# --- the registry a class or a CI job runs, without a daemon ----------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def spare_store(tmp_path):
    """A second, empty registry store on a free loopback port."""
    port = _free_port()
    config = tmp_path / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = procs.spawn([str(debian.program("registry", "docker-registry")), "serve", str(config)],
                       tmp_path / "store.log")
    try:
        procs.wait_until(lambda: procs.http_ok(f"http://127.0.0.1:{port}/v2/"), "spare store",
                         tmp_path / "store.log", proc=proc)
        yield f"127.0.0.1:{port}", tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _get(store: str, path: str) -> bytes:
    import urllib.request
    req = urllib.request.Request(f"http://{store}{path}", headers={"Accept": offline.MANIFEST})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()


def test_offline_publish_matches_the_engines(spare_store):
    """The image pushed over HTTP is the one `docker import` + push put in the course registry:
    the same layer (diff id) and the same config, all but its creation time."""
    store, folder = spare_store
    pushed = offline.publish(store, folder / "catalogue.json")
    assert "library/busybox:1.35" in pushed and "course/busybox-tools:1.0" in pushed
    assert json.loads((folder / "catalogue.json").read_text()) == imagekit.CATALOGUE
    ours = json.loads(_get(store, "/v2/library/busybox/manifests/1.35"))
    config = json.loads(_get(store, f"/v2/library/busybox/blobs/{ours['config']['digest']}"))
    theirs = json.loads(_get(registry.store_address(), "/v2/library/busybox/manifests/1.35"))
    engine = json.loads(_get(registry.store_address(), f"/v2/library/busybox/blobs/{theirs['config']['digest']}"))
    for c in (config, engine):
        c.pop("created")
        c["history"][0].pop("created")
    assert config == engine
    assert offline.publish(store, folder / "catalogue.json") == pushed     # again: blobs are there


def test_offline_cli_refuses_every_address():
    done = subprocess.run([sys.executable, "-m", "coursehost.offline", "registry", "--listen", "0.0.0.0"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1 and "never listens on every address" in done.stderr
