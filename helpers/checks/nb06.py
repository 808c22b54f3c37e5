"""Checks for notebook 06 · Build (Dockerfile, BuildKit): a non-root image, an order that keeps the
cache, a multi-stage image without its build tools."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import docker
from docker.errors import APIError, ImageNotFound

from ..build import BuildFailed, build, run_output, steps, whales, write_context
from ..naming import Run
from . import Result, not_yet, passed

TOOLCHAIN = ("COPY hello.c /src/\n"
             "RUN mkdir -p /opt/toolchain && dd if=/dev/urandom of=/opt/toolchain/cc bs=1024 count=1024 2>/dev/null\n")
COMPILE = ("RUN mkdir -p /out && printf '#!/bin/sh\\necho hello, built with %s from %s\\n' "
           "\"$(ls /opt/toolchain)\" \"$(md5sum < /src/hello.c | cut -c1-8)\" > /out/hello && chmod +x /out/hello\n")
ROOTS = {"", "root", "0", "root:root", "0:0", "root:0", "0:root"}


def exercise_contexts(run: Run) -> dict[str, Path]:
    """The three exercises' context folders, written afresh: ``user``, ``order``, ``slim``."""
    folders = {
        "user": {"Dockerfile": 'FROM busybox:1.35\nCMD ["id", "-u"]\n'},
        "order": {"Dockerfile": "FROM busybox:1.35\nWORKDIR /app\nCOPY . ./\nRUN cp deps.txt installed.txt\n",
                  "deps.txt": f"the libraries of {run.prefix}\n", "src/app.sh": "echo v1\n"},
        "slim": {"hello.c": f"/* {run.prefix} */ int main(void) {{ return 0; }}\n",
                 "Dockerfile": "FROM busybox:1.35\n" + TOOLCHAIN + COMPILE
                               + "RUN cp /out/hello /bin/hello\nCMD [\"hello\"]\n"},
    }
    made = {}
    for name, files in folders.items():
        folder = run.path(f"ex-{name}")
        shutil.rmtree(folder, ignore_errors=True)
        made[name] = write_context(folder, files)
    return made


def _image(client: docker.DockerClient, ref: str, exercise: str):
    try:
        return client.images.get(ref)
    except ImageNotFound:
        return not_yet(exercise, f"there is no image {ref} yet: build your folder with build(docker, client, "
                                 f"FOLDER, {ref!r}, run.labels).")


def _from_busybox(client: docker.DockerClient, image) -> bool:  # noqa: ANN001 (a docker-py Image)
    base = client.images.get("busybox:1.35").attrs["RootFS"]["Layers"]
    return image.attrs["RootFS"]["Layers"][:len(base)] == base


def _run(client: docker.DockerClient, run: Run, ref: str, command: list[str]) -> tuple[int, str] | str:
    try:
        return run_output(client, ref, command, run.labels)
    except APIError as err:  # the container did not start (a USER that does not exist, …)
        return str(getattr(err, "explanation", None) or err)


def check_nonroot(client: docker.DockerClient, run: Run, tag: str = "v1") -> Result:
    """Exercise 6.1: ``run.image("nonroot", tag)``, from busybox:1.35, runs as a user other than root."""
    ref = run.image("nonroot", tag)
    image = _image(client, ref, "6.1")
    if isinstance(image, Result):
        return image
    if not _from_busybox(client, image):
        return not_yet("6.1", f"{ref} is not built FROM busybox:1.35: start your Dockerfile with that line.")
    user = (image.attrs.get("Config") or {}).get("User") or ""
    if user in ROOTS:
        return not_yet("6.1", f"{ref} runs as {user or 'root (no USER)'}: add a USER line naming an ordinary user.")
    ran = _run(client, run, ref, ["id", "-u"])
    if isinstance(ran, str):
        return not_yet("6.1", f"a container of {ref} does not start ({ran}): does the user of USER {user} exist "
                              "in /etc/passwd, or did you give a uid (USER 1000)?")
    code, out = ran
    if code != 0 or out.strip() in ("", "0"):
        return not_yet("6.1", f"`id -u` in a container of {ref} printed {out.strip()!r}: it should be a non-zero uid.")
    return passed("6.1", f"{ref} runs as USER {user} (uid {out.strip()}).")


def check_order(client: docker.DockerClient, run: Run, folder: str | Path) -> Result:
    """Exercise 6.2: with the Dockerfile in ``folder``, a change in ``src/`` re-runs only the last step
    and the install step (``RUN cp deps.txt installed.txt``) stays cached.

    The check builds a copy of the folder, changes ``src/app.sh`` in it, builds again, and reads
    which steps BuildKit took from its cache (``helpers.build.steps``).
    """
    folder = Path(folder)
    if not (folder / "Dockerfile").is_file():
        return not_yet("6.2", f"{folder} has no Dockerfile: run the cell that makes the exercise folders.")
    token = secrets.token_hex(4)
    copy = run.path(f"order-check-{token}")
    shutil.copytree(folder, copy)
    docker_cli = whales(client)
    try:
        first = build(docker_cli, client, copy, run.image("order-check", f"{token}-1"), run.labels)
        (copy / "src" / "app.sh").write_text(f"echo {token}\n")
        second = build(docker_cli, client, copy, run.image("order-check", f"{token}-2"), run.labels)
    except BuildFailed as err:
        return not_yet("6.2", f"the Dockerfile does not build: {err}")
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    done = [s for s in steps(second.log) if not s.instruction.startswith("FROM")]
    install = [s for s in done if s.instruction.startswith("RUN") and "deps.txt" in s.instruction]
    if not install:
        return not_yet("6.2", "keep the install step `RUN cp deps.txt installed.txt` in the Dockerfile.")
    ran = [s for s in done if not s.cached]
    if not install[0].cached:
        return not_yet("6.2", "a change in src/ re-ran the install step: copy only deps.txt before it, and src/ after it.")
    if len(ran) != 1 or ran[0] is not done[-1]:
        names = ", ".join(s.label for s in ran) or "nothing"
        return not_yet("6.2", f"a change in src/ re-ran {names}: only the last step should run.")
    found = _run(client, run, second.tag, ["sh", "-c", "cat $(find / -xdev -name app.sh)"])
    if isinstance(found, str) or token not in found[1]:
        return not_yet("6.2", "the image does not contain src/app.sh: COPY src/ into it as the last step.")
    return passed("6.2", f"a change in src/ re-ran only `{ran[0].instruction}`; the install step came from the cache.")


def check_slim(client: docker.DockerClient, run: Run, tag: str = "v1") -> Result:
    """Exercise 6.3: ``run.image("slim", tag)`` runs ``hello`` and has no ``/opt/toolchain``."""
    ref = run.image("slim", tag)
    image = _image(client, ref, "6.3")
    if isinstance(image, Result):
        return image
    ran = _run(client, run, ref, ["sh", "-c", "hello; test -e /opt/toolchain && echo HAS-TOOLCHAIN; true"])
    if isinstance(ran, str):
        return not_yet("6.3", f"a container of {ref} does not start: {ran}")
    out = ran[1]
    if "hello, built with cc" not in out:
        return not_yet("6.3", f"{ref} does not run hello (it printed {out.strip()[:80]!r}): "
                              "COPY --from=build /out/hello /bin/hello in the last stage.")
    if "HAS-TOOLCHAIN" in out:
        return not_yet("6.3", f"{ref} still has /opt/toolchain: build in a first stage (FROM busybox:1.35 AS build) "
                              "and start the last stage FROM busybox:1.35 again.")
    if not _from_busybox(client, image):
        return not_yet("6.3", f"{ref}'s last stage is not FROM busybox:1.35.")
    return passed("6.3", f"{ref} runs hello and carries no toolchain "
                         f"({len(image.attrs['RootFS']['Layers'])} layers).")
