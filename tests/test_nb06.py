"""Notebook 06: the build helpers (log parsing, cache table, histories side by side, the retried
containerd-store error), the exercise checks (fail on wrong answers, pass on the solutions), that a
build reaches no registry, and every CLI form of the cheat sheet."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from python_on_whales.exceptions import DockerException

from helpers import BadInput, CourseError, NotFound
from helpers.build import (BuildFailed, build, cache_table, docker_host, history_side_by_side, image_files, steps, whales,
                           write_context)
from helpers.checks import nb06
from helpers.connection import STATE_DIR
from tests.cheatsheet import run_cli, sheet_commands

LOG = """\
#0 building with "default" instance using docker driver

#1 [internal] load build definition from Dockerfile
#1 DONE 0.0s

#5 [build 1/3] FROM docker.io/library/busybox:1.35@sha256:ee7d
#5 CACHED

#6 [build 2/3] COPY deps.txt /app/
#6 CACHED

#7 [build 3/3] RUN make
#7 DONE 0.4s

#8 [stage-1 2/2] COPY --from=build /out/app /bin/app
#8 ERROR: failed to calculate checksum
"""


@pytest.fixture(scope="module")
def docker_cli(client):
    return whales(client)


@pytest.fixture(scope="module", autouse=True)
def base_image(client):
    """BuildKit takes FROM busybox:1.35 from the daemon's store: pull it first, as the notebook does
    (a fresh Docker 26.1 daemon's BuildKit asks the plain-http mirror over https, and fails)."""
    client.images.pull("busybox", tag="1.35")


# --- the helpers, without a daemon ---------------------------------------------------------------

def test_steps_reads_plain_progress():
    found = steps(LOG)
    assert [s.label for s in found] == ["[build 1/3] FROM docker.io/library/busybox:1.35@sha256:ee7d",
                                        "[build 2/3] COPY deps.txt /app/", "[build 3/3] RUN make",
                                        "[stage-1 2/2] COPY --from=build /out/app /bin/app"]
    assert [s.cached for s in found] == [True, True, False, False]
    assert found[-1].error == "failed to calculate checksum"
    assert steps(LOG.splitlines(keepends=True))[2].instruction == "RUN make"
    with pytest.raises(BadInput, match="no build steps"):
        steps("Step 1/3 : FROM busybox:1.35")


def test_cache_table_aligns_steps_and_leaves_out_from():
    again = LOG.replace("#7 DONE 0.4s", "#7 CACHED").replace("RUN make", "RUN make all")
    table = cache_table({"one": LOG, "two": again.splitlines()})
    assert list(table.columns) == ["one", "two"]
    assert not any("FROM" in step for step in table.index)
    assert table.loc["[build 3/3] RUN make"].tolist() == ["ran", "CACHED"]   # matched by position
    partial = cache_table({"one": LOG, "short": "#6 [build 2/3] COPY deps.txt /app/\n#6 CACHED\n"})
    assert partial.loc["[build 3/3] RUN make", "short"] == ""
    with pytest.raises(BadInput):
        cache_table({})
    with pytest.raises(BadInput):
        cache_table(["not", "a", "dict"])


def test_history_side_by_side():
    a = [{"Id": "sha256:" + "a" * 64, "Created": 0, "CreatedBy": "CMD [\"sh\"]", "Size": 0, "Comment": "x"},
         {"Id": "<missing>", "Created": 0, "CreatedBy": "", "Size": 5, "Comment": "Imported from -"}]
    table = history_side_by_side({"a": a, "b": a[1:]})
    assert table[("a", "COMMENT")].tolist() == ["Imported from -", "x"]   # oldest first
    assert table[("b", "CREATED BY")].tolist() == ["", ""]                # padded
    with pytest.raises(BadInput):
        history_side_by_side({"a": "not a history"})
    with pytest.raises(BadInput):
        history_side_by_side({})


def test_write_context(tmp_path):
    folder = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox:1.35\n", "src/run.sh": "#!/bin/sh\n"})
    assert (folder / "Dockerfile").read_text() == "FROM busybox:1.35\n"
    assert os.access(folder / "src/run.sh", os.X_OK) and not os.access(folder / "Dockerfile", os.X_OK)
    with pytest.raises(BadInput, match="inside the context"):
        write_context(tmp_path / "ctx", {"../escape": "x"})
    with pytest.raises(BadInput, match="text"):
        write_context(tmp_path / "ctx", {"data.bin": b"\x00"})


def test_docker_host(client, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://192.0.2.1:2375")
    assert docker_host(client) == "tcp://192.0.2.1:2375"
    monkeypatch.delenv("DOCKER_HOST")
    assert docker_host(client).startswith(("unix://", "tcp://"))
    with pytest.raises(BadInput):
        docker_host("unix:///var/run/docker.sock")


def test_whales_without_cli_says_so(client, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(CourseError, match="no `docker` on PATH"):
        whales(client)


class _FlakyBuildx:
    """A stand-in for python-on-whales' buildx: fails ``failures`` times with ``message``, then builds."""

    def __init__(self, failures: int, message: str) -> None:
        self.calls, self.failures, self.message = 0, failures, message

    def build(self, *args, **kwargs):
        self.calls += 1
        yield "#0 building with \"default\" instance using docker driver\n"
        if self.calls <= self.failures:
            raise DockerException(["docker", "buildx", "build"], 1, b"", self.message.encode())
        yield "#5 [1/1] FROM docker.io/library/busybox:1.35\n"


def test_build_retries_only_the_snapshot_error(client, run):
    folder = write_context(run.path("flaky"), {"Dockerfile": "FROM busybox:1.35\n"})
    flaky = _FlakyBuildx(2, "ERROR: failed to solve: parent snapshot sha256:abc does not exist: not found")
    result = build(SimpleNamespace(buildx=flaky), client, folder, "busybox:1.35", {})
    assert flaky.calls == 3 and result.steps[0].instruction.startswith("FROM")
    broken = _FlakyBuildx(1, "ERROR: failed to solve: dockerfile parse error on line 2: unknown instruction: RUNN")
    with pytest.raises(BuildFailed, match="unknown instruction: RUNN"):
        build(SimpleNamespace(buildx=broken), client, folder, "busybox:1.35", {})
    assert broken.calls == 1
    with pytest.raises(NotFound, match="no build context"):
        build(SimpleNamespace(buildx=flaky), client, run.path("missing"), "busybox:1.35", {})
    with pytest.raises(BadInput, match="run.image"):
        build(SimpleNamespace(buildx=flaky), client, folder, "notag", {})


# --- live builds -----------------------------------------------------------------------------------

def test_failed_step_is_one_sentence(client, run, docker_cli):
    folder = write_context(run.path("fails"), {"Dockerfile": "FROM busybox:1.35\nRUN exit 3\n"})
    with pytest.raises(BuildFailed, match="exit code: 3"):
        build(docker_cli, client, folder, run.image("fails"), run.labels)


def _requests_of_build(tag: str, since: int) -> list[str]:
    """The course engine's debug log lines of the build that exported ``tag`` (found by the
    build's trace id) that are requests to a registry (containerd's resolver logs "do request")."""
    log = (STATE_DIR / "dockerd.log").read_text(errors="replace")[since:]
    trace = re.search(rf'resolve exporter moby with map\[name:{re.escape(tag)}\].*?traceID=(\w+)', log)
    assert trace, f"the daemon's log has no build of {tag}"
    return [line for line in log.splitlines() if f"traceID={trace[1]}" in line and 'msg="do request"' in line]


def test_build_reaches_no_registry(client, run, docker_cli):
    """A build FROM the local busybox:1.35 asks no registry for it: the course engine (dockerd
    --debug) logs each registry request of a build under the build's trace id, and there is none.
    The same build with --pull (which must ask) shows the requests, so the log would tell."""
    if docker_host(client) != f"unix://{STATE_DIR / 'docker.sock'}" or not (STATE_DIR / "dockerd.log").exists():
        pytest.skip("only the course's own engine (dockerd --debug) logs its registry requests here")
    since = (STATE_DIR / "dockerd.log").stat().st_size
    folder = write_context(run.path("offline"), {"Dockerfile": f"FROM busybox:1.35\nRUN echo {run.prefix} > /id\n"})
    build(docker_cli, client, folder, run.image("offline"), run.labels)
    assert _requests_of_build(run.image("offline"), since) == []
    list(docker_cli.buildx.build(folder, tags=[run.image("offline", "pulled")], labels=run.labels, pull=True,
                                 progress="plain", provenance=False, stream_logs=True))
    assert _requests_of_build(run.image("offline", "pulled"), since)


# --- the exercise checks -------------------------------------------------------------------------

def test_check_nonroot(client, run, docker_cli):
    ex = nb06.exercise_contexts(run)
    assert "no image" in nb06.check_nonroot(client, run).message
    build(docker_cli, client, ex["user"], run.image("nonroot"), run.labels)
    assert "runs as root" in nb06.check_nonroot(client, run).message
    for tag, user in (("zero", "0"), ("rootname", "root:root")):
        (ex["user"] / "Dockerfile").write_text(f'FROM busybox:1.35\nUSER {user}\nCMD ["id", "-u"]\n')
        build(docker_cli, client, ex["user"], run.image("nonroot", tag), run.labels)
        assert "runs as" in nb06.check_nonroot(client, run, tag=tag).message
    (ex["user"] / "Dockerfile").write_text('FROM busybox:1.35\nUSER nobody-here\nCMD ["id", "-u"]\n')
    build(docker_cli, client, ex["user"], run.image("nonroot", "ghost"), run.labels)
    assert "does not start" in nb06.check_nonroot(client, run, tag="ghost").message
    (ex["user"] / "Dockerfile").write_text('FROM busybox:1.35\nUSER 1000\nCMD ["id", "-u"]\n')
    build(docker_cli, client, ex["user"], run.image("nonroot", "uid"), run.labels)
    assert nb06.check_nonroot(client, run, tag="uid")


def test_check_order(client, run):
    ex = nb06.exercise_contexts(run)
    assert "re-ran the install step" in nb06.check_order(client, run, ex["order"]).message  # the given Dockerfile
    dockerfile = ex["order"] / "Dockerfile"
    dockerfile.write_text("FROM busybox:1.35\nWORKDIR /app\nCOPY deps.txt ./\nRUN cp deps.txt installed.txt\n"
                          "COPY src/ src/\nRUN ls src\n")
    assert "only the last step should run" in nb06.check_order(client, run, ex["order"]).message
    dockerfile.write_text("FROM busybox:1.35\nWORKDIR /app\nCOPY deps.txt ./\nCOPY src/ src/\n")
    assert "install step" in nb06.check_order(client, run, ex["order"]).message
    dockerfile.write_text("FROM busybox:1.35\nRUNN x\n")
    assert "does not build" in nb06.check_order(client, run, ex["order"]).message
    assert "no Dockerfile" in nb06.check_order(client, run, run.path("nowhere")).message
    dockerfile.write_text("FROM busybox:1.35\nWORKDIR /app\nCOPY deps.txt ./\nRUN cp deps.txt installed.txt\n"
                          "COPY src/ src/\n")
    assert nb06.check_order(client, run, ex["order"])


def test_check_slim(client, run, docker_cli):
    ex = nb06.exercise_contexts(run)
    assert "no image" in nb06.check_slim(client, run).message
    build(docker_cli, client, ex["slim"], run.image("slim"), run.labels)
    assert "still has /opt/toolchain" in nb06.check_slim(client, run).message
    multi = "FROM busybox:1.35 AS build\n" + nb06.TOOLCHAIN + nb06.COMPILE + "FROM busybox:1.35\n"
    (ex["slim"] / "Dockerfile").write_text(multi)                     # forgot to copy the program
    build(docker_cli, client, ex["slim"], run.image("slim", "empty"), run.labels)
    assert "does not run hello" in nb06.check_slim(client, run, tag="empty").message
    (ex["slim"] / "Dockerfile").write_text(multi + "COPY --from=build /out/hello /bin/hello\nCMD [\"hello\"]\n")
    build(docker_cli, client, ex["slim"], run.image("slim", "v2"), run.labels)
    assert nb06.check_slim(client, run, tag="v2")


# --- the cheat sheet -------------------------------------------------------------------------------

def test_cheat_sheet_runs(client, run):
    commands = sheet_commands("06_build.ipynb")
    assert len(commands) >= 9
    context = write_context(run.path("sheet"), {
        "Dockerfile": "FROM busybox:1.35\nARG APP_VERSION=1.0\nLABEL version=$APP_VERSION\nUSER 1000\n"
                      'CMD ["sleep", "60"]\n'})
    multi = write_context(run.path("sheet-multi"), {
        "Dockerfile": "FROM busybox:1.35 AS build\nRUN echo built > /out\nFROM busybox:1.35\n"
                      "COPY --from=build /out /out\n",
        "Dockerfile.single": "FROM busybox:1.35\nRUN echo built > /out\n"})
    box = client.containers.run("busybox:1.35", ["sleep", "60"], name=run.name("sheet"), labels=run.labels,
                                detach=True)
    subs = {"IMAGE": run.name("sheet"), "CONTEXT": str(context), "MULTI": str(multi), "NAME": box.name}
    outputs = [run_cli(command, subs, timeout=180).stdout for command in commands]
    assert any(out.strip() == "1000 [sleep 60]" for out in outputs)
    assert client.images.get(run.image("sheet", "v2")).labels["version"] == "2.0"
    assert client.images.get(run.image("sheet", "build"))
    box.reload()
    assert box.status == "exited"


def test_image_files_reads_the_image_not_a_runs_output(client, run):
    """``image_files`` lists an image's files under a folder without running it (a run's output
    can lose its end under load); a folder the image lacks is named in one sentence."""
    image = client.images.pull("busybox", tag="1.35")
    files = image_files(client, image.id, "/etc", labels=run.labels)
    assert "passwd" in files and all(not f.startswith("/") for f in files)
    with pytest.raises(NotFound, match="has no /nowhere"):
        image_files(client, image.id, "/nowhere", labels=run.labels)
    ours = [f"{k}={v}" for k, v in run.labels.items()]
    assert client.containers.list(all=True, filters={"label": ours}) == [], "image_files left its container"


def test_a_classic_build_that_met_a_vanished_image_is_asked_again():
    """The classic builder on the containerd store aborts when a cache candidate (another run's
    image from the same parent) is removed while it looks; classic_build asks again, and only then."""
    from docker.errors import BuildError

    from helpers.build import classic_build

    class Images:
        def __init__(self, *errors):
            self.errors, self.calls = list(errors), []

        def build(self, **kwargs):
            self.calls.append(kwargs)
            if self.errors:
                raise BuildError(self.errors.pop(0), [])
            return "image", iter([{"stream": "Step 1/2 : FROM busybox:1.35\n"}])

    class Client:
        def __init__(self, images):
            self.images = images

    vanished = 'unable to find image "sha256:' + "1" * 64 + '"'
    once = Images(vanished)
    image, lines = classic_build(Client(once), "/ctx", "dc-x-small:classic", {"a": "b"})
    assert image == "image" and lines == [{"stream": "Step 1/2 : FROM busybox:1.35\n"}] and len(once.calls) == 2
    assert once.calls[0] == {"path": "/ctx", "tag": "dc-x-small:classic", "labels": {"a": "b"}, "rm": True}
    other = Images("The command '/bin/sh -c false' returned a non-zero code: 1")
    with pytest.raises(BuildError):
        classic_build(Client(other), "/ctx", "dc-x-small:classic", {})
    assert len(other.calls) == 1                                   # a real failure is not retried
    always = Images(vanished, vanished, vanished)
    with pytest.raises(BuildError):
        classic_build(Client(always), "/ctx", "dc-x-small:classic", {})
    assert len(always.calls) == 3
