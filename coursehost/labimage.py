"""The class's lab image: JupyterLab with the course, built offline from Debian packages.

A root file system made of

* the ``lab`` lane of ``versions.toml``: Debian 12's Python 3.11, bash, coreutils and tini with
  their whole dependency closure (C runtime included), unpacked by ``coursehost/debian.py``;
* the pinned Python packages of ``requirements.txt`` as ``./course`` installed them into
  ``.venv`` (same Python minor version, so the same wheels), in ``/usr/local/lib/python3.11/dist-packages``,
  with JupyterLab's data and configuration files; the browser-test driver (playwright) is left out;
* the engine lane's docker CLI and its buildx plugin (notebook 06 builds with BuildKit);
* the course itself (``notebooks/``, ``helpers/``) in ``/home/learner/course``, owned by the
  learner (uid 1000), who runs the lab,
* the learner's notebook notary with every course notebook signed in it (:func:`notary_entries`),
  so the lab opens them trusted, as ``./course open`` does,

in two steps, with no registry and no internet: ``course-lab-base:<hash>`` — everything but the
course, imported with ``docker import`` once per change of the packages (about a minute) — and
``course-lab:<hash>``, the course's files added on top in one layer (``docker commit`` of a
container the files were copied into: seconds), remade whenever a notebook or helper changes.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker

from . import debian, imagekit
from helpers.errors import EngineError

REPO = "course-lab"
ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)
SITE = Path(f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages")
#: What of the virtualenv's packages the lab does not need (the browser tests' driver, 160 MB; the
#: editable install of the course, whose files are copied instead).
LEFT_OUT = ("playwright", "__editable__", "_docker_course_helpers", "docker_course_helpers")
#: The course's own files in the image.
COURSE_FILES = ("notebooks", "helpers", "README.md",
                # for `./course bench --class N`: a learner that checks cells as nbval does
                "bench/__init__.py", "bench/learner.py", "tests/sanitize.cfg")
LEARNER_UID = 1000
HOME = "home/learner"


def _course_sources() -> list[tuple[Path, str]]:
    """(file on this machine, path in the image) of every file of the base image."""
    if f"python{sys.version_info.major}.{sys.version_info.minor}" != "python3.11":
        raise EngineError("The lab image reuses the virtualenv's packages with Debian 12's Python 3.11: "
                          f"make .venv with Python 3.11 (this is {sys.version.split()[0]}).")
    try:
        lane = debian.fetch("lab")
        docker_cli = debian.program("engine", "docker")
        buildx = debian.program("engine", "docker-buildx")
    except debian.AptFailed as err:
        raise EngineError(f"The lab image's Debian packages could not be fetched: {err}.") from None
    files: list[tuple[Path, str]] = []
    for path in sorted(lane.rglob("*")):
        if path.name != ".complete" and (path.is_file() or path.is_symlink()):
            files.append((path, str(path.relative_to(lane))))
    site = VENV / SITE
    for path in sorted(site.rglob("*")):
        rel = path.relative_to(site)
        if rel.parts[0].startswith(LEFT_OUT) or "__pycache__" in rel.parts and rel.parts[0].startswith("pip"):
            continue
        if path.is_file() or path.is_symlink():
            files.append((path, f"usr/local/lib/python3.11/dist-packages/{rel}"))
    for sub in ("share/jupyter", "etc/jupyter"):
        for path in sorted((VENV / sub).rglob("*")):
            if path.is_file():
                files.append((path, f"usr/{sub}/{path.relative_to(VENV / sub)}"))
    files.append((docker_cli, "usr/local/bin/docker"))
    files.append((buildx, "usr/libexec/docker/cli-plugins/docker-buildx"))
    return files


def course_files() -> list[tuple[Path, str]]:
    """(file on this machine, path in the image) of the course's own files (the top layer)."""
    files = []
    for name in COURSE_FILES:
        source = ROOT / name
        for path in ([source] if source.is_file() else sorted(source.rglob("*"))):
            if path.is_file() and "__pycache__" not in path.parts and ".ipynb_checkpoints" not in path.parts:
                files.append((path, f"{HOME}/course/{path.relative_to(ROOT)}"))
    return files


def fingerprint(files: list[tuple[Path, str]]) -> str:
    """A hash of what goes into the image (names, sizes, times) and of how it is made."""
    h = hashlib.sha256(Path(__file__).read_bytes())
    for source, inside in files:
        st = source.lstat()
        h.update(f"{inside} {st.st_size} {int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:12]


def _entries() -> Iterator[tuple[str, bytes]]:
    yield "etc/passwd", (f"root:x:0:0:root:/root:/bin/bash\n"
                         f"learner:x:{LEARNER_UID}:{LEARNER_UID}:learner:/{HOME}:/bin/bash\n").encode()
    yield "etc/group", f"root:x:0:\nlearner:x:{LEARNER_UID}:\n".encode()


def write_rootfs(files: list[tuple[Path, str]], out: Path) -> None:
    """Write the image's root file system as a tar to ``out``."""
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT, dereference=False) as tar:
        for d, mode, uid in (("tmp", 0o1777, 0), ("root", 0o700, 0), ("home", 0o755, 0),
                             (HOME, 0o755, LEARNER_UID), (f"{HOME}/course", 0o755, LEARNER_UID)):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, mode, uid, uid
            tar.addfile(info)
        for name, data in _entries():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        seen: set[str] = set()
        for source, inside in files:
            if inside in seen:
                continue
            seen.add(inside)
            info = tar.gettarinfo(str(source), arcname=inside)
            owner = LEARNER_UID if inside.startswith(f"{HOME}/") else 0
            info.uid = info.gid = owner
            info.uname = info.gname = ""
            if info.isreg():
                with open(source, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
        # Debian's python3.11 package leaves the "python3" name to python3-minimal: the lab's
        # kernels and the spawner call python3
        # and /bin/sh (dash, Debian's, is not needed: bash is there) runs a notebook's `!docker …`
        for name, target in (("usr/bin/python3", "python3.11"), ("bin/sh", "bash")):
            if name not in seen:
                link = tarfile.TarInfo(name)
                link.type, link.linkname = tarfile.SYMTYPE, target
                tar.addfile(link)


def _overrides() -> bytes:
    """JupyterLab's settings for a class, as ``./course open`` sets them (coursehost/lab.py): no
    news prompt, no update check, nothing fetched from the internet."""
    import json

    from .lab import CLASS_SETTINGS
    return (json.dumps(CLASS_SETTINGS, indent=1, sort_keys=True) + "\n").encode()


#: Where the learner's Jupyter server keeps its notary (nbformat.sign.NotebookNotary's defaults:
#: ``nbsignatures.db`` and ``notebook_secret`` in jupyter_core's data dir, ~/.local/share/jupyter),
#: and the folders down to it, the learner's (the server writes to its database).
NOTARY_DIR = f"{HOME}/.local/share/jupyter"
NOTARY_FOLDERS = (f"{HOME}/.local", f"{HOME}/.local/share", NOTARY_DIR)


def notary_entries(files: list[tuple[Path, str]]) -> list[tuple[str, bytes, int]]:
    """The learner's notary, made now, with every course notebook of ``files`` signed in it, as
    ``jupyter trust`` would sign them: (path in the image, content, mode) of ``notebook_secret``
    (a new random secret per image, 0600) and ``nbsignatures.db``. So a class's lab opens the
    course's notebooks trusted, as ``./course open`` does (coursehost/lab.py): their saved
    widgets and SVG pictures show as made, not as text. A notebook the learner edits and saves is
    signed again by their server, with the same secret."""
    from nbformat.sign import NotebookNotary

    from .lab import new_secret, sign

    with tempfile.TemporaryDirectory(prefix="course-notary-") as tmp:
        secret = new_secret()
        notary = NotebookNotary(db_file=str(Path(tmp) / "nbsignatures.db"), secret=secret)
        sign(notary, [source for source, _ in files if source.suffix == ".ipynb"])
        notary.store.close()
        db = (Path(tmp) / "nbsignatures.db").read_bytes()
    return [(f"{NOTARY_DIR}/notebook_secret", secret, 0o600), (f"{NOTARY_DIR}/nbsignatures.db", db, 0o644)]


def _course_tar(files: list[tuple[Path, str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        data = _overrides()
        info = tarfile.TarInfo("usr/share/jupyter/lab/settings/overrides.json")
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
        for folder in NOTARY_FOLDERS:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o755, LEARNER_UID, LEARNER_UID
            tar.addfile(info)
        for name, content, mode in notary_entries(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(content), mode, LEARNER_UID, LEARNER_UID
            tar.addfile(info, io.BytesIO(content))
        for source, inside in files:
            info = tar.gettarinfo(str(source), arcname=inside)
            info.uid = info.gid = LEARNER_UID
            info.uname = info.gname = ""
            with open(source, "rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


def ensure_base(client: docker.DockerClient, say=lambda msg: None) -> str:
    """Build the base image (Debian's Python, the packages, the docker CLI) unless it is there."""
    files = _course_sources()
    ref = f"{REPO}-base:{fingerprint(files)}"
    if imagekit.have(client, ref):
        return ref
    started = time.monotonic()
    say(f"building the class's lab image {ref} from Debian's Python and the pinned packages (once, about a minute)")
    with tempfile.TemporaryDirectory(prefix="course-lab-") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        write_rootfs(files, tar)
        repo, tag = ref.split(":")
        client.api.import_image_from_file(str(tar), repository=repo, tag=tag,
                                          changes=['LABEL org.dockercourse.service="lab-image"'])
    imagekit.remove_older(client, f"{REPO}-base", ref)
    say(f"built {ref} in {time.monotonic() - started:.0f} s")
    return ref


def ensure_image(client: docker.DockerClient, say=lambda msg: None) -> str:
    """The lab image with the course as it is now; returns its name. Builds the base image first
    if need be (:func:`ensure_base`). Raises EngineError (one sentence) when the Debian packages
    cannot be fetched."""
    base = ensure_base(client, say)
    files = course_files()
    ref = f"{REPO}:{base.split(':')[1]}-{fingerprint(files + [(Path(__file__).parent / 'lab.py', 'lab.py')])}"
    if imagekit.have(client, ref):
        return ref
    changes = {"User": str(LEARNER_UID), "WorkingDir": f"/{HOME}/course",
               "Env": [f"HOME=/{HOME}", "PATH=/usr/local/bin:/usr/bin:/bin", f"PYTHONPATH=/{HOME}/course"],
               "Entrypoint": ["/usr/bin/tini", "-g", "--"], "Cmd": ["python3", "-m", "jupyterhub.singleuser"],
               "Labels": {"org.dockercourse.service": "lab-image"}}
    holder = client.containers.create(base, ["true"], network_mode="none",
                                      labels={"org.dockercourse.service": "lab-image-build"})
    try:
        holder.put_archive("/", _course_tar(files))
        repo, tag = ref.split(":")
        client.api.commit(holder.id, repository=repo, tag=tag, conf=changes,
                          message="the course's notebooks and helpers")
    finally:
        holder.remove(force=True)
    imagekit.remove_older(client, REPO, ref)
    return ref
