"""The offline image kit: the course's base image, built from Debian packages, not Docker Hub.

``busybox:1.35`` here is Debian's ``busybox-static`` (one static binary) plus its applet links,
``/etc/passwd``, ``/etc/group`` and ``/tmp`` — about 2 MB, with sh, httpd, wget, nc, ip and ping:
enough for every topic of the course. The root filesystem tar is built deterministically (sorted
names, fixed times and owners), so its layer digest is the same on every machine.

:func:`publish` imports it into a daemon and pushes it to the course registry as
``library/busybox`` — where a daemon started with ``--registry-mirror`` finds it when a notebook
runs the plain ``client.images.pull("busybox", tag="1.35")``.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import docker

from . import debian
from helpers.errors import EngineError

from helpers.base import BASE_IMAGE, BASE_REPO, BASE_TAG  # noqa: F401 (the names the machinery provides)
FIXED_MTIME = 1672531200  # 2023-01-01T00:00:00Z, so the tar (and its digest) never changes

#: What ``docker search`` shows for the course registry's repositories. Every entry is the same
#: busybox layer under another name; their descriptions and stars exist to teach search filters.
CATALOGUE = {
    "library/busybox": {"description": "Busybox base image: sh and 300 Unix tools in one static binary "
                                       "(built offline from Debian's busybox-static)",
                        "stars": 3300, "official": True, "automated": False},
    "course/busybox-httpd": {"description": "Busybox httpd serving /www on port 80, for the course's "
                                            "networking lessons",
                             "stars": 12, "official": False, "automated": True},
    "course/busybox-tools": {"description": "Busybox with nc, wget, ip and ping for debugging networks "
                                            "from inside a container",
                             "stars": 3, "official": False, "automated": False},
}
TAGS = {"library/busybox": [BASE_TAG, "latest"], "course/busybox-httpd": ["1.0"],
        "course/busybox-tools": ["1.0"]}


def busybox() -> Path:
    """Debian's busybox-static from the registry lane of ``versions.toml`` (fetched if need be)."""
    return debian.program("registry", "busybox")


def busybox_version(binary: Path | None = None) -> str:
    """``1.35.0`` for Debian bookworm's busybox-static."""
    binary = binary or busybox()
    out = subprocess.run([str(binary)], capture_output=True, text=True).stdout
    if not out.startswith("BusyBox v"):
        raise EngineError(f"{binary} is not busybox: check busybox-static in versions.toml.")
    return out.split()[1].lstrip("v")


def _add(tar: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.size, info.linkname = len(data), link
    tar.addfile(info, io.BytesIO(data) if data else None)


def rootfs_tar(binary: Path | None = None) -> bytes:
    """The busybox root filesystem as an uncompressed tar, byte-for-byte reproducible."""
    binary = binary or busybox()
    if not binary.exists():
        raise EngineError(f"{binary} is missing: check busybox-static in versions.toml.")
    applets = subprocess.run([str(binary), "--list"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in ("bin", "etc", "root", "tmp", "www"):
            _add(tar, d, tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755)
        _add(tar, "bin/busybox", tarfile.REGTYPE, 0o755, binary.read_bytes())
        for applet in sorted(set(applets) - {"busybox"}):
            _add(tar, f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
        _add(tar, "etc/passwd", tarfile.REGTYPE, 0o644,
             b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
        _add(tar, "etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\nnobody:x:65534:\n")
        _add(tar, "www/index.html", tarfile.REGTYPE, 0o644, b"<h1>Hello from the Docker course</h1>\n")
    return buf.getvalue()


def publish(client: docker.DockerClient, store: str, catalogue_file: Path) -> list[str]:
    """Import the base image into ``client``'s daemon and push every catalogue name to ``store``.

    The daemon's temporary push tags are removed afterwards, so notebooks really pull.
    Returns the references pushed.
    """
    data = rootfs_tar()
    version = busybox_version()
    labels = {"org.opencontainers.image.title": "busybox",
              "org.opencontainers.image.version": version,
              "org.opencontainers.image.source": "Debian busybox-static"}
    changes = ['CMD ["sh"]', "ENV PATH=/bin"] + [f'LABEL {k}="{v}"' for k, v in labels.items()]
    first = f"{store}/library/{BASE_REPO}"
    client.api.import_image_from_data(data, repository=first, tag=BASE_TAG, changes=changes)
    image = client.images.get(f"{first}:{BASE_TAG}")
    pushed = []
    for repo, tags in TAGS.items():
        for tag in tags:
            ref = f"{store}/{repo}"
            image.tag(ref, tag)
            for line in client.images.push(ref, tag=tag, stream=True, decode=True):
                if "error" in line:
                    raise EngineError(f"Pushing {ref}:{tag} to the course registry failed: {line['error']}")
            pushed.append(f"{repo}:{tag}")
    image.reload()
    for ref in image.tags:
        client.images.remove(ref)
    catalogue_file.parent.mkdir(parents=True, exist_ok=True)
    catalogue_file.write_text(json.dumps(CATALOGUE, indent=2))
    return pushed


def have(client: docker.DockerClient, ref: str) -> bool:
    """Whether ``client``'s daemon has the image ``ref`` (the machinery's images are built once
    per change of what goes into them, and named by a hash of it)."""
    try:
        client.images.get(ref)
        return True
    except docker.errors.ImageNotFound:
        return False


def remove_older(client: docker.DockerClient, repo: str, keep: str) -> None:
    """Remove the images of ``repo`` other than ``keep``: earlier builds, made of what has since
    changed (a Debian upgrade, a new pin, a changed notebook)."""
    for old in client.images.list(name=repo):
        if keep not in old.tags:
            try:
                client.images.remove(old.id, force=True)
            except docker.errors.APIError:
                pass
