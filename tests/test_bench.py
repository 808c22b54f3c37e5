"""A quick smoke test of ``./course bench``'s code (the benchmark itself takes minutes and is not
part of the test command): counting operations from events, the bare replay, the table, the plot."""

from __future__ import annotations

import platform
from collections import Counter

from bench.run import bare_replay, operations_of, plot, table


def event(kind, action, actor, **attrs):
    return {"Type": kind, "Action": action, "Actor": {"ID": actor, "Attributes": attrs}}


def test_operations_of_counts_only_the_learners_kernels():
    host = platform.node()
    mine = {"org.dockercourse.owner": f"{host}:123:999", "org.dockercourse.run": "abc123", "name": "dc-abc123-web"}
    other = {"org.dockercourse.owner": f"{host}:456:999", "org.dockercourse.run": "fff000", "name": "dc-fff000-web"}
    events = [event("container", "create", "c1", **mine), event("container", "start", "c1", **mine),
              event("container", "exec_start: sh", "c1", **mine), event("container", "create", "c2", **other),
              event("network", "create", "n1", name="dc-abc123-net"), event("network", "connect", "n1", container="c1"),
              event("network", "create", "n2", name="dc-fff000-net"), event("container", "attach", "c1", **mine)]
    assert operations_of(events, {123}) == Counter({"container create": 1, "container start": 1,
                                                    "container exec_start": 1, "network create": 1,
                                                    "network connect": 1})


def test_bare_replay_leaves_nothing(client):
    client.images.pull("busybox", tag="1.35")
    ops = Counter({"container create": 2, "container start": 1, "container exec_start": 1, "network create": 1,
                   "network connect": 1, "image tag": 1})
    assert bare_replay(client, ops) > 0
    assert client.containers.list(all=True, filters={"label": "org.dockercourse.topic=bench"}) == []
    assert client.networks.list(filters={"label": "org.dockercourse.topic=bench"}) == []


def test_table_and_plot(tmp_path):
    run = {"wall_seconds": 10.0, "failures": [], "per_notebook_seconds": {"00_a.ipynb": [4.0], "01_b.ipynb": [6.0]}}
    results = {"machine": {"cpus": 2}, "serial": run, "parallel": dict(run, wall_seconds=7.0),
               "fresh_clone": {"ok": True, "total_seconds": 30.0, "git_clone_seconds": 1.0, "venv_seconds": 28.0,
                               "engine_ready_seconds": 1.0},
               "classroom": dict(run, learners=2, wall_seconds=15.0, leaked_runs=[], memory_baseline_mb=1000,
                                 memory_peak_mb=1500, memory_added_mb=500),
               "overhead": {"ratio": 5.0, "bare_seconds": 2.0, "operations": {"container create": 3}}}
    text = table(results)
    assert "| whole course, serial (one learner) | 10.0 s |" in text
    assert "classroom: 2 learners" in text and "0 failures, 0 runs leaked" in text
    plot(results, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
