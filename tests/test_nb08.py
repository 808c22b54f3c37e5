"""Notebook 08: the registry helpers (HTTP API, htpasswd, credentials), the exercise checks (fail on
wrong answers, pass on the solutions) and every CLI form of the cheat sheet."""

from __future__ import annotations

import base64
import json
import shlex
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import bcrypt
import pytest

from helpers import BASE_IMAGE, BadInput, CourseError, NotFound, daemon_host
from helpers.checks import nb08
from helpers.registries import (
    LocalRegistry, catalog_table, credentials_table, delete_manifest, docker_cli, htpasswd_line, local_digests,
    manifest_digest, pushed_digest, repositories, request, start_registry, tags, tags_table)
from tests.cheatsheet import run_cli, sheet_commands

DIGEST = "sha256:" + "ab" * 32


# --- without a daemon ------------------------------------------------------------------------------

def test_htpasswd_line_is_bcrypt_and_checks():
    line = htpasswd_line("alice", "s3cret")
    user, hashed = line.split(":", 1)
    assert user == "alice" and hashed.startswith("$2b$05$")
    assert bcrypt.checkpw(b"s3cret", hashed.encode()) and not bcrypt.checkpw(b"wrong", hashed.encode())
    for bad in (("", "x"), ("a:b", "x"), ("a", ""), (1, "x")):
        with pytest.raises(BadInput):
            htpasswd_line(*bad)
    with pytest.raises(BadInput):
        htpasswd_line("a", "b", rounds=3)


class FakeRegistry(BaseHTTPRequestHandler):
    """Answers like distribution 2.8 for one repository ``hello`` with the tag ``v1``."""

    def log_message(self, *args):
        pass

    def _send(self, status, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status, code):
        self._send(status, {"errors": [{"code": code, "message": code.lower(), "detail": None}]})

    def do_GET(self):
        if self.path.startswith("/v2/_catalog"):
            self._send(200, {"repositories": ["hello", "empty"]})
        elif self.path == "/v2/hello/tags/list":
            self._send(200, {"name": "hello", "tags": ["v1"]})
        elif self.path == "/v2/empty/tags/list":
            self._send(200, {"name": "empty", "tags": None})
        elif self.path == "/v2/locked/tags/list":
            self._error(401, "UNAUTHORIZED")
        else:
            self._error(404, "NAME_UNKNOWN")

    def do_HEAD(self):
        if self.path in ("/v2/hello/manifests/v1", f"/v2/hello/manifests/{DIGEST}"):
            self._send(200, {}, {"Docker-Content-Digest": DIGEST})
        else:
            self._error(404, "MANIFEST_UNKNOWN")

    def do_DELETE(self):
        if self.path == f"/v2/hello/manifests/{DIGEST}":
            self._send(202)
        elif self.path.startswith("/v2/nodelete/"):
            self._error(405, "UNSUPPORTED")
        else:
            self._error(404, "MANIFEST_UNKNOWN")


@pytest.fixture(scope="module")
def fake():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_api_helpers_on_a_fake_registry(fake):
    assert repositories(fake) == ["empty", "hello"]
    assert tags(fake, "hello") == ["v1"] and tags(fake, "empty") == []
    assert manifest_digest(fake, "hello", "v1") == DIGEST
    assert delete_manifest(fake, "hello", DIGEST) == 202
    table = catalog_table(fake)
    assert table.to_dict("records") == [{"repository": "empty", "tags": "(none)"}, {"repository": "hello", "tags": "v1"}]
    assert tags_table(fake, "hello").to_dict("records") == [{"repository": "hello", "tag": "v1",
                                                             "digest": DIGEST[:19] + "…"}]


def test_api_helpers_say_what_is_wrong(fake):
    with pytest.raises(NotFound, match="no repository nothing"):
        tags(fake, "nothing")
    with pytest.raises(NotFound, match=r"no manifest hello:v9 \(404\)"):
        manifest_digest(fake, "hello", "v9")
    with pytest.raises(CourseError, match="wants a user"):
        tags(fake, "locked")
    with pytest.raises(CourseError, match="REGISTRY_STORAGE_DELETE_ENABLED"):
        delete_manifest(fake, "nodelete", DIGEST)
    with pytest.raises(BadInput, match="by its digest"):
        delete_manifest(fake, "hello", "v1")
    for bad in ("", "/x", "a:b", None):
        with pytest.raises(BadInput):
            tags(fake, bad)
    with pytest.raises(BadInput):
        request("127.0.0.1:5000", "/v2/")
    with pytest.raises(BadInput):
        request(fake, "v2/")
    with pytest.raises(CourseError, match="No registry answers"):
        request("http://127.0.0.1:9", "/v2/")


def test_request_sends_basic_auth(fake):
    seen = {}

    class Echo(FakeRegistry):
        def do_GET(self):
            seen["auth"] = self.headers.get("Authorization")
            self._send(200, {})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        request(f"http://127.0.0.1:{server.server_address[1]}", "/v2/", auth=("bob", "hunter2"))
    finally:
        server.shutdown()
    assert seen["auth"] == "Basic " + base64.b64encode(b"bob:hunter2").decode()


def test_credentials_table(tmp_path):
    with pytest.raises(NotFound, match="docker login writes it"):
        credentials_table(tmp_path)
    auth = base64.b64encode(b"alice:s3cret").decode()
    (tmp_path / "config.json").write_text(json.dumps({
        "auths": {"127.0.0.1:5000": {"auth": auth}, "ghcr.io": {}}, "credsStore": "pass"}))
    rows = credentials_table(tmp_path).to_dict("records")
    assert rows == [{"registry": "127.0.0.1:5000", "auth (base64)": auth, "user": "alice", "credential helper": "pass"},
                    {"registry": "ghcr.io", "auth (base64)": "(empty)", "user": "(in the helper)",
                     "credential helper": "pass"}]


def test_pushed_digest():
    assert pushed_digest([{"status": "The push refers to repository [x]"},
                          {"status": f"v1: digest: {DIGEST} size: 750"}]) == DIGEST
    with pytest.raises(CourseError, match="no basic auth credentials"):
        pushed_digest([{"status": "Preparing"}, {"error": "no basic auth credentials"}])
    with pytest.raises(CourseError, match="no digest"):
        pushed_digest([])


def test_docker_cli_takes_a_list(tmp_path):
    with pytest.raises(BadInput):
        docker_cli("login", tmp_path)


# --- against the daemon ------------------------------------------------------------------------------

@pytest.fixture
def registry(client, run):
    client.images.pull("course/registry", tag="2.8")
    client.images.pull("busybox", tag="1.35")
    return start_registry(client, run)


def _commit(client, run, registry, repo, tag, text):
    maker = client.containers.run(BASE_IMAGE, ["sh", "-c", f"echo {text} > /www/index.html"],
                                  name=run.name(f"m-{repo}-{tag}"), labels=run.labels, detach=True)
    maker.wait()
    image = maker.commit(repository=f"{registry.address}/{run.name(repo)}", tag=tag)
    return image


def _push(client, registry, name, tag):
    return pushed_digest(list(client.images.push(f"{registry.address}/{name}", tag=tag, stream=True, decode=True)))


def test_push_list_delete(client, run, registry):
    _commit(client, run, registry, "a", "v1", "one")
    digest = _push(client, registry, run.name("a"), "v1")
    assert repositories(registry) == [run.name("a")]
    assert manifest_digest(registry, run.name("a"), "v1") == digest
    assert digest in local_digests(client, registry.ref(run.name("a")))
    assert delete_manifest(registry, run.name("a"), digest) == 202
    assert tags(registry, run.name("a")) == []
    with pytest.raises(NotFound):
        local_digests(client, run.image("nothing"))


def test_users(client, run):
    client.images.pull("course/registry", tag="2.8")
    locked = start_registry(client, run, "locked", users={"bob": "hunter2"})
    assert request(locked, "/v2/").status == 401
    assert request(locked, "/v2/", auth=("bob", "hunter2")).status == 200
    assert request(locked, "/v2/", auth=("bob", "wrong")).status == 401
    with pytest.raises(BadInput):
        start_registry(client, run, "bad", users=["bob"])


def test_check_push(client, run, registry):
    maker = client.containers.run(BASE_IMAGE, ["true"], name=run.name("maker"), labels=run.labels, detach=True)
    maker.wait()
    ex = maker.commit(repository=run.name("ex"), tag="v1")
    assert "no repository" in nb08.check_push(client, run, registry).message
    ex.tag(f"{registry.address}/{run.name('mine')}", "v2")
    _push(client, registry, run.name("mine"), "v2")
    assert "not v1" in nb08.check_push(client, run, registry).message
    _commit(client, run, registry, "mine", "v1", "other")
    _push(client, registry, run.name("mine"), "v1")
    assert "is not the image" in nb08.check_push(client, run, registry).message
    ex.tag(f"{registry.address}/{run.name('mine')}", "v1")
    _push(client, registry, run.name("mine"), "v1")
    assert nb08.check_push(client, run, registry)


def test_check_delete(client, run, registry):
    assert "setup cell" in nb08.check_delete(run, registry).message
    digests = nb08.setup_delete(client, run, registry)
    assert digests["keep"] != digests["drop"]
    assert "still there" in nb08.check_delete(run, registry).message
    delete_manifest(registry, run.name("old"), digests["keep"])
    assert "keep is gone" in nb08.check_delete(run, registry).message
    nb08.setup_delete(client, run, registry)
    delete_manifest(registry, run.name("old"), manifest_digest(registry, run.name("old"), "drop"))
    assert nb08.check_delete(run, registry)


def test_check_login(client, run, tmp_path):
    client.images.pull("course/registry", tag="2.8")
    vault = start_registry(client, run, "vault", users={"bob": "hunter2"})
    assert not nb08.check_login(None, vault)
    assert "no config.json" in nb08.check_login(tmp_path, vault).message
    config = tmp_path / "config.json"

    def write(user_password, address=vault.address):
        auth = base64.b64encode(user_password.encode()).decode()
        config.write_text(json.dumps({"auths": {address: {"auth": auth}}}))

    write("bob:hunter2", "127.0.0.1:1")
    assert "no credentials for" in nb08.check_login(tmp_path, vault).message
    write("alice:hunter2")
    assert "log in as bob" in nb08.check_login(tmp_path, vault).message
    write("bob:wrong")
    assert "do not open" in nb08.check_login(tmp_path, vault).message
    config.unlink()
    done = docker_cli(["login", "--username", "bob", "--password-stdin", vault.address], tmp_path, stdin="hunter2")
    assert done.returncode == 0, done.stderr
    assert nb08.check_login(tmp_path, vault)


def _curl(command: str, subs: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Run a cheat-sheet ``curl`` row with urllib (curl itself may not be installed)."""
    for placeholder, value in subs.items():
        command = command.replace(placeholder, value)
    argv = shlex.split(command)[1:]
    method, headers, url = "GET", {}, None
    while argv:
        arg = argv.pop(0)
        if arg == "-I":
            method = "HEAD"
        elif arg == "-X":
            method = argv.pop(0)
        elif arg == "-H":
            key, value = argv.pop(0).split(": ", 1)
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        else:
            url = arg
    with urllib.request.urlopen(urllib.request.Request(url, method=method, headers=headers), timeout=30) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}


def test_cheat_sheet_runs(client, run, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))   # docker login writes here, not to the course's config
    commands = sheet_commands("08_registry.ipynb")
    assert len(commands) >= 12
    client.images.pull("course/registry", tag="2.8")
    client.images.pull("busybox", tag="1.35")
    locked = start_registry(client, run, "sheetlocked", users={"alice": "s3cret"})
    label = f"--label org.dockercourse.managed=true --label org.dockercourse.run={run.id}"
    subs = {"NAME": run.name("sheet"), "REPO": run.name("sheetrepo"), "LOCKED": locked.address}
    outputs = []
    for command in commands:
        if command.startswith("curl "):
            if daemon_host(client) not in ("127.0.0.1", "localhost", "::1"):
                # the cheat sheet publishes on the daemon's loopback (-p 127.0.0.1::5000), which a
                # remote daemon's learner cannot reach: the notebook reads the API through
                # publish_ports (tested above); here only where the daemon is this machine
                continue
            registry_ = LocalRegistry(None, subs["REGISTRY"], f"http://{subs['REGISTRY']}")
            status, headers = _curl(command, {"REGISTRY": subs["REGISTRY"], "REPO": subs["REPO"],
                                              "DIGEST": subs["DIGEST"]})
            assert status < 300, command
            if "-I" in command:
                assert headers["docker-content-digest"] == subs["DIGEST"]
            if "DELETE" in command:
                assert tags(registry_, subs["REPO"]) == []
            continue
        if command.startswith("docker run"):
            command = command.replace("docker run", f"docker run {label}", 1)
        out = run_cli(command, subs, stdin="s3cret" if "--password-stdin" in command else None).stdout
        outputs.append(out)
        if command.startswith("docker port"):
            subs["REGISTRY"] = out.strip().splitlines()[0]
            assert subs["REGISTRY"].startswith("127.0.0.1:")
        if command.startswith("docker push"):
            subs["DIGEST"] = next(line.split()[2] for line in out.splitlines() if ": digest: " in line)
    assert any("Login Succeeded" in out for out in outputs)
    assert any(out.strip() == '["http://127.0.0.1:5765/"]' or "5765" in out for out in outputs)
    assert any(subs["DIGEST"] in out for out in outputs if out.startswith("["))
    client.containers.get(run.name("sheet")).remove(force=True)
