"""``course/registry:2.8``: a registry image of the course's own, built offline from Debian's package.

Notebook 08 runs a private registry as a container. Docker Hub's ``registry:2`` is out of reach
offline, so the course builds the same thing from the ``docker-registry`` binary that the
registry lane of ``versions.toml`` already fetches (distribution 2.8, the program the course
registry itself runs):

* **layer 1** is the course's busybox layer, byte for byte (:func:`coursehost.offline.image_blobs`),
  so a daemon that has ``busybox:1.35`` downloads only the second layer, and ``docker exec`` has
  a shell and ``ls`` for looking at the registry's storage;
* **layer 2** is ``/bin/registry`` (Debian's ``/usr/bin/docker-registry``), the C library and
  loader it needs (it is a cgo build: ``ldd`` lists ``libc.so.6`` and ``ld-linux-x86-64.so.2``),
  the configuration file of the official image (``/etc/docker/registry/config.yml``: storage in
  ``/var/lib/registry``, listening on ``:5000``), and the empty storage folder.

The config mirrors Docker Hub's ``registry:2``: ``ENTRYPOINT ["registry"]``,
``CMD ["serve", "/etc/docker/registry/config.yml"]``, ``EXPOSE 5000``, ``VOLUME /var/lib/registry``;
``REGISTRY_*`` environment variables override the file (distribution's configuration docs,
"Override specific configuration options"), e.g. ``REGISTRY_STORAGE_DELETE_ENABLED=true``.

:func:`publish` pushes it over the registry's HTTP API (no Docker daemon needed, as
:mod:`coursehost.offline` does for busybox) to the course registry's store as
``course/registry:2.8``; every daemon that mirrors the course registry then pulls it with a
plain ``client.images.pull("course/registry", tag="2.8")``. :func:`ensure` does so unless it is
there already. All tar members have fixed times and owners, and the gzip stream a fixed header,
so on one machine the digest never changes (the C library is this machine's, unless the registry
lane ships its own ``libc6``: then that one is taken, and the digest is the same everywhere).
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from . import debian, imagekit, offline, registry
from helpers.errors import EngineError

REPO = "course/registry"
#: Where the registry's binary, configuration and data live, as in Docker Hub's registry:2.
BINARY = "bin/registry"
CONFIG_PATH = "etc/docker/registry/config.yml"
DATA_DIR = "var/lib/registry"
CONFIG_YML = b"""version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
"""


def version() -> str:
    """The registry's upstream version from ``versions.toml`` (``2.8.2``)."""
    return debian.version("registry", "docker-registry")


def tag() -> str:
    """The image's tag: major.minor of :func:`version` (``2.8``), as Docker Hub tags ``registry:2.8``."""
    return ".".join(version().split(".")[:2])


def reference() -> str:
    """``course/registry:2.8``: the name a daemon that mirrors the course registry pulls."""
    return f"{REPO}:{tag()}"


def binary() -> Path:
    """Debian's ``docker-registry`` program from the registry lane (fetched if need be)."""
    return debian.program("registry", "docker-registry")


def libraries(program: Path) -> dict[str, Path]:
    """Path in the image -> file, for every library and loader ``ldd`` lists for ``program``.

    A library the registry lane unpacked itself (a ``libc6`` pinned there) is preferred to this
    machine's copy. Raises :class:`EngineError` when ``ldd`` cannot read the program.
    """
    done = subprocess.run(["ldd", str(program)], capture_output=True, text=True)
    if done.returncode != 0:
        if "not a dynamic executable" in done.stdout + done.stderr:
            return {}   # a static build needs nothing more
        raise EngineError(f"ldd could not read {program}: {(done.stderr or done.stdout).strip()}.")
    lane = debian.lane_dir("registry")
    found: dict[str, Path] = {}
    for line in done.stdout.splitlines():
        paths = [part for part in line.split() if part.startswith("/")]
        if not paths:
            continue   # linux-vdso.so.1: provided by the kernel
        path = paths[0]
        own = lane / path.lstrip("/")
        found[path.lstrip("/")] = own if own.exists() else Path(path)
    return found


def _add(tar: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, imagekit.FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data else None)


def layer_tar(program: Path | None = None) -> bytes:
    """The registry layer (on top of busybox's) as an uncompressed, reproducible tar."""
    program = program or binary()
    if not program.exists():
        raise EngineError(f"{program} is missing: check docker-registry in versions.toml.")
    files = {BINARY: program, **libraries(program)}
    dirs = {"etc/docker", "etc/docker/registry", "var", "var/lib", DATA_DIR}
    for name in files:
        parent = Path(name).parent
        while str(parent) not in (".", "bin"):
            dirs.add(str(parent))
            parent = parent.parent
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in sorted(dirs):
            _add(tar, d, tarfile.DIRTYPE, 0o755)
        for name in sorted(files):
            src = files[name]
            _add(tar, name, tarfile.REGTYPE, src.stat().st_mode & 0o755 or 0o644, src.resolve().read_bytes())
        _add(tar, CONFIG_PATH, tarfile.REGTYPE, 0o644, CONFIG_YML)
    return buf.getvalue()


def image_blobs(program: Path | None = None) -> tuple[bytes, list[bytes], bytes]:
    """(config, [gzipped busybox layer, gzipped registry layer], manifest) of the image."""
    base_config, base_layer, _ = offline.image_blobs()
    base = json.loads(base_config)
    layer = layer_tar(program)
    packed = gzip.compress(layer, mtime=0)
    created = datetime.datetime.fromtimestamp(imagekit.FIXED_MTIME, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    labels = {"org.opencontainers.image.source": "Debian docker-registry",
              "org.opencontainers.image.title": "registry",
              "org.opencontainers.image.version": version()}
    config = {
        "architecture": "amd64",
        "config": {**base["config"], "Env": ["PATH=/bin"], "Entrypoint": ["registry"],
                   "Cmd": ["serve", "/" + CONFIG_PATH], "ExposedPorts": {"5000/tcp": {}},
                   "Volumes": {"/" + DATA_DIR: {}}, "Labels": labels},
        "created": created,
        "history": [*base["history"],
                    {"created": created, "created_by": "COPY docker-registry /bin/registry # course",
                     "comment": f"Debian docker-registry {version()}"}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [*base["rootfs"]["diff_ids"], offline._digest(layer)]},
    }
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    layers = [base_layer, packed]
    manifest = {"schemaVersion": 2, "mediaType": offline.MANIFEST,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                           "size": len(config_bytes), "digest": offline._digest(config_bytes)},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                            "size": len(blob), "digest": offline._digest(blob)} for blob in layers]}
    return config_bytes, layers, json.dumps(manifest, indent=3).encode()


def publish(store: str) -> str:
    """Push the image to the registry at ``store`` (``127.0.0.1:5766``) as ``course/registry:2.8``.

    Returns the reference pushed. Raises :class:`EngineError` when the registry refuses a request.
    """
    config, layers, manifest = image_blobs()
    for blob in (*layers, config):
        offline.push_blob(store, REPO, blob)
    offline._request(store, "PUT", f"/v2/{REPO}/manifests/{tag()}", manifest,
                     {"Content-Type": offline.MANIFEST})
    return reference()


def ensure(store: str | None = None) -> bool:
    """Publish the image to the course registry's store unless it holds it; True if it pushed.

    The hook for the course's machinery: :func:`coursehost.engine.ensure_images` and
    :func:`coursehost.offline.serve` call it after the base image is there.
    """
    store = store or registry.store_address()
    if registry.has_tag(REPO, tag()):
        return False
    publish(store)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursehost.registry_image",
                                     description="Publish course/registry to the course registry.")
    parser.add_argument("--store", default=None, help="the registry's store (default: the course's, 127.0.0.1:5766)")
    parser.add_argument("--force", action="store_true", help="push even if the tag is there")
    args = parser.parse_args(argv)
    try:
        if args.force:
            print(publish(args.store or registry.store_address()))
        else:
            print(reference(), "pushed" if ensure(args.store) else "already there")
    except (EngineError, debian.AptFailed, OSError) as err:
        print(f"[course] {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
