"""Checks for notebook 08 · Registry (push, delete by digest, log in)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import docker

from ..errors import CourseError, NotFound
from ..naming import Run
from ..registries import LocalRegistry, local_digests, manifest_digest, pushed_digest, request, tags
from . import Result, not_yet, passed


def check_push(client: docker.DockerClient, run: Run, registry: LocalRegistry) -> Result:
    """Exercise 8.1: ``run.image("ex")`` pushed to ``registry`` as ``run.name("mine"):v1``."""
    repo, ref = run.name("mine"), registry.ref(run.name("mine"), "v1")
    try:
        have = tags(registry, repo)
    except NotFound:
        return not_yet("8.1", f"the registry has no repository {repo} yet: tag the image as {ref} and push that name.")
    if "v1" not in have:
        return not_yet("8.1", f"{repo} has the tags {have}, not v1: push the tag v1.")
    digest = manifest_digest(registry, repo, "v1")
    try:
        mine = local_digests(client, run.image("ex"))
    except NotFound:
        return not_yet("8.1", f"the image {run.image('ex')} is gone: run the exercises' setup cell again.")
    if digest not in mine:
        return not_yet("8.1", f"{repo}:v1 in the registry is not the image {run.image('ex')}: tag that one and push it.")
    return passed("8.1", f"the registry holds {repo}:v1, the very manifest of {run.image('ex')}.")


def setup_delete(client: docker.DockerClient, run: Run, registry: LocalRegistry) -> dict[str, str]:
    """Exercise 8.2's setup: push two different images as ``run.name("old")``'s tags ``keep`` and ``drop``.

    Returns tag -> digest. Raises :class:`CourseError` if a push fails.
    """
    digests = {}
    for tag in ("keep", "drop"):
        maker = client.containers.run("busybox:1.35", ["sh", "-c", f"echo {tag} > /www/index.html"],
                                      name=run.name(f"old-{tag}"), labels=run.labels, detach=True)
        maker.wait()
        name = f"{registry.address}/{run.name('old')}"
        maker.commit(repository=name, tag=tag)
        digests[tag] = pushed_digest(list(client.images.push(name, tag=tag, stream=True, decode=True)))
        maker.remove()
    return digests


def check_delete(run: Run, registry: LocalRegistry) -> Result:
    """Exercise 8.2: the tag ``drop`` of ``run.name("old")`` deleted from ``registry``, ``keep`` kept."""
    repo = run.name("old")
    try:
        have = tags(registry, repo)
    except NotFound:
        return not_yet("8.2", f"the registry has no repository {repo}: run the exercises' setup cell first.")
    if "keep" not in have:
        return not_yet("8.2", f"the tag keep is gone too: delete only drop's digest (run the setup cell to start again).")
    if "drop" in have:
        return not_yet("8.2", "drop is still there: find its digest with manifest_digest() and delete_manifest() it.")
    return passed("8.2", f"{repo} keeps only {', '.join(have)}: drop's manifest is deleted.")


def check_login(config_dir: object, registry: LocalRegistry) -> Result:
    """Exercise 8.3: ``docker login`` to ``registry`` as bob, with ``DOCKER_CONFIG=config_dir``."""
    if not isinstance(config_dir, (str, Path)):
        return not_yet("8.3", "pass the folder you used as DOCKER_CONFIG, run.path('ex-config').")
    config = Path(config_dir) / "config.json"
    if not config.is_file():
        return not_yet("8.3", f"there is no {config.name} in {Path(config_dir).name} yet: run docker login with "
                              "that folder as DOCKER_CONFIG.")
    try:
        entry = (json.loads(config.read_text() or "{}").get("auths") or {}).get(registry.address)
    except ValueError:
        return not_yet("8.3", f"{config.name} is not JSON: let docker login write it.")
    if not entry or not entry.get("auth"):
        return not_yet("8.3", f"{config.name} has no credentials for {registry.address}: log in to that registry.")
    user, _, password = base64.b64decode(entry["auth"]).decode(errors="replace").partition(":")
    if user != "bob":
        return not_yet("8.3", f"the credentials are {user}'s: log in as bob.")
    try:
        status = request(registry, "/v2/", auth=(user, password)).status
    except CourseError as err:
        return not_yet("8.3", str(err))
    if status != 200:
        return not_yet("8.3", f"those credentials do not open {registry.address} ({status}): log in again.")
    return passed("8.3", f"bob's credentials for {registry.address} are in {config.name}, base64 and working.")
