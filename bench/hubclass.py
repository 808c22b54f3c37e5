"""``./course bench --class N``: a class of N learners on this machine, measured.

It starts the class (``./course class start``), signs N learners in through the hub's REST API
(a service token the bench alone holds: JupyterHub creates each learner and starts their server,
exactly as a sign-in does), and measures each seat's start-up: from the request until the hub
reports the learner's lab ready (its Docker daemon is up before the lab starts). Then every
learner runs the whole course in their own lab, against their own daemon, at once — inside the
lab container, ``bench/learner.py`` checks every cell the way nbval does — while the machine's
memory is sampled 4× a second (``/proc/meminfo``: MemTotal − MemAvailable). Last it stops the
class and counts what is left of it on the daemon.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.learner import report_failures

ROOT = Path(__file__).resolve().parent.parent


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _api(base: str, token: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}/hub/api{path}", data=data, method=method,
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        text = response.read().decode()
    return json.loads(text) if text.strip() else None


def _memory_used_mb() -> float:
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    kb = lambda k: int(info[k].split()[0])  # noqa: E731
    return (kb("MemTotal") - kb("MemAvailable")) / 1024


def run(learners: int, port: int = 8010) -> dict[str, Any]:
    """Measure a class of ``learners``; returns the numbers (see the module's docstring)."""
    import docker

    from coursehost import classroom, engine
    from helpers import connection

    token = secrets.token_hex(24)
    env = dict(os.environ, COURSE_BENCH_TOKEN=token, DOCKER_HOST=f"unix://{engine.socket_path()}")
    base = f"http://127.0.0.1:{port}"
    idle_mb = _memory_used_mb()
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "coursehost.classctl", "start", "--port", str(port)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"./course class start failed: {done.stderr[-2000:]}")
    class_start = time.monotonic() - started
    client = docker.DockerClient(base_url=env["DOCKER_HOST"], timeout=300)
    klass = classroom.class_id(connection.STATE_DIR)
    names = [f"learner{i:02d}" for i in range(1, learners + 1)]
    peak = [idle_mb]
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(0.25):
            peak[0] = max(peak[0], _memory_used_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result: dict[str, Any] = {"learners": learners, "class_start_seconds": round(class_start, 1)}
    try:
        _api(base, token, "POST", "/users", {"usernames": names})

        def seat(name: str) -> float:
            t = time.monotonic()
            _api(base, token, "POST", f"/users/{name}/server", {})
            while True:
                user = _api(base, token, "GET", f"/users/{name}")
                server = (user.get("servers") or {}).get("", {})
                if server.get("ready"):
                    return time.monotonic() - t
                if not server.get("pending") and not server.get("ready") and time.monotonic() - t > 10:
                    raise RuntimeError(f"{name}'s seat did not start (see .state/class/hub.log)")
                time.sleep(0.5)

        t = time.monotonic()
        with ThreadPoolExecutor(max_workers=learners) as pool:
            seats = list(pool.map(seat, names))
        result["seats_up_seconds"] = round(time.monotonic() - t, 1)
        result["seat_startup_seconds"] = {"min": round(min(seats), 1), "median": round(sorted(seats)[len(seats) // 2], 1),
                                          "max": round(max(seats), 1)}
        say(f"{learners} seats up in {result['seats_up_seconds']} s; every learner runs the whole course now")

        def course(name: str) -> dict[str, Any]:
            lab = client.containers.get(classroom.Seat(klass, name).lab)
            notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
            run_ = lab.exec_run(["sh", "-c", "python3 -m bench.learner /tmp/learner.json --tabs 1 "
                                 + " ".join(f"notebooks/{n}" for n in notebooks) + " >/tmp/learner.log 2>&1; "
                                 "cat /tmp/learner.json"], workdir="/home/learner/course")
            return {"failures": report_failures(run_.output.decode(errors="replace"), notebooks)}

        t = time.monotonic()
        with ThreadPoolExecutor(max_workers=learners) as pool:
            reports = list(pool.map(course, names))
        result["course_wall_seconds"] = round(time.monotonic() - t, 1)
        result["failures"] = [[name, *f] for name, r in zip(names, reports) for f in r.get("failures", [])]
    finally:
        stop_sampling.set()
        sampler.join()
        subprocess.run([sys.executable, "-m", "coursehost.classctl", "stop"], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    result["left_behind"] = classroom.leftovers(client, klass)
    result["memory_peak_mb"] = round(peak[0])
    result["memory_added_mb"] = round(peak[0] - idle_mb)
    result["cores"] = os.cpu_count()
    return result
