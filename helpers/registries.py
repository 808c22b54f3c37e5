"""A registry of your own (notebook 08): start one as a container, and read its HTTP API as tables.

A registry speaks the *Distribution API* (``/v2/…``, the OCI distribution spec): ``GET /v2/``
answers ``{}`` when the registry is there, ``/v2/_catalog`` lists repositories,
``/v2/NAME/tags/list`` a repository's tags, ``/v2/NAME/manifests/REF`` a manifest by tag or
digest (its digest in the ``Docker-Content-Digest`` header), and ``DELETE`` of a manifest by
digest removes it when the registry allows deletes (``REGISTRY_STORAGE_DELETE_ENABLED=true``).
Docs: distribution's ``docs/spec/api.md``; https://github.com/opencontainers/distribution-spec.

Two addresses name one registry here. The **daemon** pushes and pulls at ``127.0.0.1:PORT`` on
its own host: a registry on loopback needs no TLS, since ``127.0.0.0/8`` is in every daemon's
``InsecureRegistryCIDRs`` (moby ``registry/config.go``). This **notebook** reads the API at the
daemon's host (:func:`helpers.daemon_host`), which for a remote daemon (a dind service) is
another machine: the container then publishes port 5000 on both addresses.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
from docker.errors import APIError, ImageNotFound
from docker.models.containers import Container
from docker.models.images import Image

from .connection import daemon_host
from .errors import BadInput, CourseError, ImageNotAvailable, NotFound
from .naming import Run

if TYPE_CHECKING:  # pandas is imported on first use, as helpers.tables does
    import pandas as pd

#: The course's registry image: Debian's docker-registry (distribution 2.8) on the busybox layer,
#: built offline by the course (coursehost/registry_image.py) and served by the course registry.
REGISTRY_REPO = "course/registry"
REGISTRY_TAG = "2.8"
REGISTRY_IMAGE = f"{REGISTRY_REPO}:{REGISTRY_TAG}"
PORT = "5000/tcp"
#: Where :func:`start_registry` puts the htpasswd file inside the container.
HTPASSWD_PATH = "/auth/htpasswd"
#: Every manifest kind a registry may hold: Docker's and OCI's, single images and indexes.
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])
#: What the registry logs once it accepts connections (distribution's ``registry/registry.go``).
LISTENING = b"listening on"

Auth = tuple[str, str] | None


@dataclass(frozen=True)
class LocalRegistry:
    """A registry container of this run and its two addresses.

    ``address`` is what image names start with (``127.0.0.1:PORT``, the daemon's view);
    ``url`` is where this notebook reaches the HTTP API (``http://HOST:PORT``).
    """

    container: Container
    address: str
    url: str
    auth: Auth = None

    def ref(self, repository: str, tag: str = "v1") -> str:
        """``127.0.0.1:PORT/REPOSITORY:TAG``: the name to tag an image with to push it here."""
        return f"{self.address}/{repository}:{tag}"


# --- the image and the container ------------------------------------------------------------------

def pull_registry_image(client: docker.DockerClient) -> Image:
    """Pull ``course/registry:2.8`` (through the daemon's mirror, the course registry); returns it.

    Raises :class:`ImageNotAvailable` with one sentence when no registry the daemon reaches has it
    (a daemon not pointed at the course registry: README, "Run it in a class").
    """
    try:
        return client.images.pull(REGISTRY_REPO, tag=REGISTRY_TAG)
    except APIError:
        raise ImageNotAvailable(
            f"{REGISTRY_IMAGE} could not be pulled: it is built by the course and served by the course "
            "registry, so start this daemon with the course registry as its mirror (README, 'Run it in a "
            "class'), or run ./course engine start on the course's own engine.") from None


def publish_ports(client: docker.DockerClient) -> dict[str, Any]:
    """The ``ports=`` value for a registry container: port 5000 on the daemon host's loopback
    (where the daemon pushes) and, for a remote daemon, on its host address too (where this
    notebook reads the API). Docker picks a free port for each (``-p 127.0.0.1::5000``)."""
    host = daemon_host(client)
    if host in ("127.0.0.1", "localhost", "::1"):
        return {PORT: ("127.0.0.1", None)}
    return {PORT: [("127.0.0.1", None), (host, None)]}


def registry_of(client: docker.DockerClient, container: Container, auth: Auth = None) -> LocalRegistry:
    """The :class:`LocalRegistry` of a running registry container started with :func:`publish_ports`.

    Raises :class:`NotFound` when the container publishes no port 5000 on loopback.
    """
    container.reload()
    bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get(PORT) or []
    by_ip = {b["HostIp"]: int(b["HostPort"]) for b in bindings}
    if "127.0.0.1" not in by_ip:
        raise NotFound(f"{container.name} publishes no {PORT} on 127.0.0.1: run it with "
                       "ports=publish_ports(client).")
    host = daemon_host(client)
    api_port = by_ip.get(host, by_ip["127.0.0.1"])
    return LocalRegistry(container, f"127.0.0.1:{by_ip['127.0.0.1']}", f"http://{host}:{api_port}", auth)


def wait_until_listening(container: Container, timeout: float = 60) -> None:
    """Follow the container's log until the registry says it listens (``listening on [::]:5000``).

    Raises :class:`CourseError` if the container exits first, or after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    stream = container.logs(stream=True, follow=True)
    try:
        for line in stream:
            if LISTENING in line:
                return
            if time.monotonic() > deadline:
                break
    finally:
        stream.close()
    container.reload()
    tail = container.logs(tail=3).decode(errors="replace").strip().splitlines()
    raise CourseError(f"The registry {container.name} did not start listening ({container.status}): "
                      + (tail[-1] if tail else "no log"))


def htpasswd_line(user: str, password: str, rounds: int = 5) -> str:
    """One line of an htpasswd file, ``user:$2b$05$…``, as ``htpasswd -Bbn user password`` prints.

    The registry's htpasswd authentication accepts **bcrypt** hashes only (distribution's
    ``registry/auth/htpasswd``); cost 5 is htpasswd's default for ``-B``. Every request is checked
    against the hash, so a higher cost slows every push. Raises :class:`BadInput` for an empty or
    non-string user or password, or a user with ``:`` in it.
    """
    import bcrypt

    if not isinstance(user, str) or not user or ":" in user or "\n" in user:
        raise BadInput(f"a user name is a non-empty string without ':' or newlines, not {user!r}.")
    if not isinstance(password, str) or not password:
        raise BadInput("the password should be a non-empty string.")
    if not isinstance(rounds, int) or not 4 <= rounds <= 31:
        raise BadInput(f"bcrypt's cost is an int from 4 to 31, not {rounds!r}.")
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=rounds)).decode()}"


def _file_tar(path: str, text: str) -> bytes:
    buf = io.BytesIO()
    data = text.encode()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def start_registry(client: docker.DockerClient, run: Run, what: str = "registry",
                   users: dict[str, str] | None = None, delete: bool = True,
                   environment: dict[str, str] | None = None) -> LocalRegistry:
    """Run ``course/registry:2.8`` as this run's container ``run.name(what)``; returns it when it listens.

    The same as ``docker run -d -p 127.0.0.1::5000 -e REGISTRY_STORAGE_DELETE_ENABLED=true
    course/registry:2.8``. With ``users`` (name -> password) it also writes an htpasswd file into
    the container before it starts and turns on basic authentication (``REGISTRY_AUTH=htpasswd``;
    distribution's configuration docs, "auth"). Raises :class:`BadInput` for a bad ``users``.
    """
    if users is not None and (not isinstance(users, dict) or not users):
        raise BadInput(f"users should be a dict of user name to password, like {{'alice': 's3cret'}}, not {users!r}.")
    env = {"REGISTRY_STORAGE_DELETE_ENABLED": "true" if delete else "false", **(environment or {})}
    lines = [htpasswd_line(u, p) for u, p in (users or {}).items()]
    if lines:
        env.update(REGISTRY_AUTH="htpasswd", REGISTRY_AUTH_HTPASSWD_REALM="course registry",
                   REGISTRY_AUTH_HTPASSWD_PATH=HTPASSWD_PATH)
    container = client.containers.create(REGISTRY_IMAGE, name=run.name(what), labels=run.labels,
                                         environment=env, ports=publish_ports(client))
    if lines:
        container.put_archive("/", _file_tar(HTPASSWD_PATH, "\n".join(lines) + "\n"))
    container.start()
    wait_until_listening(container)
    return registry_of(client, container)


# --- the HTTP API -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    """One HTTP answer of a registry: status, headers (lower-case names), body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


def _base(registry: LocalRegistry | str) -> tuple[str, Auth]:
    if isinstance(registry, LocalRegistry):
        return registry.url, registry.auth
    if isinstance(registry, str) and registry.startswith(("http://", "https://")):
        return registry.rstrip("/"), None
    raise BadInput(f"pass a registry from start_registry(), or its API URL like 'http://127.0.0.1:5000', "
                   f"not {registry!r}.")


def request(registry: LocalRegistry | str, path: str, method: str = "GET", auth: Auth = None,
            headers: dict[str, str] | None = None) -> Answer:
    """Send one request to the registry's API; returns the :class:`Answer`, whatever its status.

    ``auth`` (user, password) is sent as HTTP basic authentication; by default a
    :class:`LocalRegistry`'s own. Raises :class:`CourseError` when nothing answers there.
    """
    base, own = _base(registry)
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadInput(f"path is an API path like '/v2/_catalog', not {path!r}.")
    req = urllib.request.Request(base + path, method=method, headers=dict(headers or {}))
    user = auth if auth is not None else own
    if user:
        token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (a registry of this run)
            return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        return Answer(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise CourseError(f"No registry answers at {base} ({reason}): is its container running?") from None


def _ok(answer: Answer, what: str) -> Answer:
    """``answer`` if it is a success; else the registry's own error code as one sentence."""
    if answer.status < 300:
        return answer
    try:
        errors = answer.json().get("errors") or []
        code = ", ".join(f"{e.get('code')} ({e.get('message')})" for e in errors)
    except (ValueError, AttributeError):
        code = answer.body.decode(errors="replace").strip()[:80]
    said = f"{answer.status} {code}" if code else str(answer.status)
    if answer.status == 401:
        raise CourseError(f"The registry wants a user for {what} ({said}): pass auth=(user, password).")
    if answer.status == 404:
        raise NotFound(f"The registry has no {what} ({said}).")
    if answer.status == 405:
        raise CourseError(f"The registry refused {what} ({said}): deletes need "
                          "REGISTRY_STORAGE_DELETE_ENABLED=true.")
    raise CourseError(f"The registry answered {said} to {what}.")


def _repo(repository: object) -> str:
    if not isinstance(repository, str) or not repository or repository.startswith("/") or ":" in repository:
        raise BadInput(f"a repository is a name like 'dc-1a2b3c-hello' (no registry address, no tag), "
                       f"not {repository!r}.")
    return repository


def repositories(registry: LocalRegistry | str, auth: Auth = None) -> list[str]:
    """The registry's repositories (``GET /v2/_catalog``), sorted."""
    answer = _ok(request(registry, "/v2/_catalog?n=1000", auth=auth), "catalog")
    return sorted(answer.json().get("repositories") or [])


def tags(registry: LocalRegistry | str, repository: str, auth: Auth = None) -> list[str]:
    """A repository's tags (``GET /v2/NAME/tags/list``), sorted; [] when it has none left.

    Raises :class:`NotFound` when the registry has no such repository.
    """
    answer = _ok(request(registry, f"/v2/{_repo(repository)}/tags/list", auth=auth), f"repository {repository}")
    return sorted(answer.json().get("tags") or [])


def manifest_digest(registry: LocalRegistry | str, repository: str, reference: str, auth: Auth = None) -> str:
    """The digest of the manifest ``repository:reference`` (a tag or a digest), from
    ``HEAD /v2/NAME/manifests/REF``'s ``Docker-Content-Digest`` header.

    Raises :class:`NotFound` when the registry has no such manifest.
    """
    if not isinstance(reference, str) or not reference:
        raise BadInput(f"reference is a tag like 'v1' or a digest 'sha256:…', not {reference!r}.")
    answer = _ok(request(registry, f"/v2/{_repo(repository)}/manifests/{reference}", "HEAD", auth,
                         {"Accept": MANIFEST_TYPES}), f"manifest {repository}:{reference}")
    return answer.headers["docker-content-digest"]


def delete_manifest(registry: LocalRegistry | str, repository: str, digest: str, auth: Auth = None) -> int:
    """``DELETE /v2/NAME/manifests/DIGEST``: remove a manifest, and with it every tag that points
    to it; returns the status (202 Accepted). A tag is not accepted, only a digest (the API
    deletes by content, never by name). The layers stay on disk until the registry's garbage
    collector runs (``registry garbage-collect CONFIG``).

    Raises :class:`NotFound` for an unknown digest, :class:`CourseError` when deletes are off.
    """
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise BadInput(f"a manifest is deleted by its digest 'sha256:…' (manifest_digest() finds it), "
                       f"not {digest!r}.")
    answer = _ok(request(registry, f"/v2/{_repo(repository)}/manifests/{digest}", "DELETE", auth),
                 f"deleting manifest {digest[:19]}… of {repository}")
    return answer.status


def catalog_table(registry: LocalRegistry | str, auth: Auth = None) -> "pd.DataFrame":
    """The catalog as a table: one row per repository, with its tags (``/v2/_catalog`` +
    ``/v2/NAME/tags/list``)."""
    import pandas as pd

    rows = [{"repository": repo, "tags": ", ".join(tags(registry, repo, auth)) or "(none)"}
            for repo in repositories(registry, auth)]
    return pd.DataFrame(rows, columns=["repository", "tags"])


def tags_table(registry: LocalRegistry | str, repository: str, auth: Auth = None) -> "pd.DataFrame":
    """One row per tag of ``repository``, with the digest of the manifest it points to, shortened
    as the CLI shortens ids (``sha256:`` and 12 hex digits: tags with one digest are one manifest)."""
    import pandas as pd

    rows = [{"repository": repository, "tag": tag,
             "digest": manifest_digest(registry, repository, tag, auth)[:19] + "…"}
            for tag in tags(registry, repository, auth)]
    return pd.DataFrame(rows, columns=["repository", "tag", "digest"])


# --- credentials ------------------------------------------------------------------------------------

def credentials_table(config_dir: str | Path) -> "pd.DataFrame":
    """What ``docker login`` stored in ``config_dir/config.json``: one row per registry.

    ``auths.REGISTRY.auth`` is ``base64("user:password")`` — encoded, **not** encrypted; with a
    credential helper (``credsStore`` / ``credHelpers``) the entry is empty and the secret lives
    in the helper's store (docs.docker.com/reference/cli/docker/login/#credential-stores).
    Raises :class:`NotFound` when there is no config.json there.
    """
    import pandas as pd

    config = Path(config_dir) / "config.json"
    if not config.is_file():
        raise NotFound(f"{config} does not exist: docker login writes it (DOCKER_CONFIG picks the folder).")
    data = json.loads(config.read_text() or "{}")
    rows = []
    for registry, entry in sorted((data.get("auths") or {}).items()):
        auth = entry.get("auth") or ""
        user = base64.b64decode(auth).decode(errors="replace").split(":", 1)[0] if auth else ""
        helper = (data.get("credHelpers") or {}).get(registry) or data.get("credsStore") or ""
        rows.append({"registry": registry, "auth (base64)": auth or "(empty)", "user": user or "(in the helper)",
                     "credential helper": helper or "(none)"})
    return pd.DataFrame(rows, columns=["registry", "auth (base64)", "user", "credential helper"])


def cli_env(config_dir: str | Path) -> dict[str, str]:
    """The environment for running the ``docker`` CLI against the same daemon as ``connect()``,
    with ``DOCKER_CONFIG=config_dir`` so ``docker login`` writes there, not to your own
    ``~/.docker/config.json``."""
    from .connection import find_daemon

    env = dict(os.environ, DOCKER_CONFIG=str(config_dir))
    if "DOCKER_HOST" not in os.environ:
        found = find_daemon()
        if found is not None and found[1].base_url:
            env["DOCKER_HOST"] = found[1].base_url
    return env


def docker_cli(args: list[str], config_dir: str | Path, stdin: str | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``docker ARGS`` with :func:`cli_env` (``DOCKER_CONFIG=config_dir``); returns the finished
    process (``.returncode``, ``.stdout``, ``.stderr``). Raises :class:`CourseError` when no
    ``docker`` program is on the PATH."""
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise BadInput(f"args is a list of strings like ['login', '--username', 'alice', ...], not {args!r}.")
    env = cli_env(config_dir)
    program = shutil.which("docker", path=env.get("PATH"))
    if program is None:
        raise CourseError("No docker command is on the PATH: open the course with ./course open (it puts one "
                          "there), or install the docker CLI.")
    return subprocess.run([program, *args], input=stdin, capture_output=True, text=True, env=env, timeout=timeout)


def pushed_digest(lines: list[dict[str, Any]]) -> str:
    """The digest a push reported (``TAG: digest: sha256:… size: N``), from ``images.push(…,
    stream=True, decode=True)``'s messages; raises :class:`CourseError` with the daemon's error."""
    for line in lines:
        if "error" in line:
            raise CourseError(f"The push failed: {line['error']}")
    for line in lines:
        status = line.get("status") or ""
        if ": digest: sha256:" in status:
            return status.split(": digest: ", 1)[1].split()[0]
    raise CourseError("The push reported no digest: did it push anything?")


def local_digests(client: docker.DockerClient, ref: str) -> list[str]:
    """The digests in the local image ``ref``'s RepoDigests (``NAME@sha256:…``), for any name."""
    try:
        image = client.images.get(ref)
    except ImageNotFound:
        raise NotFound(f"There is no local image {ref}.") from None
    return sorted({d.split("@", 1)[1] for d in image.attrs.get("RepoDigests") or []})
