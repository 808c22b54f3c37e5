"""The reaper removes what a dead kernel left behind — and nothing of a live learner or of
another machine (helpers/reaper.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from helpers import BASE_IMAGE
from helpers.naming import OWNER, RUN, Run, files_root
from helpers.reaper import find_runs, owner_alive, owner_of, process_start, reap

HOST = socket.gethostname()


def objects_of(client, run_id: str) -> list[str]:
    label = {"label": f"{RUN}={run_id}"}
    found = [c["Names"][0] for c in client.api.containers(all=True, filters=label)]
    found += [n["Name"] for n in client.api.networks(filters=label)]
    found += [v["Name"] for v in client.api.volumes(filters=label).get("Volumes") or []]
    found += [t for i in client.api.images() for t in i.get("RepoTags") or [] if f"dc-{run_id}-" in t]
    if (files_root() / f"dc-{run_id}").exists():
        found.append(str(files_root() / f"dc-{run_id}"))
    return found


def make_objects(client, run: Run, labels: dict[str, str] | None = None) -> None:
    """A container, a network, a volume, an image tag and a file, as a notebook would make."""
    labels = labels or run.labels
    client.images.pull("busybox", tag="1.35")
    client.containers.run(BASE_IMAGE, ["sleep", "600"], name=run.name("c"), labels=labels, detach=True)
    client.networks.create(run.name("n"), labels=labels)
    client.volumes.create(run.name("v"), labels=labels)
    client.images.get(BASE_IMAGE).tag(run.name("img"), "v1")
    run.path("data.txt").write_text("x")


# --- owners ------------------------------------------------------------------------------------

def test_owner_of_this_process_is_alive():
    me = owner_of()
    assert me == f"{HOST}:{os.getpid()}:{process_start(os.getpid())}"
    assert owner_alive(me) is True


def test_a_finished_process_is_dead():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    owner = owner_of(child.pid)
    child.wait()
    assert owner_alive(owner) is False


def test_a_reused_pid_is_dead():
    """Same host, same pid, another start time: the pid now belongs to another process."""
    assert owner_alive(f"{HOST}:{os.getpid()}:1") is False


def test_legacy_owner_without_start_time():
    assert owner_alive(f"{HOST}:{os.getpid()}") is True


@pytest.mark.parametrize("owner", ["another-machine:1:1", "another-machine:999999", "nonsense", "", "h:x:1"])
def test_other_machines_and_garbage_are_never_judged(owner):
    assert owner_alive(owner) is None


# --- reaping -----------------------------------------------------------------------------------

KILLED = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from helpers import connect, Run
    from tests.test_reaper import make_objects
    client = connect()
    run = Run(client, "reaper-victim")
    make_objects(client, run)
    print(run.id, flush=True)
    sys.stdin.readline()                              # the test has seen its objects
    os.kill(os.getpid(), 9)                           # the kernel dies: no run.cleanup()
""")


def test_a_killed_process_is_reaped_and_a_live_one_is_not(client, run):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    victim = subprocess.Popen([sys.executable, "-c", KILLED.format(root=root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)
    dead = victim.stdout.readline().strip()
    # While its owner lives, nobody reaps it (other tests make Runs at the same time).
    assert len(objects_of(client, dead)) == 5, victim.stderr.read()   # container, network, volume, tag, files
    victim.communicate("go\n", timeout=60)
    assert victim.returncode == -signal.SIGKILL
    make_objects(client, run)                            # a live learner's run at the same time
    live = set(objects_of(client, run.id))

    newcomer = Run(client, "tests")                      # the next setup cell reaps (or another
    try:                                                 # test's Run got there first)
        assert newcomer.reaped is not None
        assert objects_of(client, dead) == []
        assert set(objects_of(client, run.id)) == live   # the live run is untouched
    finally:
        newcomer.cleanup()


def test_a_killed_kernel_is_reaped(client):
    """The real thing: a Jupyter kernel runs a setup cell and a cell making objects, then is
    killed (a tab closed, a crash); the next run's setup cell leaves 0 objects of it."""
    from bench.learner import start_ipc_kernel, stop_ipc_kernel

    km, kc = start_ipc_kernel(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        out: list[str] = []
        code = ("from helpers import connect, Run\nfrom tests.test_reaper import make_objects\n"
                "client = connect(); run = Run(client, 'kernel-victim'); make_objects(client, run)\n"
                "print(run.id)")
        reply = kc.execute_interactive(code, timeout=120, output_hook=lambda m: out.append(
            m["content"].get("text", "")) if m["msg_type"] == "stream" else None)
        assert reply["content"]["status"] == "ok", reply["content"]
        dead = "".join(out).strip()
        assert len(objects_of(client, dead)) == 5
        os.kill(km.provisioner.pid, signal.SIGKILL)
        km.provisioner.process.wait(timeout=30)
    finally:
        stop_ipc_kernel(km, kc)
    later = Run(client, "tests")
    try:
        assert objects_of(client, dead) == []
    finally:
        later.cleanup()


def test_other_machines_runs_are_kept_until_old(client, run):
    """Objects owned by a kernel on another hostname are never reaped by liveness; with an age
    limit, only once everything of the run is older than it."""
    labels = dict(run.labels, **{OWNER: "another-machine:1:1"})
    client.containers.create(BASE_IMAGE, ["true"], name=run.name("far"), labels=labels)
    (files_root() / run.prefix / "owner").write_text("another-machine:1:1\n")
    found = find_runs(client)[run.id]
    assert found.verdict() is None
    assert run.id not in reap(client, only={run.id}).runs
    assert run.id not in reap(client, max_age=3600, only={run.id}).runs
    assert objects_of(client, run.id)
    assert run.id in reap(client, max_age=0, only={run.id}).runs
    assert objects_of(client, run.id) == []


def test_a_run_with_one_live_owner_is_kept(client, run):
    """A run touched by a dead process and by a live one (this test) is live."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    gone = owner_of(child.pid)
    child.wait()
    client.containers.create(BASE_IMAGE, ["true"], name=run.name("mixed"), labels=dict(run.labels, **{OWNER: gone}))
    assert find_runs(client)[run.id].verdict() is False
    assert run.id not in reap(client, only={run.id}).runs


def test_clean_dead_command(client):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([os.path.join(root, "course"), "clean", "--dead"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "dead run(s) reaped" in done.stdout and "live run(s)" in done.stdout
