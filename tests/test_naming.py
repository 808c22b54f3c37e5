"""Names and clean-up against the real daemon: unique per run, and clean-up removes exactly the run's objects."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import docker
import pytest

from helpers import BASE_IMAGE
from helpers.errors import BadInput
from helpers.naming import MANAGED, RUN, Run

MAKE = textwrap.dedent("""
    import json, sys
    from helpers import BASE_IMAGE, Run, connect
    client = connect()
    client.images.pull("busybox", tag="1.35")
    run = Run(client, "parallel")
    c = client.containers.create(BASE_IMAGE, ["true"], name=run.name("box"), labels=run.labels)
    n = client.networks.create(run.name("net"), labels=run.labels)
    v = client.volumes.create(run.name("vol"), labels=run.labels)
    client.images.get(BASE_IMAGE).tag(run.name("img"), "v1")
    run.path("note.txt").write_text("hi")
    print(json.dumps({"id": run.id, "names": [c.name, n.name, v.name]}), flush=True)
    sys.stdin.readline()                      # wait until told to clean up
    print(json.dumps(run.cleanup()), flush=True)
""")


def test_two_parallel_runs_never_collide_and_clean_only_their_own(client):
    procs = [subprocess.Popen([sys.executable, "-c", MAKE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    try:
        made = [json.loads(p.stdout.readline()) for p in procs]
        a, b = made
        assert a["id"] != b["id"] and not set(a["names"]) & set(b["names"])
        procs[0].stdin.write("\n"); procs[0].stdin.flush()
        removed = json.loads(procs[0].stdout.readline())
        assert removed == {"containers": 1, "networks": 1, "volumes": 1, "images": 1, "files": 1}
        assert not client.containers.list(all=True, filters={"label": f"{RUN}={a['id']}"})
        assert client.containers.list(all=True, filters={"label": f"{RUN}={b['id']}"}), "run B lost its container"
        assert client.networks.list(names=[b["names"][1]]) and client.volumes.get(b["names"][2])
        procs[1].stdin.write("\n"); procs[1].stdin.flush()
        assert json.loads(procs[1].stdout.readline())["containers"] == 1
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_cleanup_removes_the_runs_objects_and_nothing_else(client, run):
    client.images.pull("busybox", tag="1.35")
    other = Run(client, "other")
    stranger = client.containers.create(BASE_IMAGE, ["true"], name=run.name("stranger") + "x",
                                        labels={"not": "ours"})  # a name like ours, but no course label
    theirs = client.containers.create(BASE_IMAGE, ["true"], name=other.name("box"), labels=other.labels)
    client.images.get(BASE_IMAGE).tag("dc-notarun-keep", "v1")
    try:
        mine = client.containers.create(BASE_IMAGE, ["true"], name=run.name("box"), labels=run.labels)
        client.images.get(BASE_IMAGE).tag(*run.image("img").split(":"))
        removed = run.cleanup()
        assert removed["containers"] == 1 and removed["images"] == 1
        names = {c.attrs["Names"][0].lstrip("/") for c in client.containers.list(all=True, sparse=True)}
        assert mine.name not in names and {stranger.name, theirs.name} <= names
        assert "dc-notarun-keep:v1" in client.images.get(BASE_IMAGE).tags
        assert client.images.get(BASE_IMAGE)  # the base image itself stays
    finally:
        stranger.remove(force=True)
        other.cleanup()
        client.images.remove("dc-notarun-keep:v1")


def test_cleanup_twice_is_harmless(run):
    run.cleanup()
    assert run.cleanup() == {"containers": 0, "networks": 0, "volumes": 0, "images": 0, "files": 0}


def test_labels_and_names(run):
    assert run.name("web") == f"dc-{run.id}-web"
    assert run.image("web") == f"dc-{run.id}-web:v1"
    assert run.labels[MANAGED] == "true" and run.labels[RUN] == run.id
    assert run.path("x.tar").parent.name == f"dc-{run.id}"


@pytest.mark.parametrize("bad", ["", "Web", "a b", "-x", "x/y", None, 3])
def test_bad_names_get_one_sentence(run, bad):
    with pytest.raises(BadInput, match="cannot be part of a Docker name"):
        run.name(bad)


def test_bad_run_id(client):
    with pytest.raises(BadInput, match="6 lowercase hex"):
        Run(client, "x", id="XYZ")


class _HeldNetworkApi:
    """A stand-in for docker's APIClient whose network is held ``held`` more times, then goes."""

    def __init__(self, held: int, message: str) -> None:
        self.held, self.message, self.calls = held, message, 0

    def remove_network(self, network_id: str) -> None:
        from docker.errors import APIError

        self.calls += 1
        if self.calls <= self.held:
            raise APIError(f"400 Client Error: Bad Request ({self.message})")


def test_a_network_still_held_by_a_swarm_task_is_removed_once_let_go():
    from helpers.naming import remove_network_when_free

    api = _HeldNetworkApi(3, "rpc error: code = FailedPrecondition desc = network x is in use by task y")
    remove_network_when_free(api, "x", timeout=10)
    assert api.calls == 4


def test_other_network_errors_and_a_network_held_too_long_are_raised():
    from docker.errors import APIError

    from helpers.naming import remove_network_when_free

    other = _HeldNetworkApi(1, "network x has a wrong name")
    with pytest.raises(APIError):
        remove_network_when_free(other, "x", timeout=10)
    assert other.calls == 1                                   # not retried
    forever = _HeldNetworkApi(10**6, "network x is in use by task y")
    with pytest.raises(APIError):
        remove_network_when_free(forever, "x", timeout=0.3)
    assert 1 < forever.calls < 100                            # retried, briefly, then given up


def test_cleanup_leaves_no_dangling_parent_of_an_image_with_two_names(client, run):
    """A classic build's step images go with the run's image, however many names it has: removed
    by Id with force, an image with two names left its parent dangling on the containerd store."""
    import io

    dockerfile = "FROM busybox:1.35\nLABEL step=one\nLABEL " + \
        " ".join(f'{k}="{v}"' for k, v in run.labels.items()) + "\n"
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=run.image("two-names"),
                                   rm=True, nocache=True, network_mode="none")
    image.tag(run.name("two-names"), "v2")
    parent = image.attrs.get("Parent") or client.api.history(image.id)[1]["Id"]
    assert parent and parent != "<missing>", "the build made no step image to check"
    assert run.cleanup()["images"] == 1
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(parent)
