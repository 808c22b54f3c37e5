"""``./course bench``: the course's numbers on this machine.

Measures, in one run:

* **serial** — one learner runs every notebook in order (one fresh kernel each): the whole
  course's wall time, and each notebook's;
* **parallel** — every notebook at once, each in its own process and kernel (what
  ``./course test`` does with enough workers);
* **fresh clone** — ``git clone`` of this checkout to a temporary folder, the virtualenv
  ``./course`` creates there (uv's and pip's caches are whatever this machine has), and the time until the
  clone's ``./course`` finds the engine ready (the running one: a class machine's engine runs);
* **classroom** — N learners (default 30) completing the whole course at once against the one
  daemon, each its own process and kernels: wall time, failures, peak memory of the machine
  (``/proc/meminfo``: MemTotal - MemAvailable) and objects left behind;
* **overhead** — the course's serial wall time against the bare Docker operations it performs
  (the container, exec, network and image operations seen on the daemon's event stream during
  the serial run, replayed by a plain docker-py script), as a ratio.

Results go to ``bench/results.json`` and a picture to ``bench/results.png``. Several minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import docker

from bench.learner import ROOT, classroom, course_notebooks

HERE = Path(__file__).resolve().parent


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --- the daemon's events during a run ---------------------------------------------------------------

class EventLog(threading.Thread):
    """Every event of the daemon while it runs (the daemon keeps only its last 1000 otherwise)."""

    def __init__(self, client) -> None:  # noqa: ANN001
        super().__init__(daemon=True)
        self.client, self.events, self._stream = client, [], None

    def run(self) -> None:
        self._stream = self.client.events(decode=True)
        try:
            for event in self._stream:
                self.events.append(event)
        except Exception:  # noqa: BLE001 — closed by stop()
            pass

    def stop(self) -> list[dict]:
        time.sleep(0.5)  # let the last events arrive
        if self._stream is not None:
            self._stream.close()
        return self.events


OPERATIONS = {("container", "create"), ("container", "start"), ("container", "destroy"),
              ("container", "exec_start"), ("container", "commit"), ("container", "pause"),
              ("container", "kill"), ("container", "stop"),
              ("network", "create"), ("network", "connect"), ("network", "destroy"),
              ("image", "tag"), ("image", "untag"), ("image", "pull"), ("image", "import"),
              ("volume", "create"), ("volume", "destroy")}


def operations_of(events: list[dict], kernel_pids: set[int]) -> Counter:
    """The Docker operations the learner's kernels made: by owner label, then by run prefix."""
    host = platform.node()
    owners = {f"{host}:{pid}" for pid in kernel_pids}
    ours, prefixes = set(), set()
    for e in events:
        attrs = (e.get("Actor") or {}).get("Attributes") or {}
        owner = attrs.get("org.dockercourse.owner", "")
        if ":".join(owner.split(":")[:2]) in owners:
            ours.add((e.get("Actor") or {}).get("ID"))
            if attrs.get("org.dockercourse.run"):
                prefixes.add(f"dc-{attrs['org.dockercourse.run']}-")
    counts: Counter = Counter()
    for e in events:
        kind, action = e.get("Type"), (e.get("Action") or "").split(":")[0]
        if (kind, action) not in OPERATIONS:
            continue
        actor = e.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        name = attrs.get("name", "")
        if actor.get("ID") in ours or attrs.get("container") in ours or any(p in name for p in prefixes):
            counts[f"{kind} {action}"] += 1
    return counts


def bare_replay(client, counts: Counter) -> float:  # noqa: ANN001
    """The same numbers of operations done by a plain docker-py script: its wall time.

    Its objects carry a Run's names and labels (so the reaper removes them if the bench is
    killed); the timed part is plain docker-py calls.
    """
    from helpers.naming import Run

    run = Run(client, "bench")
    try:
        start = time.monotonic()
        created = [client.containers.create("busybox:1.35", ["sleep", "600"], name=run.name(f"c{i}"),
                                            labels=run.labels) for i in range(counts["container create"])]
        started = created[:counts["container start"]]
        for c in started:
            c.start()
        for _ in range(counts["container exec_start"] if started else 0):
            started[0].exec_run(["true"])
        nets = [client.networks.create(run.name(f"n{i}"), labels=run.labels) for i in range(counts["network create"])]
        for i in range(counts["network connect"] if nets and started else 0):
            try:
                nets[i % len(nets)].connect(started[i % len(started)])
            except docker.errors.APIError:  # already connected: the operation was still made
                pass
        base = client.images.get("busybox:1.35")
        for i in range(counts["image tag"]):
            base.tag(run.name(f"img{i}"), "v1")
        for i in range(counts["image tag"]):
            client.images.remove(run.image(f"img{i}"))
        for c in created:
            c.remove(force=True)
        for n in nets:
            n.remove()
        return time.monotonic() - start
    finally:
        run.cleanup()


# --- the parts ----------------------------------------------------------------------------------------

def serial(client) -> dict[str, Any]:  # noqa: ANN001
    say("serial: one learner runs every notebook in order")
    log = EventLog(client)
    log.start()
    result = classroom(1)
    events = log.stop()
    pids = set(result.pop("kernel_pids", []))
    result["operations"] = dict(operations_of(events, pids))
    return result


def parallel() -> dict[str, Any]:
    say("parallel: every notebook at once, one process and kernel each")
    return classroom(1, groups=[[p] for p in course_notebooks()])


def fresh_clone(docker_host: str) -> dict[str, Any]:
    say("fresh clone: git clone, ./course's virtualenv, engine ready")
    folder = Path(tempfile.mkdtemp(prefix="course-clone-"))
    try:
        t = time.monotonic()
        subprocess.run(["git", "clone", "-q", str(ROOT), str(folder / "course")], check=True)
        clone = time.monotonic() - t
        env = dict(os.environ, DOCKER_HOST=docker_host)
        env.pop("VIRTUAL_ENV", None)
        t = time.monotonic()
        first = subprocess.run(["./course", "engine", "ensure"], cwd=folder / "course", env=env,
                               capture_output=True, text=True)
        venv_and_engine = time.monotonic() - t
        t = time.monotonic()
        second = subprocess.run(["./course", "engine", "ensure"], cwd=folder / "course", env=env,
                                capture_output=True, text=True)
        engine = time.monotonic() - t
        ok = first.returncode == 0 and second.returncode == 0
        return {"ok": ok, "git_clone_seconds": round(clone, 1),
                "venv_seconds": round(venv_and_engine - engine, 1), "engine_ready_seconds": round(engine, 1),
                "total_seconds": round(clone + venv_and_engine, 1),
                "error": "" if ok else (first.stderr + second.stderr)[-500:]}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def machine() -> dict[str, Any]:
    mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) // 1024
    return {"cpus": os.cpu_count(), "memory_mb": mem, "python": platform.python_version(),
            "load_before": os.getloadavg()[0], "notebooks": [p.name for p in course_notebooks()]}


# --- the picture -----------------------------------------------------------------------------------

def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    per = results["serial"]["per_notebook_seconds"]
    names = [n.split("_", 1)[0] for n in per]
    axes[0].bar(names, [v[0] for v in per.values()], color="#4c72b0")
    axes[0].set_title("each notebook, alone (s)")
    walls = {"serial": results["serial"]["wall_seconds"], "parallel": results["parallel"]["wall_seconds"]}
    if results.get("classroom"):
        walls[f"{results['classroom']['learners']} learners"] = results["classroom"]["wall_seconds"]
    if results.get("fresh_clone", {}).get("ok"):
        walls["fresh clone"] = results["fresh_clone"]["total_seconds"]
    axes[1].bar(list(walls), list(walls.values()), color="#55a868")
    axes[1].set_title("whole course, wall time (s)")
    if results.get("classroom"):
        c = results["classroom"]
        axes[2].bar(["before", "peak"], [c["memory_baseline_mb"], c["memory_peak_mb"]], color="#c44e52")
        axes[2].set_title(f"machine memory, {c['learners']} learners (MB)")
    for ax in axes:
        ax.tick_params(axis="x", labelrotation=20)
    fig.suptitle(f"Docker course on {results['machine']['cpus']} cores · overhead vs bare docker-py: "
                 f"{results['overhead']['ratio']}x")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def table(results: dict[str, Any]) -> str:
    """The README's table (markdown)."""
    s, p, o = results["serial"], results["parallel"], results["overhead"]
    rows = [("whole course, serial (one learner)", f"{s['wall_seconds']} s", f"{len(s['failures'])} failures")]
    rows += [(f"· {n}", f"{v[0]} s", "") for n, v in s["per_notebook_seconds"].items()]
    rows.append(("whole course, parallel (every notebook at once)", f"{p['wall_seconds']} s",
                 f"{len(p['failures'])} failures"))
    f = results.get("fresh_clone") or {}
    if f.get("ok"):
        rows.append(("fresh clone: git clone + virtualenv + engine ready", f"{f['total_seconds']} s",
                     f"clone {f['git_clone_seconds']} s, venv {f['venv_seconds']} s, engine {f['engine_ready_seconds']} s"))
    c = results.get("classroom")
    if c:
        rows.append((f"classroom: {c['learners']} learners, whole course at once", f"{c['wall_seconds']} s",
                     f"{len(c['failures'])} failures, {len(c['leaked_runs'])} runs leaked, "
                     f"peak memory {c['memory_peak_mb']} MB (+{c['memory_added_mb']} MB)"))
    rows.append(("course / bare docker-py for the same operations", f"{o['ratio']}x",
                 f"bare {o['bare_seconds']} s for {sum(o['operations'].values())} operations"))
    lines = ["| measure | result | detail |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./course bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=30, help="learners at once in the classroom (0: skip)")
    parser.add_argument("--no-clone", action="store_true", help="skip the fresh-clone measure")
    parser.add_argument("--out", type=Path, default=HERE, help="folder for results.json and results.png")
    parser.add_argument("--class", dest="klass", type=int, default=0, metavar="N",
                        help="only this: a class of N learners signed in through JupyterHub (./course class), "
                             "each running the whole course in their own lab against their own daemon")
    args = parser.parse_args(argv)
    if args.klass > 0:
        from bench import hubclass
        say(f"a class of {args.klass}: signing them in through JupyterHub, then the whole course in every seat")
        found = hubclass.run(args.klass)
        found["machine"] = machine()
        found["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"results-class-{args.klass}.json").write_text(json.dumps(found, indent=1))
        s = found["seat_startup_seconds"]
        print(f"| class of {args.klass} on {found['cores']} cores | {found['course_wall_seconds']} s | "
              f"{len(found['failures'])} failed cells, {len(found['left_behind'])} objects left, peak memory "
              f"{found['memory_peak_mb']} MB (+{found['memory_added_mb']} MB), seat start-up {s['min']}–{s['max']} s "
              f"(median {s['median']}), class start {found['class_start_seconds']} s |")
        return 1 if found["failures"] or found["left_behind"] else 0

    from helpers.connection import connect

    client = connect()
    results: dict[str, Any] = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every part, so a long run that is stopped keeps what it measured
        (args.out / "results.json").write_text(json.dumps(results, indent=1))

    results["serial"] = serial(client)
    save()
    results["parallel"] = parallel()
    save()
    say("overhead: the same operations by a plain docker-py script")
    ops = Counter(results["serial"]["operations"])
    bare = bare_replay(client, ops)
    results["overhead"] = {"operations": dict(ops), "bare_seconds": round(bare, 1),
                           "course_seconds": results["serial"]["wall_seconds"],
                           "ratio": round(results["serial"]["wall_seconds"] / max(bare, 0.01), 1)}
    if not args.no_clone:
        from helpers.connection import COURSE_SOCKET
        results["fresh_clone"] = fresh_clone(os.environ.get("DOCKER_HOST") or COURSE_SOCKET)
        save()
    if args.learners > 0:
        say(f"classroom: {args.learners} learners run the whole course at once")
        results["classroom"] = classroom(args.learners)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    results["machine"]["load_after"] = os.getloadavg()[0]
    save()
    plot(results, args.out / "results.png")
    print(table(results))
    failed = results["serial"]["failures"] or (results.get("classroom") or {}).get("failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
