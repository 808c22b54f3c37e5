"""Notebook 01 · Images: its helpers (search, pull progress, rmi and tar tables), its widgets, its
exercise checks (fail on wrong answers, pass on the solutions) and its cheat sheet's CLI forms."""

from __future__ import annotations

import io
import json
import tarfile
import threading

import docker
import ipywidgets as widgets
import pytest

from helpers import BASE_IMAGE
from helpers.checks import nb01
from helpers.connection import connect
from helpers.errors import BadInput, CourseError, ImageNotAvailable, NotFound
from helpers.images import (containerd_store, image_sizes, inspect_summary, layer_progress, list_images,
                            mirror_host, pull_events, pull_summary, refusal, removal_table, search,
                            search_table, search_term, sizes_table, tar_contents, tar_digests, truncate)
from helpers.widgets.image_explorer import ImageExplorer, image_explorer
from helpers.widgets.pull_progress import PullProgress
from tests.cheatsheet import run_cli, sheet_commands

NOTEBOOK = "01_images.ipynb"


@pytest.fixture(scope="module")
def base(client):
    return client.images.pull("busybox", tag="1.35")


def build(client, run, dockerfile: str, what: str):
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=run.image(what), rm=True,
                                   nocache=True, network_mode="none")
    return image


def one_sentence(err: CourseError) -> str:
    text = str(err)
    assert "\n" not in text and 20 < len(text) < 400, text
    return text


# --- search ---------------------------------------------------------------------------------

def test_search_term_uses_the_mirror(client):
    host = mirror_host(client)
    assert search_term(client, "busybox") == (f"{host}/busybox" if host else "busybox")


@pytest.mark.parametrize("bad", ["", "  ", None, 3, "127.0.0.1:5765/busybox", "docker.io/busybox"])
def test_search_term_rejects_bad_terms(client, bad):
    with pytest.raises(BadInput) as err:
        search_term(client, bad)
    one_sentence(err.value)


def test_search_filters_are_applied_by_the_daemon(client):
    term = search_term(client, "busybox")
    every = {r["name"] for r in search(client, term)}
    assert {"busybox", "course/busybox-httpd", "course/busybox-tools"} <= every
    assert {r["name"] for r in search(client, term, filters={"is-official": True})} == {"busybox"}
    assert "busybox" not in {r["name"] for r in search(client, term, filters={"is-official": False})}
    assert {r["name"] for r in search(client, term, filters={"stars": 10})} == {"busybox", "course/busybox-httpd"}
    # the registry marks course/busybox-httpd automated; Engine 26.0+ reports no result as automated
    assert search(client, term, filters={"is-automated": True}) == []
    both = search(client, term, filters={"is-official": False, "stars": 5})
    assert [r["name"] for r in both] == ["course/busybox-httpd"]
    assert len(search(client, term, limit=1)) == 1


@pytest.mark.parametrize("kwargs", [{"filters": {"official": True}}, {"limit": 0}, {"limit": 101},
                                    {"limit": "2"}, {"limit": True}, {"term": ""}, {"term": 3}])
def test_search_rejects_bad_options(client, kwargs):
    kwargs = {"term": "busybox", **kwargs}
    with pytest.raises(BadInput) as err:
        search(client, **kwargs)
    one_sentence(err.value)


def test_truncate_like_the_cli():
    assert truncate("short") == "short"
    long = "x" * 60
    assert truncate(long) == "x" * 44 + "…" and len(truncate(long)) == 45
    assert truncate("y" * 45) == "y" * 45


def test_search_table_matches_docker_search(client):
    """The truncated descriptions are exactly what `docker search` prints."""
    term = search_term(client, "busybox")
    table = search_table(search(client, term))
    out = run_cli(f"docker search --format '{{{{.Name}}}}|{{{{.Description}}}}|{{{{.StarCount}}}}' {term}").stdout
    cli = [line.split("|") for line in out.strip().splitlines()]
    assert [[r["NAME"], r["DESCRIPTION"], str(r["STARS"])] for _, r in table.iterrows()] == cli
    header = run_cli(f"docker search {term}").stdout.splitlines()[0].split()
    assert header == list(table.columns) == ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]   # no AUTOMATED
    full = search_table(search(client, term), no_trunc=True)
    out = run_cli(f"docker search --no-trunc --format '{{{{.Description}}}}' {term}").stdout
    assert list(full["DESCRIPTION"]) == out.strip().splitlines()


# --- pull -------------------------------------------------------------------------------------

DOWNLOAD = [
    {"status": "Pulling from library/demo", "id": "1.0"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "aaaaaaaaaaaa"},
    {"status": "Already exists", "progressDetail": {}, "id": "bbbbbbbbbbbb"},
    {"status": "Downloading", "progressDetail": {"current": 100, "total": 400}, "id": "aaaaaaaaaaaa"},
    {"status": "Downloading", "progressDetail": {"current": 300, "total": 400}, "id": "aaaaaaaaaaaa"},
    {"status": "Download complete", "progressDetail": {}, "id": "aaaaaaaaaaaa"},
    {"status": "Extracting", "progressDetail": {"current": 400, "total": 400}, "id": "aaaaaaaaaaaa"},
    {"status": "Pull complete", "progressDetail": {}, "id": "aaaaaaaaaaaa"},
    {"status": "Digest: sha256:" + "c" * 64},
    {"status": "Status: Downloaded newer image for demo:1.0"},
]


def test_pull_progress_widget_follows_a_download():
    progress = PullProgress()
    seen = []
    for event in DOWNLOAD[:5]:
        progress.update(event)
        seen.append(progress.bars.get("aaaaaaaaaaaa") and progress.bars["aaaaaaaaaaaa"].value)
    bar = progress.bars["aaaaaaaaaaaa"]
    assert (bar.value, bar.max) == (300, 400) and seen[-2:] == [100, 300]
    assert progress.bars["bbbbbbbbbbbb"].value == progress.bars["bbbbbbbbbbbb"].max
    progress.follow(DOWNLOAD[5:])
    assert bar.value == bar.max and bar.bar_style == "success"
    assert len(progress.layers.children) == 2
    assert progress.status.value == "Status: Downloaded newer image for demo:1.0"
    assert len(progress.events) == len(DOWNLOAD)


def test_pull_progress_widget_on_the_containerd_store_and_on_errors():
    """The containerd store sends no "Verifying Checksum", counts "Extracting" in seconds with no
    total, and marks counts hidden (seen on Docker 28.5): the bar fills at "Download complete"."""
    progress = PullProgress()
    progress.follow([{"status": "Pulling from library/demo", "id": "1.0"},
                     {"status": "Pulling fs layer", "progressDetail": {}, "id": "cccccccccccc"},
                     {"status": "Download complete", "progressDetail": {"hidecounts": True}, "id": "cccccccccccc"},
                     {"status": "Extracting", "progressDetail": {"current": 2, "units": "s"}, "id": "cccccccccccc"}])
    bar = progress.bars["cccccccccccc"]
    assert bar.value == bar.max and bar.bar_style == "info"
    progress.update({"status": "Pull complete", "progressDetail": {"hidecounts": True}, "id": "cccccccccccc"})
    assert bar.bar_style == "success"
    progress.update({"error": "manifest unknown", "errorDetail": {"message": "manifest unknown"}})
    assert "manifest unknown" in progress.status.value and "#b00" in progress.status.value

    def broken():
        yield DOWNLOAD[0]
        raise ImageNotAvailable("demo:1.0 is neither on this daemon nor in the course registry: check the name.")
    shown_progress = PullProgress()
    with pytest.raises(ImageNotAvailable):
        shown_progress.follow(broken())
    assert "neither on this daemon" in shown_progress.status.value


def test_layer_progress_and_summary():
    table = layer_progress(DOWNLOAD)
    assert list(table["LAYER"]) == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]
    assert list(table["LAST STATUS"]) == ["Pull complete", "Already exists"]
    assert list(table["BYTES"]) == [400, 0]
    assert pull_summary(DOWNLOAD) == [DOWNLOAD[-2]["status"], DOWNLOAD[-1]["status"]]


def test_pull_events_real_and_bad(client, base):
    events = list(pull_events(client, "busybox", "1.35"))
    assert pull_summary(events)[-1] == "Status: Image is up to date for busybox:1.35"
    with pytest.raises(BadInput):
        list(pull_events(client, "busybox", ""))
    with pytest.raises(ImageNotAvailable) as err:
        list(pull_events(client, "busybox", "no-such-tag-in-the-course"))
    one_sentence(err.value)


# --- rmi, tar, inspect ------------------------------------------------------------------------

def test_removal_table_and_refusal(client, run, base):
    image = build(client, run, "FROM busybox:1.35\nRUN echo x > /x\n", "gone")
    image.tag(run.name("gone"), "v2")
    table = removal_table(client.api.remove_image(run.image("gone")))
    assert table.to_dict("records") == [{"ACTION": "Untagged", "WHAT": run.image("gone")}]
    c = client.containers.create(image.id, ["true"], name=run.name("user"), labels=run.labels, network_mode="none")
    with pytest.raises(docker.errors.APIError) as err:
        client.api.remove_image(image.id)
    line = refusal(err.value)
    assert line.startswith("refused (409): ") and "\n" not in line and "stopped container" in line
    table = removal_table(client.api.remove_image(image.id, force=True))
    assert list(table["ACTION"]) == ["Untagged", "Deleted"]            # the image (its RUN step) itself
    assert table["WHAT"].iloc[1] == image.id.split(":")[1][:12]
    c.remove()


def test_tar_contents(client, run, base, tmp_path):
    image = build(client, run, "FROM busybox:1.35\nRUN echo a > /a\nRUN echo bb > /b\n", "tarred")
    path = run.path("t.tar")
    path.write_bytes(b"".join(image.save(named=run.image("tarred"))))
    table = tar_contents(path)
    assert list(table["FILE"][:3]) == ["oci-layout", "index.json", "manifest.json"]
    assert list(table["WHAT"][3:5]) == [f"image manifest of {run.image('tarred')}",
                                        f"image config of {run.image('tarred')}"]
    digests = tar_digests(path)
    assert list(table["FILE"][3:5]) == ["blobs/" + digests[k].replace(":", "/") for k in ("manifest", "config")]
    assert image.id in digests.values()                               # manifest (containerd) or config (classic)
    assert (image.id == digests["manifest"]) == containerd_store(client)
    layers = table[table["WHAT"].str.startswith("layer ")]
    assert list(layers["WHAT"]) == ["layer 1 of 3", "layer 2 of 3", "layer 3 of 3"]
    assert "repositories" not in set(table["FILE"])
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        assert list(layers["FILE"]) == manifest[0]["Layers"]
        assert manifest[0]["Config"] == table["FILE"].iloc[4]
    with pytest.raises(BadInput):
        tar_contents(tmp_path / "missing.tar")
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all")
    for reader in (tar_contents, tar_digests):
        with pytest.raises(BadInput) as err:
            reader(tmp_path / "junk.tar")
        one_sentence(err.value)
    old = tmp_path / "old.tar"                                        # Engine < 25: no index.json
    with tarfile.open(old, "w") as tar:
        data = b'[{"Config": "x.json", "RepoTags": [], "Layers": []}]'
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(BadInput) as err:
        tar_contents(old)
    assert "Engine 25" in one_sentence(err.value)


def test_image_sizes(client, run, base):
    build(client, run, "FROM busybox:1.35\nRUN seq 1 5000 > /n\n", "sized")
    sizes = image_sizes(client, run.image("sized"))
    assert set(sizes) == {"listed", "content", "unpacked"}
    assert sizes["listed"] >= max(sizes["content"], sizes["unpacked"])
    if containerd_store(client):      # compressed content beside the unpacked snapshots
        assert sizes["content"] < sizes["unpacked"] < sizes["listed"]
    else:                             # the classic store keeps the layers once
        assert sizes["listed"] == sizes["content"] == sizes["unpacked"]
    cli = run_cli(f"docker images --format '{{{{.Size}}}}' {run.image('sized')}").stdout.strip()
    table = sizes_table(sizes)
    assert table["SIZE"].iloc[0] == cli                                # docker images' SIZE
    assert list(table.columns) == ["SIZE", "WHERE", "WHAT IT COUNTS"] and len(table) == 3
    with pytest.raises(NotFound) as err:
        image_sizes(client, run.image("never-built"))
    one_sentence(err.value)
    with pytest.raises(BadInput):
        image_sizes(client, "")


def test_containerd_store_matches_docker_info(client):
    out = run_cli("docker info --format '{{json .DriverStatus}}'").stdout
    assert containerd_store(client) == ("io.containerd.snapshotter.v1" in out)
    assert containerd_store(client) == (client.info()["Driver"] == "overlayfs")


def test_list_images_asks_again_when_an_image_vanishes(client, run, base, monkeypatch):
    base.tag(run.name("listed"), "v1")
    assert [i["RepoTags"] for i in list_images(client, name=run.name("listed"))] != []
    assert list_images(client, name=run.name("listed"), quiet=True) == [base.id]
    real, calls = client.api.images, []

    def flaky(**kwargs):
        calls.append(kwargs)
        if len(calls) < 3:   # what the containerd store answers when another client removes an image
            raise docker.errors.APIError("500 Server Error", explanation="failed to read config content: "
                                         "content digest sha256:abc: not found")
        return real(**kwargs)
    monkeypatch.setattr(client.api, "images", flaky)
    assert len(list_images(client, filters={"reference": run.image("listed")})) == 1 and len(calls) == 3
    calls.clear()

    def broken(**kwargs):
        calls.append(kwargs)
        raise docker.errors.APIError("400 Client Error", explanation="invalid filter 'nonsense'")
    monkeypatch.setattr(client.api, "images", broken)
    with pytest.raises(docker.errors.APIError):                        # other errors are not retried
        list_images(client, filters={"nonsense": "x"})
    assert len(calls) == 1
    for bad in ({"name": ""}, {"name": 3}, {"filters": "dangling=true"}):
        with pytest.raises(BadInput) as err:
            list_images(client, **bad)
        one_sentence(err.value)


def test_inspect_summary_hides_only_course_labels(client, run, base):
    labels = " ".join(f'{k}="{v}"' for k, v in run.labels.items())
    image = build(client, run, f'FROM busybox:1.35\nLABEL lesson=images\nEXPOSE 80\nLABEL {labels}\n', "inspected")
    table = inspect_summary(image)
    fields = list(table["field"])
    assert fields[0] == "Id" and "Config.Labels.lesson" in fields and "Config.ExposedPorts.80/tcp" in fields
    assert not [f for f in fields if "org.dockercourse." in f]
    assert "RootFS.Layers[0]" in fields and "Size" in fields
    # digests shown short, as `docker images` shows Ids, so the table fits a notebook; whole on request
    assert table["value"].iloc[0] == image.id[:19] + "…" and len(table["value"].iloc[0]) == 20
    assert inspect_summary(image, short=False)["value"].iloc[0] == image.id
    fewer = list(inspect_summary(image, without=["Size", "RepoDigests"])["field"])
    assert fewer == [f for f in fields if f != "Size" and not f.startswith("RepoDigests")]
    with pytest.raises(BadInput) as err:
        inspect_summary(image, without="Size")
    one_sentence(err.value)


# --- widget -----------------------------------------------------------------------------------

def test_image_explorer_follows_the_dropdown(client, run, base):
    build(client, run, "FROM busybox:1.35\nENV A=1\nRUN echo a > /a\nCMD [\"true\"]\n", "explored")
    explorer = image_explorer(client, run)
    assert list(explorer.dropdown.options) == [run.image("explored"), BASE_IMAGE]
    ours_summary, ours_history = explorer.summary.copy(), explorer.history.copy()
    assert run.image("explored") in explorer.summary_view.value
    assert len(ours_history) == 4
    explorer.dropdown.value = BASE_IMAGE                               # what choosing in the UI does
    assert len(explorer.history) == 1 and explorer.history["COMMENT"].iloc[0] == "Imported from -"
    assert not explorer.summary.equals(ours_summary)
    assert BASE_IMAGE in explorer.summary_view.value and "Imported from -" in explorer.history_view.value
    explorer.dropdown.value = run.image("explored")
    assert explorer.history.equals(ours_history)


def shown(widget) -> str:
    """Every HTML text a widget shows (what the learner reads in it), one string."""
    if hasattr(widget, "children"):
        return " ".join(shown(child) for child in widget.children)
    return widget.value if isinstance(widget, widgets.HTML) else ""


def test_image_explorer_says_in_itself_when_the_chosen_image_is_gone(client, run, base):
    """The list offered an image another client removed meanwhile (a dropped event, or an explorer
    that follows nothing): choosing it says so in the explorer, in one sentence, and drops it."""
    build(client, run, "FROM busybox:1.35\nLABEL gone=soon\n", "gone")
    explorer = ImageExplorer(client, [BASE_IMAGE, run.image("gone")])   # no run: it follows no events
    client.api.remove_image(run.image("gone"))
    explorer.dropdown.value = run.image("gone")                         # what the learner's choice does
    said = shown(explorer.widget)
    assert f"{run.image('gone')} is no longer on this daemon" in said, said
    assert "choose another image" in said and "Traceback" not in said
    assert explorer.message.count(": ") == 1 and explorer.message.endswith("choose another image.")
    one_sentence(NotFound(explorer.message))
    assert list(explorer.dropdown.options) == [BASE_IMAGE]              # the list is read again
    assert explorer.dropdown.value == BASE_IMAGE and f"<b>{BASE_IMAGE}</b>: inspect summary" in explorer.summary_view.value


def test_image_explorer_drops_an_image_another_client_removed(client, run, base):
    """Without the learner running the cell again: the explorer follows the daemon's image events."""
    build(client, run, "FROM busybox:1.35\nLABEL doomed=yes\n", "doomed")
    build(client, run, "FROM busybox:1.35\nLABEL kept=yes\n", "kept")
    explorer = image_explorer(client, run)
    explorer.dropdown.value = run.image("doomed")
    assert list(explorer.dropdown.options) == [run.image("doomed"), run.image("kept"), BASE_IMAGE]
    said = threading.Event()     # the explorer says it last, after the new list and the new tables
    explorer.status.observe(lambda change: "was removed" in change["new"] and said.set(), names="value")
    connect().api.remove_image(run.image("doomed"))                      # another client: a second connection
    assert said.wait(30), f"still offered after 30 s: {explorer.dropdown.options}"
    assert list(explorer.dropdown.options) == [run.image("kept"), BASE_IMAGE]
    assert explorer.dropdown.value == run.image("kept") and run.image("kept") in explorer.summary_view.value
    assert f"{run.image('doomed')} was removed from the daemon meanwhile" in shown(explorer.widget)
    # one thread per run: a second explorer of the run (its cell ran again) replaces the first
    thread = explorer.follower.thread
    again = image_explorer(client, run)
    thread.join(10)
    assert not thread.is_alive() and explorer.follower is None and "replaced this one" in explorer.message
    # the clean-up ends the last one, and the explorer says why the run's images are gone
    thread = again.follower.thread
    run.cleanup()
    thread.join(10)
    assert not thread.is_alive() and again.follower is None
    assert "This run was cleaned up" in shown(again.widget)
    assert list(again.dropdown.options) == [BASE_IMAGE]
    with pytest.raises(BadInput) as err:
        image_explorer(client, run)
    one_sentence(err.value)


def test_image_explorer_says_when_the_daemons_event_stream_ended(client, run, base):
    """What a daemon restart does to the explorer's stream (here the stream is cut from our side)."""
    build(client, run, "FROM busybox:1.35\nLABEL streamed=yes\n", "streamed")
    explorer = image_explorer(client, run)
    follower = explorer.follower
    follower._stream.close()                                   # not stop(): as if the daemon went away
    follower.thread.join(10)
    assert explorer.follower is None and "event stream ended" in shown(explorer.widget)
    explorer.dropdown.value = BASE_IMAGE                       # the next choice follows the daemon again
    assert explorer.follower is not None and explorer.follower.running and explorer.message == ""


def test_image_explorer_bad_input(client, run):
    with pytest.raises(BadInput):
        ImageExplorer(client, [])
    with pytest.raises(NotFound) as err:
        ImageExplorer(client, [run.image("never-built")])
    one_sentence(err.value)


# --- exercise checks --------------------------------------------------------------------------

def test_check_tagged(client, run, base):
    assert "no image" in nb01.check_tagged(client, run).message
    other = build(client, run, "FROM busybox:1.35\nLABEL other=yes\n", "other")
    other.tag(run.name("mine"), "1.0")                                  # wrong image under the name
    result = nb01.check_tagged(client, run)
    assert not result and "not busybox:1.35" in result.message
    client.images.get(BASE_IMAGE).tag(run.name("mine"), "1.0")         # the solution (moves the name)
    assert nb01.check_tagged(client, run)


def test_check_saved(client, run, base):
    assert "missing" in nb01.check_saved(client, run).message
    run.path("mine.tar").write_bytes(b"garbage")
    assert "not an image tar" in nb01.check_saved(client, run).message
    mine = run.image("mine", "1.0")
    image = client.images.get(BASE_IMAGE)
    image.tag(run.name("mine"), "1.0")
    image.reload()
    run.path("mine.tar").write_bytes(b"".join(image.save()))          # by id: no name inside
    result = nb01.check_saved(client, run)
    assert not result and "named=" in result.message
    run.path("mine.tar").write_bytes(b"".join(image.save(named=mine)))  # the solution
    assert nb01.check_saved(client, run)


def test_check_untagged(client, run, base):
    image = client.images.get(BASE_IMAGE)
    image.tag(run.name("mine"), "1.0")
    image.tag(run.name("mine"), "old")
    assert "still there" in nb01.check_untagged(client, run).message
    client.images.remove(run.image("mine", "1.0"))                      # removed the wrong name
    client.images.remove(run.image("mine", "old"))
    assert "gone too" in nb01.check_untagged(client, run).message
    image.tag(run.name("mine"), "1.0")                                   # the solution's end state
    assert nb01.check_untagged(client, run)
    assert client.images.get(BASE_IMAGE)                                 # the base image stayed


# --- the cheat sheet --------------------------------------------------------------------------

def test_cheat_sheet_runs(client, run, base):
    commands = sheet_commands(NOTEBOOK)
    assert len(commands) >= 20
    term = search_term(client, "busybox")
    new = run.name("sheet")
    tar = str(run.path("sheet.tar"))
    ran = set()
    for command in commands:
        subs = {"NEW": new, "FILE": tar}
        if command.startswith("docker search"):
            subs["busybox"] = term
        if "IMAGE_ID" in command:                                       # a fresh image of this run, never busybox
            victim = build(client, run, f"FROM busybox:1.35\nLABEL victim={len(ran)}\n", f"victim{len(ran)}")
            if " -f " in command:                                       # -f: even with a container using it
                client.containers.create(victim.id, ["true"], name=run.name(f"user{len(ran)}"),
                                         labels=run.labels, network_mode="none")
            subs["IMAGE_ID"] = victim.id
        out = run_cli(command, subs)
        ran.add(command)
        if command.startswith("docker search -f is-official=true"):
            assert out.stdout.splitlines()[1].startswith("busybox ")
            assert len(out.stdout.strip().splitlines()) == 2
        if command.startswith("docker search --limit 2"):
            assert len(out.stdout.strip().splitlines()) == 3                 # header + 2
        if command.startswith("docker tag"):
            assert client.images.get(f"{new}:1.0").id == base.id
        if command.startswith("docker history"):
            assert "Imported from -" in out.stdout
        if command.startswith("docker load"):
            assert f"Loaded image: {new}:1.0" in out.stdout
        if "IMAGE_ID" in command:
            with pytest.raises(docker.errors.ImageNotFound):
                client.images.get(subs["IMAGE_ID"])
    assert any(c.startswith("docker rmi NEW") for c in ran)
    with pytest.raises(docker.errors.ImageNotFound):                   # rmi NEW:1.0 came last for that name
        client.images.get(f"{new}:1.0")
    assert client.images.get(BASE_IMAGE).id == base.id                   # the base image is untouched
