"""Notebook 04: the tar and image-comparison helpers, the exercise checks (fail on wrong answers,
pass on the solutions) and every CLI form of the cheat sheet."""

from __future__ import annotations

import pytest

from helpers import BASE_IMAGE, BadInput, NotFound
from helpers.checks import nb04
from helpers.images_from_containers import commit_steps, compare_images, image_facts, tar_members, tar_summary
from helpers.lifecycle import COMMIT_ACTIONS, EventRecorder
from tests.cheatsheet import run_cli, sheet_commands

CMD = 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]'


@pytest.fixture
def ex(client, run):
    client.images.pull("busybox", tag="1.35")
    c = client.containers.run(BASE_IMAGE, ["sleep", "120"], name=run.name("ex"), labels=run.labels, detach=True)
    assert c.exec_run(["sh", "-c", "echo '<p>x</p>' > /www/index.html"]).exit_code == 0
    return c


def _export(container, path):
    with open(path, "wb") as f:
        for chunk in container.export():
            f.write(chunk)
    return path


def test_tar_helpers(ex, run):
    path = _export(ex, run.path("ex.tar"))
    members = tar_members(path)
    assert {"www/index.html", "bin/busybox", ".dockerenv"} <= set(members["name"])
    assert members.set_index("name").loc["www/index.html", "size"] == len("<p>x</p>\n")
    summary = tar_summary(path)
    assert summary.loc["bin", "symlink"] > 100 and summary.loc["www", "file"] == 1
    with pytest.raises(NotFound, match="does not exist"):
        tar_members(run.path("missing.tar"))
    run.path("junk.tar").write_text("not a tar")
    with pytest.raises(BadInput, match="not a tar"):
        tar_members(run.path("junk.tar"))


def test_compare_images(client, ex, run):
    ex.commit(repository=run.name("c"), tag="v1", author="A", message="m", changes=["EXPOSE 80"])
    client.api.import_image(src=str(_export(ex, run.path("ex.tar"))), repository=run.name("i"), tag="v1")
    table = compare_images(client, {"commit": run.image("c"), "import": run.image("i")})
    assert table.loc["layers"].tolist() == [2, 1]
    assert table.loc["Config.ExposedPorts"].tolist() == ["80/tcp", "(none)"]
    assert table.loc["Author", "commit"] == "A" and table.loc["Comment", "commit"] == "m"
    with pytest.raises(NotFound):
        image_facts(client, run.image("nothing"))
    with pytest.raises(BadInput):
        image_facts(client, "")
    with pytest.raises(BadInput):
        compare_images(client, {})


def test_check_commit(client, ex, run):
    assert "no image" in nb04.check_commit(client, run).message
    ex.commit(repository=run.name("site"), tag="v1")
    assert "author" in nb04.check_commit(client, run).message
    ex.commit(repository=run.name("site"), tag="v1", author="Me")
    assert "message" in nb04.check_commit(client, run).message
    ex.commit(repository=run.name("site"), tag="v1", author="Me", message="m")
    assert "CMD" in nb04.check_commit(client, run).message
    ex.commit(repository=run.name("site"), tag="v1", author="Me", message="m", changes=[CMD])
    assert "EXPOSE" in nb04.check_commit(client, run).message
    ex.commit(repository=run.name("site"), tag="v1", author="Me", message="m", changes=[CMD, "EXPOSE 8080"])
    assert nb04.check_commit(client, run)
    client.api.import_image(src=str(_export(ex, run.path("ex.tar"))), repository=run.name("site"), tag="v1",
                            changes=[CMD, "EXPOSE 8080"])
    assert "single layer" in nb04.check_commit(client, run).message


def test_check_export(ex, run):
    assert not nb04.check_export(None)
    assert "does not exist" in nb04.check_export(run.path("ex.tar")).message
    run.path("junk.tar").write_text("junk")
    assert "not a tar" in nb04.check_export(run.path("junk.tar")).message
    assert nb04.check_export(_export(ex, run.path("ex.tar")))


def test_check_import(client, ex, run):
    assert "no image" in nb04.check_import(client, run).message
    ex.commit(repository=run.name("flat"), tag="v1", changes=[CMD])
    assert "layers" in nb04.check_import(client, run).message
    path = str(_export(ex, run.path("ex.tar")))
    client.api.import_image(src=path, repository=run.name("flat"), tag="v1")
    assert "CMD" in nb04.check_import(client, run).message
    client.api.import_image(src=path, repository=run.name("flat"), tag="v1", changes=[CMD])
    assert nb04.check_import(client, run)


def test_cheat_sheet_runs(client, ex, run):
    commands = sheet_commands("04_containers_and_images.ipynb")
    assert len(commands) >= 7
    subs = {"NAME": ex.name, "IMAGE": run.name("sheet"), "FLAT": run.name("sheetflat"),
            "FILE": str(run.path("sheet.tar"))}
    outputs = [run_cli(command, subs).stdout for command in commands]
    assert any("C /www/index.html" in out for out in outputs)
    assert any(out.strip() == 'Ada <ada@example.org> [httpd -f -p 8080 -h /www]' for out in outputs)
    assert run.path("sheet.tar").stat().st_size > 1_000_000
    assert len(client.images.get(run.name("sheetflat") + ":v1").attrs["RootFS"]["Layers"]) == 1
    assert client.images.get(run.name("sheet") + ":live")


def _events(*actions):
    return [{"Type": "container", "Action": a, "Actor": {"ID": "c" * 64}} for a in actions]


def test_commit_steps_groups_events_by_commit():
    table = commit_steps(_events("pause", "commit", "unpause", "commit"))
    assert table.index.tolist() == [(1, True), (2, False)]
    assert table["events, in order"].tolist() == ["pause → commit → unpause", "commit"]
    # the daemon's echo: containerd's "paused" came after the unpause, logged as pause + unpause again
    echoed = commit_steps(_events("pause", "commit", "unpause", "pause", "unpause", "commit"))
    assert echoed.equals(table)
    assert commit_steps([]).empty
    with pytest.raises(BadInput):
        commit_steps("pause commit")
    with pytest.raises(BadInput):
        commit_steps([{"status": "pause"}])            # the old field: events are read by Action


def test_commit_pauses_only_when_asked_as_live_events_show(client, run):
    """pause → commit → unpause with pause=True (the default), a bare commit with pause=False."""
    client.images.pull("busybox", tag="1.35")
    writer = client.containers.run(BASE_IMAGE, ["sh", "-c", "exec top -b -d 0.1 > /tmp/top.log"],
                                   name=run.name("writer"), labels=run.labels, detach=True)
    recorder = EventRecorder(client, {"container": writer.id})
    writer.commit(repository=run.name("writer"), tag="paused")
    writer.commit(repository=run.name("writer"), tag="live", pause=False)
    events = recorder.wait_for(writer.id, "commit", count=2, actions=COMMIT_ACTIONS)
    recorder.close()
    assert commit_steps(events)["events, in order"].tolist() == ["pause → commit → unpause", "commit"]
    with pytest.raises(BadInput):
        recorder.wait_for(writer.id, "destroy", actions=COMMIT_ACTIONS)   # not among the events asked for
    with pytest.raises(BadInput):
        recorder.of(writer.id, actions="commit")
