"""Building images with BuildKit from Python, and reading what a build did.

``docker build`` has used BuildKit since Engine 23.0; the Engine API's ``/build`` endpoint that
docker-py's ``client.images.build`` calls still runs the deprecated *classic* builder
(https://docs.docker.com/build/builders/ — "the legacy builder is deprecated"). BuildKit is
driven from Python by python-on-whales, which runs the docker CLI and its buildx plugin
(``docker buildx build``) against the same daemon as docker-py: :func:`whales` makes that client,
:func:`build` runs one build and keeps its plain-progress log, :func:`steps` and
:func:`cache_table` read which steps came from the build cache, and :func:`history_side_by_side`
puts images' ``docker history`` next to each other.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from .errors import BadInput, CourseError, NotFound


class BuildFailed(CourseError):
    """A build stopped with an error (a step failed, or a Dockerfile line is wrong)."""


#: What dockerd 28.5 on the containerd store sometimes answers when a tag is built again right
#: after its previous image went: the build itself is fine, and a second attempt passes.
TRANSIENT = re.compile(r"parent snapshot \S+ does not exist")


def docker_host(client: docker.DockerClient) -> str:
    """The ``DOCKER_HOST`` of the daemon ``client`` talks to, for the docker CLI.

    ``DOCKER_HOST`` itself when set (the CLI then reads the TLS variables too); else the unix
    socket or ``tcp://`` address docker-py connected to. Raises :class:`BadInput` for anything
    but a docker-py client.
    """
    if not isinstance(client, docker.DockerClient):
        raise BadInput(f"docker_host() takes the client from connect(), not {type(client).__name__}.")
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    adapter = getattr(client.api, "_custom_adapter", None)
    socket_path = getattr(adapter, "socket_path", None)
    if socket_path:
        return "unix://" + socket_path
    return client.api.base_url.replace("https://", "tcp://").replace("http://", "tcp://")


def whales(client: docker.DockerClient) -> Any:
    """A ``python_on_whales.DockerClient`` for the same daemon as ``client``, with buildx.

    It runs the ``docker`` found on ``PATH`` (``./course`` puts the engine lane's CLI first and
    points ``DOCKER_CONFIG`` at a folder where its buildx plugin is found). Raises
    :class:`CourseError` in one sentence when there is no docker CLI or it has no buildx plugin.
    """
    from python_on_whales import DockerClient

    cli = shutil.which("docker")
    if cli is None:
        raise CourseError("BuildKit is driven through the docker CLI, and there is no `docker` on PATH: "
                          "open the course with ./course open (it puts the course's CLI first), or install "
                          "the docker CLI with its buildx plugin.")
    host = docker_host(client)
    probe = subprocess.run([cli, "buildx", "version"], capture_output=True, text=True,
                           env=dict(os.environ, DOCKER_HOST=host), timeout=60)
    if probe.returncode != 0:
        raise CourseError(f"The docker CLI at {cli} has no buildx plugin: install docker-buildx (Debian) or "
                          "docker-buildx-plugin (Docker's packages), or open the course with ./course open.")
    return DockerClient(host=host, client_call=[cli])


# --- running a build -----------------------------------------------------------------------------

@dataclass
class Step:
    """One instruction of a build as BuildKit's plain progress reports it."""

    vertex: int          # the ``#N`` of the progress output
    stage: str           # the stage name (``build``, ``stage-1``) or "" for a one-stage build
    index: int           # i of ``[i/n]``
    total: int           # n of ``[i/n]``
    instruction: str     # ``RUN echo hi > /hi``
    cached: bool = False
    error: str = ""

    @property
    def label(self) -> str:
        """``[2/4] RUN …`` or ``[build 2/4] RUN …``, as the progress output writes it."""
        where = f"{self.stage} {self.index}/{self.total}" if self.stage else f"{self.index}/{self.total}"
        return f"[{where}] {self.instruction}"


_NAMED = re.compile(r"^#(\d+) \[(?:(\S+) )?(\d+)/(\d+)\] (.*)$")
_CACHED = re.compile(r"^#(\d+) CACHED$")
_ERROR = re.compile(r"^#(\d+) ERROR: (.*)$")


def steps(log: str | list[str]) -> list[Step]:
    """The Dockerfile steps of a build's ``--progress=plain`` log, in order, with ``cached`` set
    for those BuildKit took from its cache (``#N CACHED``).

    Internal steps (loading the Dockerfile, the context, metadata, exporting) are left out.
    Raises :class:`BadInput` for a log with no step at all (not a plain-progress log).
    """
    lines = log.splitlines() if isinstance(log, str) else [line.rstrip("\n") for line in log]
    found: dict[int, Step] = {}
    for line in lines:
        if m := _NAMED.match(line):
            vertex = int(m[1])
            if vertex not in found:
                found[vertex] = Step(vertex, m[2] or "", int(m[3]), int(m[4]), m[5].strip())
        elif (m := _CACHED.match(line)) and int(m[1]) in found:
            found[int(m[1])].cached = True
        elif (m := _ERROR.match(line)) and int(m[1]) in found:
            found[int(m[1])].error = m[2].strip()
    if not found:
        raise BadInput("That log has no build steps: pass the lines of a build run with progress='plain' "
                       "(what build() returns as .log).")
    return sorted(found.values(), key=lambda s: (s.stage, s.index))


@dataclass
class BuildResult:
    """What :func:`build` returns: the tag, the image, and the plain-progress log."""

    tag: str
    image: Any            # docker.models.images.Image
    log: list[str] = field(repr=False)

    @property
    def steps(self) -> list[Step]:
        return steps(self.log)


def _error_line(log: list[str], fallback: str) -> str:
    errors = [line.split("ERROR: ", 1)[1] for line in log if "ERROR: " in line]
    text = (errors[-1] if errors else fallback.strip().splitlines()[-1] if fallback.strip() else "no output")
    return text.strip()


def build(docker_cli: Any, client: docker.DockerClient, context: str | Path, tag: str,
          labels: Mapping[str, str], *, file: str | Path | None = None, target: str | None = None,
          build_args: Mapping[str, str] | None = None, attempts: int = 3) -> BuildResult:
    """Build ``context`` with BuildKit (``docker buildx build --progress=plain``), tag it ``tag``
    and label it ``labels``; returns a :class:`BuildResult` with the docker-py image and the log.

    Provenance attestations are off (``--provenance=false``): buildx adds them by default on the
    containerd image store only, and they are not this lesson. The build uses the daemon's own
    builder (the ``docker`` driver), which takes ``FROM`` images from the daemon's image store
    when they are there, so ``FROM busybox:1.35`` reaches no registry.

    Raises :class:`NotFound` when ``context`` is not a folder, :class:`BuildFailed` with the
    builder's error line when the build fails. dockerd 28.5 sometimes fails a build with "parent
    snapshot … does not exist" (containerd store); that one error is retried ``attempts`` times.
    """
    from python_on_whales.exceptions import DockerException

    context = Path(context)
    if not context.is_dir():
        raise NotFound(f"There is no build context folder {context}: write the Dockerfile and files "
                       "there first (write_context()).")
    if not isinstance(tag, str) or ":" not in tag:
        raise BadInput(f"Tag the image with run.image('what'), not {tag!r}: its clean-up finds it by that name.")
    for attempt in range(attempts):
        log: list[str] = []
        try:
            for line in docker_cli.buildx.build(
                    context, tags=[tag], labels=dict(labels), file=file, target=target,
                    build_args=dict(build_args or {}), progress="plain", provenance=False,
                    stream_logs=True):
                log.append(line.rstrip("\n"))
        except DockerException as err:
            text = "\n".join(log) + "\n" + (err.stderr or "") + (err.stdout or "")
            if TRANSIENT.search(text) and attempt + 1 < attempts:
                continue
            raise BuildFailed(f"The build of {tag} failed: {_error_line(log, text)}") from None
        return BuildResult(tag, client.images.get(tag), log)
    raise AssertionError("unreachable")


#: What the classic builder on the containerd store answers when an image it looked at as a cache
#: candidate (any image made from the same parent, another learner's included) is removed while it
#: looks: the build aborts, and the same build again passes (seen with a class on one daemon).
VANISHED = re.compile(r'unable to find image "?sha256:[0-9a-f]{64}')


def classic_build(client: docker.DockerClient, context: str | Path, tag: str, labels: Mapping[str, str],
                  attempts: int = 3) -> tuple[Any, list[dict]]:
    """``client.images.build(path=context, tag=tag, labels=labels, rm=True)`` — ``docker build``
    with the classic builder, as docker-py drives it — asked again (up to ``attempts`` times in
    all) when it aborts on an image another run removed meanwhile (:data:`VANISHED`). Returns
    docker-py's ``(Image, log lines as dicts)``; raises docker-py's ``BuildError`` for any other
    failure, or when every attempt met a vanished image."""
    for attempt in range(attempts):
        try:
            image, lines = client.images.build(path=str(context), tag=tag, labels=dict(labels), rm=True)
            return image, list(lines)
        except docker.errors.BuildError as err:
            if not VANISHED.search(str(err)) or attempt + 1 == attempts:
                raise
    raise AssertionError("unreachable")


def write_context(folder: str | Path, files: Mapping[str, str]) -> Path:
    """Write a build context: ``files`` maps a path inside ``folder`` to its text.

    Files that start with ``#!`` are made executable (COPY keeps the mode). Returns ``folder``.
    Raises :class:`BadInput` for a path that leaves the folder or for non-text content.
    """
    folder = Path(folder)
    for name, text in files.items():
        if not isinstance(name, str) or name.startswith("/") or ".." in Path(name).parts:
            raise BadInput(f"{name!r} is not a path inside the context: use names like 'Dockerfile' or 'src/app.sh'.")
        if not isinstance(text, str):
            raise BadInput(f"The content of {name} should be text, not {type(text).__name__}.")
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755 if text.startswith("#!") else 0o644)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- reading builds --------------------------------------------------------------------------------

def cache_table(builds: Mapping[str, BuildResult | str | list[str]]) -> Any:
    """One row per Dockerfile step, one column per build: ``CACHED`` when BuildKit took the step
    from its cache, ``ran`` when it executed it, empty when that build had no such step.

    ``builds`` maps a column title to a :class:`BuildResult` (or a plain-progress log). Steps are
    matched by their position (``[i/n]``, with the stage) so that an edited instruction stays on
    its row; the row shows the instruction as the first build wrote it. ``FROM`` rows are left
    out: the base image is looked up, not built, and BuildKit reports it CACHED or not by chance.
    """
    import pandas as pd

    if not isinstance(builds, Mapping) or not builds:
        raise BadInput("cache_table() takes a dict {title: build result}, e.g. {'first': b1, 'again': b2}.")
    rows: dict[tuple[str, int], dict[str, str]] = {}
    names: dict[tuple[str, int], str] = {}
    for title, result in builds.items():
        log = result.log if isinstance(result, BuildResult) else result
        for step in steps(log):
            if step.instruction.startswith("FROM "):
                continue  # the base image is resolved, not built: its CACHED/DONE varies
            key = (step.stage, step.index)
            names.setdefault(key, step.label)
            rows.setdefault(key, {})[title] = "CACHED" if step.cached else "ran"
    order = sorted(rows)
    frame = pd.DataFrame([rows[k] for k in order], index=[names[k] for k in order], columns=list(builds))
    frame.index.name = "step"
    return frame.fillna("")


def history_side_by_side(histories: Mapping[str, Any],
                         columns: tuple[str, ...] = ("CREATED BY", "COMMENT")) -> Any:
    """``docker history`` of several images next to each other, oldest layer first.

    ``histories`` maps a title to an image (docker-py ``Image``) or its ``history()`` list.
    Columns are a two-level index: (title, column). Long ``CREATED BY`` texts are kept whole.
    """
    import pandas as pd

    from .tables import history_table

    if not isinstance(histories, Mapping) or not histories:
        raise BadInput("history_side_by_side() takes a dict {title: image}, e.g. {'classic': a, 'BuildKit': b}.")
    frames = {}
    for title, value in histories.items():
        rows = value.history() if hasattr(value, "history") else value
        if not isinstance(rows, list):
            raise BadInput(f"{title!r} should be an image or its history() list, not {type(value).__name__}.")
        table = history_table(rows)[list(columns)].iloc[::-1].reset_index(drop=True)
        frames[title] = table
    return pd.concat(frames, axis=1).fillna("")


def run_output(client: docker.DockerClient, image: str, command: list[str] | None = None,
               labels: Mapping[str, str] | None = None, name: str | None = None) -> tuple[int, str]:
    """Run ``image`` to its end (``docker run --rm IMAGE [COMMAND]``); returns (exit code, output).

    The container runs detached and its output is read from its log once it has exited: an
    attached ``docker run`` can lose a short container's output on a busy daemon
    (moby/moby#27289). Its log can too, at the end, under heavy load: once the process has
    exited, dockerd waits at most 2 s for its output to be copied to the log before it closes the
    log (``handleContainerExit`` in moby's ``daemon/monitor.go``). To know an image's files, use
    :func:`image_files`, which runs nothing. The container is removed afterwards.
    """
    container = client.containers.run(image, command, detach=True, labels=dict(labels or {}), name=name)
    try:
        code = container.wait(timeout=120)["StatusCode"]
        return code, container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)


def image_files(client: docker.DockerClient, image: str, folder: str,
                labels: Mapping[str, str] | None = None) -> list[str]:
    """The files (not folders) under ``folder`` in ``image``, as paths relative to it, sorted:
    ``docker create IMAGE`` then ``docker cp CONTAINER:FOLDER -`` (docker-py ``get_archive``),
    read from the tar. Nothing runs, so no output can be lost. The container is removed afterwards.

    Raises :class:`NotFound` (one sentence) when the image has no such folder.
    """
    container = client.containers.create(image, labels=dict(labels or {}))
    try:
        try:
            stream, _ = container.get_archive(folder)
        except docker.errors.NotFound:
            raise NotFound(f"{image[:19]} has no {folder}: look at the Dockerfile's COPY and WORKDIR lines.") from None
        data = b"".join(stream)
    finally:
        container.remove(force=True)
    top = Path(folder.rstrip("/")).name
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return sorted(str(Path(m.name).relative_to(top)) for m in tar.getmembers() if m.isfile())
