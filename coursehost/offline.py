"""The course registry for a class or a CI job, with no daemon of its own.

A teacher (or a CI job) runs ``python -m coursehost.offline registry --listen ADDRESS`` on a machine
the class's daemons reach: it installs Debian's ``docker-registry`` and ``busybox-static`` if
missing, starts the course registry (store on loopback, fronts on loopback and on ``ADDRESS``)
and pushes the course's images into it over the registry's HTTP API — no Docker daemon needed,
so it works inside an unprivileged CI job next to a ``docker:dind`` service. Then every daemon
started with ``--registry-mirror=http://ADDRESS:5765`` (or ``"registry-mirrors"`` in
``daemon.json``) pulls ``busybox:1.35`` with no internet. README, "Run it in a class".

The image pushed is the one ``docker import`` makes of :func:`coursehost.imagekit.rootfs_tar`
(same layer, same config fields), so outputs match those of the course's own engine.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import http.client
import json
import subprocess
import sys
from pathlib import Path

from . import debian, imagekit, registry
from helpers import connection
from helpers.errors import EngineError

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_blobs(created: str | None = None) -> tuple[bytes, bytes, bytes]:
    """(config, gzipped layer, manifest) of the base image, as ``docker import`` + push make them."""
    layer = imagekit.rootfs_tar()
    packed = gzip.compress(layer, mtime=0)
    # a fixed creation time: the same image, with the same digest, on every machine and engine
    created = created or datetime.datetime.fromtimestamp(imagekit.FIXED_MTIME, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    empty = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
             "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False}
    tail = {"Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None}
    labels = {"org.opencontainers.image.source": "Debian busybox-static",
              "org.opencontainers.image.title": "busybox",
              "org.opencontainers.image.version": imagekit.busybox_version()}
    config = {
        "architecture": "amd64", "comment": "Imported from -",
        "config": {**empty, "Env": ["PATH=/bin"], "Cmd": ["sh"], **tail, "Labels": labels},
        "created": created,
        "history": [{"created": created, "comment": "Imported from -"}],
        "os": "linux", "rootfs": {"type": "layers", "diff_ids": [_digest(layer)]},
    }
    config_bytes = json.dumps(config, separators=(",", ":")).encode()
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                           "size": len(config_bytes), "digest": _digest(config_bytes)},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                            "size": len(packed), "digest": _digest(packed)}]}
    return config_bytes, packed, json.dumps(manifest, indent=3).encode()


def _request(store: str, method: str, path: str, body: bytes = b"",
             headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    host, port = store.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    if resp.status >= 400:
        raise EngineError(f"The course registry refused {method} {path.split('?')[0]} ({resp.status}): "
                          "see .state/registry/store.log.")
    return resp


def push_blob(store: str, repo: str, data: bytes) -> None:
    digest = _digest(data)
    host, port = store.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("HEAD", f"/v2/{repo}/blobs/{digest}")
    if conn.getresponse().status == 200:
        return
    location = _request(store, "POST", f"/v2/{repo}/blobs/uploads/").getheader("Location") or ""
    path = location.split(store, 1)[-1] if "://" in location else location
    sep = "&" if "?" in path else "?"
    _request(store, "PUT", f"{path}{sep}digest={digest}", data,
             {"Content-Type": "application/octet-stream", "Content-Length": str(len(data))})


def publish(store: str, catalogue_file: Path) -> list[str]:
    """Push every catalogue name of the base image to the registry at ``store``; no daemon."""
    config, layer, manifest = image_blobs()
    pushed = []
    for repo, tags in imagekit.TAGS.items():
        push_blob(store, repo, layer)
        push_blob(store, repo, config)
        for tag in tags:
            _request(store, "PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": MANIFEST})
            pushed.append(f"{repo}:{tag}")
    catalogue_file.parent.mkdir(parents=True, exist_ok=True)
    catalogue_file.write_text(json.dumps(imagekit.CATALOGUE, indent=2))
    return pushed


def install_packages() -> None:
    """Fetch the registry lane of ``versions.toml`` (docker-registry, busybox-static)."""
    try:
        debian.fetch("registry")
    except debian.AptFailed as err:
        raise EngineError(f"The course registry's Debian packages could not be fetched: {err}.") from None


def serve(listen: list[str]) -> str:
    """Start the registry (loopback plus ``listen``) with the course's images; returns the mirror URL."""
    install_packages()
    state = connection.STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    registry.ensure_running(state, sys.executable)
    for host in listen:
        registry.ensure_front(state, sys.executable, host)
    if not registry.has_tag("library/" + imagekit.BASE_REPO, imagekit.BASE_TAG):
        publish(registry.store_address(), state / "registry" / "catalogue.json")
    from . import registry_image
    registry_image.ensure(registry.store_address())   # notebook 08's registry image
    return f"http://{registry.front_address(listen[0] if listen else '127.0.0.1')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursehost.offline",
                                     description="The course registry for a class or CI job.")
    sub = parser.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("registry", help="start the course registry with its images; print the mirror URL")
    reg.add_argument("--listen", action="append", default=[],
                     help="an address of this machine the daemons reach (repeatable; never 0.0.0.0)")
    sub.add_parser("stop", help="stop the course registry")
    args = parser.parse_args(argv)
    try:
        if args.command == "registry":
            print(serve(args.listen))
        else:
            registry.stop(connection.STATE_DIR)
    except (EngineError, subprocess.CalledProcessError) as err:
        print(f"[course] {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
