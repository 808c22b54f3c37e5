"""Read a notebook's Summary cheat sheet so a test can run every CLI form in it.

The Summary section holds a markdown table whose first column is the CLI form as the notes write
it, in backticks. :func:`sheet_commands` returns those commands; :func:`run_cli` runs one with the
docker CLI against the same daemon as the tests, after replacing placeholders (NAME, IMAGE, …) with
a run's real objects — so the sheet cannot rot.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from helpers.connection import find_daemon

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def sheet_commands(notebook: str | Path) -> list[str]:
    """The backticked CLI forms in the first column of the notebook's Summary table."""
    nb = json.loads((NOTEBOOKS / notebook if not Path(notebook).is_absolute() else Path(notebook)).read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"])
        if cell["cell_type"] == "markdown" and re.search(r"^## Summary", src, re.M):
            rows = [line for line in src.splitlines() if line.startswith("| `")]
            return [cmd for row in rows for cmd in re.findall(r"`([^`]+)`", row.split("|")[1])]
    raise AssertionError(f"{notebook} has no '## Summary' cheat sheet")


def docker_cli() -> str:
    """The engine lane's docker CLI (versions.toml): the same release as the course's engine."""
    from coursehost import debian
    return str(debian.program("engine", "docker"))


def cli_env() -> dict[str, str]:
    """The environment for the docker CLI: the same daemon the helpers found (DOCKER_HOST, the
    current context, the default socket or the course's own engine)."""
    env = os.environ.copy()
    if "DOCKER_HOST" not in env:
        found = find_daemon()
        if found is not None and found[1].base_url:
            env["DOCKER_HOST"] = found[1].base_url
    return env


#: The containerd image store fails a whole image listing when another client removes an image
#: meanwhile (the errors of moby/moby#46077: its config, or its manifest, "content digest …: not
#: found"): a command that failed so is run again.
LISTING_RACE = re.compile(r"failed to read config content|content digest sha256:[0-9a-f]{64}: not found")
LISTING_ATTEMPTS = 5


def run_cli(command: str, substitutions: dict[str, str] | None = None, check: bool = True,
            stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run one cheat-sheet command (``docker …``) with placeholders replaced (whole words only);
    run again when it failed with :data:`LISTING_RACE` (another run removed an image meanwhile)."""
    for placeholder, value in (substitutions or {}).items():
        command = re.sub(rf"\b{re.escape(placeholder)}\b", value, command)
    argv = shlex.split(command)
    assert argv[0] == "docker", f"not a docker command: {command}"
    for _ in range(LISTING_ATTEMPTS):
        done = subprocess.run([docker_cli(), *argv[1:]], input=stdin, capture_output=True, text=True,
                              timeout=timeout, env=cli_env())
        if done.returncode == 0 or not LISTING_RACE.search(done.stderr):
            break
    if check and done.returncode != 0:
        raise AssertionError(f"`{command}` failed ({done.returncode}): {done.stderr.strip()}")
    return done
