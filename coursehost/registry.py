"""The course's registry: Debian's docker-registry (distribution 2.8) plus a search front.

Two processes, both on loopback by default:

* the **store** — a real registry (``docker-registry serve``) that images are pushed to;
* the **front** — what daemons are pointed at (``dockerd --registry-mirror=http://FRONT``): it
  passes every read (``GET``/``HEAD /v2/…``, i.e. pulls) through to the store unchanged, and
  answers ``GET /v1/search``, which registry 2.x lacks and ``docker search`` needs, from the
  store's ``/v2/_catalog`` and a small catalogue file of descriptions and stars.

So a plain ``client.images.pull("busybox", tag="1.35")`` is served offline by the mirror, and
``client.images.search("FRONT/busybox")`` (``docker search FRONT/busybox``) works too.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import debian, procs
from helpers.base import REGISTRY_PORT
from helpers.errors import EngineError

FRONT_PORT = REGISTRY_PORT
STORE_PORT = FRONT_PORT + 1
#: The store and the front always listen on loopback. ``COURSE_REGISTRY_LISTEN`` adds addresses
#: (comma-separated) where one more front listens, for daemons on other hosts: a class's dind
#: services, a teacher's LAN address. Never 0.0.0.0: each address is one the teacher chose.
LISTEN = "127.0.0.1"
EXTRA_LISTEN = [a.strip() for a in os.environ.get("COURSE_REGISTRY_LISTEN", "").split(",")
                if a.strip() and a.strip() not in ("127.0.0.1", "localhost")]


def front_address(host: str = "127.0.0.1") -> str:
    return f"{host}:{FRONT_PORT}"


def store_address(host: str = "127.0.0.1") -> str:
    return f"{host}:{STORE_PORT}"


# --- the front ----------------------------------------------------------------------------------

def search_results(term: str, limit: int, catalogue: dict[str, dict[str, Any]],
                   repositories: list[str]) -> dict[str, Any]:
    """The Docker Hub ``/v1/search`` answer for ``term`` over the store's repositories."""
    term = term.lower()
    results = []
    for repo in sorted(repositories):
        shown = repo.removeprefix("library/")
        meta = catalogue.get(repo, {})
        if term not in shown.lower() and term not in meta.get("description", "").lower():
            continue
        results.append({"name": shown, "description": meta.get("description", ""),
                        "star_count": int(meta.get("stars", 0)),
                        "is_official": bool(meta.get("official", repo.startswith("library/"))),
                        "is_automated": bool(meta.get("automated", False))})
    results.sort(key=lambda r: (-r["star_count"], r["name"]))
    results = results[:limit]
    return {"num_pages": 1, "num_results": len(results), "page_size": limit, "page": 1,
            "query": term, "results": results}


def make_handler(store: str, catalogue_file: Path) -> type[BaseHTTPRequestHandler]:
    host, port = store.rsplit(":", 1)

    class Front(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # one access-log line per request
            print(f"{self.address_string()} {fmt % args}", flush=True)

        def _store(self, method: str, path: str) -> http.client.HTTPResponse:
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            # Docker sends several Accept lines (one per manifest type): keep them all.
            headers = {k: ", ".join(self.headers.get_all(k)) for k in ("Accept", "Range", "Authorization")
                       if self.headers.get_all(k)}
            conn.request(method, path, headers=headers)
            return conn.getresponse()

        def _send_json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _search(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            term = (query.get("q") or [""])[0]
            limit = int((query.get("n") or ["25"])[0] or 25)
            resp = self._store("GET", "/v2/_catalog?n=1000")
            repos = json.loads(resp.read() or b"{}").get("repositories") or []
            try:
                catalogue = json.loads(catalogue_file.read_text())
            except (OSError, ValueError):
                catalogue = {}
            self._send_json(200, search_results(term, limit, catalogue, repos))

        def _relay(self, method: str) -> None:
            if not self.path.startswith("/v2/"):
                self._send_json(404, {"errors": [{"code": "NOT_FOUND", "message": "not a registry path"}]})
                return
            resp = self._store(method, self.path)
            body = resp.read() if method == "GET" else b""
            self.send_response(resp.status)
            for key, value in resp.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            length = resp.getheader("Content-Length") if method == "HEAD" else str(len(body))
            self.send_header("Content-Length", length or "0")
            self.end_headers()
            if body:
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.startswith("/v1/search"):
                self._search()
            elif self.path in ("/v1/_ping", "/_ping"):
                self._send_json(200, {})
            else:
                self._relay("GET")

        def do_HEAD(self) -> None:  # noqa: N802
            self._relay("HEAD")

    return Front


def serve_front(listen: str, store: str, catalogue_file: Path) -> None:
    host, port = listen.rsplit(":", 1)
    server = ThreadingHTTPServer((host, int(port)), make_handler(store, catalogue_file))
    server.daemon_threads = True
    print(f"course registry front on {listen}, store {store}", flush=True)
    server.serve_forever()


# --- starting both ------------------------------------------------------------------------------

def store_config(state: Path, listen: str) -> str:
    return f"""version: 0.1
log:
  level: info
  fields:
    service: course-registry
storage:
  filesystem:
    rootdirectory: {state / 'registry' / 'data'}
  delete:
    enabled: true
http:
  addr: {listen}:{STORE_PORT}
"""


def ensure_running(state: Path, python: str) -> None:
    """Start the store and the front unless they already answer."""
    folder = state / "registry"
    folder.mkdir(parents=True, exist_ok=True)
    if not procs.http_ok(f"http://{store_address()}/v2/"):
        (folder / "config.yml").write_text(store_config(state, LISTEN))
        proc = procs.spawn([str(debian.program("registry", "docker-registry")), "serve", str(folder / "config.yml")],
                           folder / "store.log", folder / "store.pid")
        procs.wait_until(lambda: procs.http_ok(f"http://{store_address()}/v2/"),
                         "the course registry's store", folder / "store.log", proc=proc)
    if not procs.http_ok(f"http://{front_address()}/_ping"):
        proc = procs.spawn([python, "-m", "coursehost.registry", "--listen", f"{LISTEN}:{FRONT_PORT}",
                            "--store", store_address(), "--catalogue", str(folder / "catalogue.json")],
                           folder / "front.log", folder / "front.pid")
        procs.wait_until(lambda: procs.http_ok(f"http://{front_address()}/_ping"),
                         "the course registry's front", folder / "front.log", proc=proc)
    for host in EXTRA_LISTEN:
        ensure_front(state, python, host)


def ensure_front(state: Path, python: str, host: str) -> None:
    """One more front, on ``host`` (an address of this machine other daemons reach), relaying to
    the store on loopback. Its own pid file and log: ``front-HOST.pid``, ``front-HOST.log``."""
    if host in ("0.0.0.0", "::", ""):
        raise EngineError("The course registry never listens on every address: set "
                          "COURSE_REGISTRY_LISTEN to the one address your class's daemons reach.")
    folder = state / "registry"
    if procs.http_ok(f"http://{front_address(host)}/_ping"):
        return
    log, pid = folder / f"front-{host}.log", folder / f"front-{host}.pid"
    proc = procs.spawn([python, "-m", "coursehost.registry", "--listen", front_address(host),
                        "--store", store_address(), "--catalogue", str(folder / "catalogue.json")],
                       log, pid)
    procs.wait_until(lambda: procs.http_ok(f"http://{front_address(host)}/_ping"),
                     f"the course registry's front on {host}", log, proc=proc)


def stop_front(state: Path, host: str) -> None:
    procs.stop(state / "registry" / f"front-{host}.pid")


def stop(state: Path) -> None:
    for pidfile in (state / "registry").glob("front-*.pid"):
        procs.stop(pidfile)
    for name in ("front", "store"):
        procs.stop(state / "registry" / f"{name}.pid")


def has_tag(repo: str, tag: str) -> bool:
    """Whether the store holds ``repo:tag`` (e.g. ``library/busybox``, ``1.35``)."""
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    return procs.http_ok(f"http://{store_address()}/v2/{repo}/manifests/{tag}", headers={"Accept": accept})


def main() -> None:
    parser = argparse.ArgumentParser(description="The course registry's front (search + pulls).")
    parser.add_argument("--listen", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--catalogue", required=True, type=Path)
    args = parser.parse_args()
    serve_front(args.listen, args.store, args.catalogue)


if __name__ == "__main__":
    main()
