"""The table helpers against what the daemon and the docker CLI report for the same objects."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from helpers import BASE_IMAGE, tables
from helpers.images import list_images
from tests.cheatsheet import run_cli


@pytest.fixture
def base(client):
    return client.images.pull("busybox", tag="1.35")


def cli_json(command: str) -> list[dict]:
    out = run_cli(command).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_images_table_matches_docker_images(client, run, base):
    base.tag(run.name("img"), "a")
    base.tag(run.name("img"), "b")
    listed = list_images(client, name=run.name("img"))                # the listing, as docker images reads it
    table = tables.images_table(listed, repository=run.name("img"))
    cli = cli_json(f"docker images {run.name('img')} --format '{{{{json .}}}}'")
    assert sorted(table["TAG"]) == sorted(r["Tag"] for r in cli) == ["a", "b"]
    assert set(table["IMAGE ID"]) == {r["ID"] for r in cli} == {base.short_id.split(":")[1]}
    assert set(table["SIZE"]) == {r["Size"] for r in cli}             # the CLI's human size, e.g. 1.98MB
    inspected = tables.images_table([client.images.get(run.image("img", "a"))], repository=run.name("img"))
    assert list(inspected["CREATED"]) == [table["CREATED"][0]] * 2


def test_dangling_image_shows_none(base):
    assert tables.images_table([{"Id": "sha256:" + "a" * 64, "RepoTags": None, "Created": 0, "Size": 5}]).iloc[0][
        ["REPOSITORY", "TAG", "SIZE"]].tolist() == ["<none>", "<none>", "5B"]


@pytest.mark.parametrize("repo_tags", [None, [], ["<none>:<none>"]])   # API < 1.44 gave <none>:<none>
def test_untagged_image_in_every_api_shape(repo_tags):
    row = tables.images_table([{"Id": "sha256:" + "a" * 64, "RepoTags": repo_tags, "Created": 0, "Size": 5}])
    assert row[["REPOSITORY", "TAG"]].values.tolist() == [["<none>", "<none>"]]


def test_digest_references_are_not_tags():
    """The containerd store lists ``busybox@sha256:…`` among RepoTags after a pull by digest."""
    digest = "busybox@sha256:" + "b" * 64
    both = tables.images_table([{"Id": "sha256:" + "b" * 64, "RepoTags": ["busybox:1.35", digest], "Size": 5}])
    assert both[["REPOSITORY", "TAG"]].values.tolist() == [["busybox", "1.35"]]
    only = tables.images_table([{"Id": "sha256:" + "b" * 64, "RepoTags": [digest], "Size": 5}])
    assert only[["REPOSITORY", "TAG"]].values.tolist() == [["busybox", "<none>"]]


def test_registry_with_port_is_not_a_tag():
    assert tables._split_ref("127.0.0.1:5765/busybox") == ("127.0.0.1:5765/busybox", "<none>")
    assert tables._split_ref("127.0.0.1:5765/busybox:1.35") == ("127.0.0.1:5765/busybox", "1.35")


def test_history_table_matches_docker_history(client, base):
    table = tables.history_table(base.history())
    cli = cli_json(f"docker history --no-trunc --format '{{{{json .}}}}' {BASE_IMAGE}")
    assert list(table["CREATED BY"]) == [r["CreatedBy"] for r in cli]
    assert list(table["SIZE"]) == [r["Size"] for r in cli]
    assert list(table["COMMENT"]) == [r["Comment"] for r in cli]


def test_containers_table_sparse_and_inspect_agree_with_docker_ps(client, run, base):
    up = client.containers.run(BASE_IMAGE, ["sleep", "60"], name=run.name("up"), labels=run.labels, detach=True,
                               ports={"80/tcp": ("127.0.0.1", None)})
    done = client.containers.run(BASE_IMAGE, ["sh", "-c", "exit 3"], name=run.name("done"), labels=run.labels,
                                 detach=True)
    done.wait()
    # the listing is the daemon's view, updated just after `wait` returns (moby's container view
    # DB): under load it may still say running for a moment; wait until it shows the exit
    deadline = time.monotonic() + 30
    while not client.containers.list(all=True, sparse=True, filters={**run.filters, "status": "exited"}):
        assert time.monotonic() < deadline, "the listing never showed the exited container"
        time.sleep(0.05)
    sparse = tables.containers_table(client.containers.list(all=True, sparse=True, filters=run.filters))
    full = tables.containers_table(client.containers.list(all=True, filters=run.filters))
    pd.testing.assert_frame_equal(sparse.drop(columns=["COMMAND"]), full.drop(columns=["COMMAND"]))
    assert list(sparse["STATE"]) == ["exited", "running"] and list(sparse["EXIT CODE"]) == ["3", ""]
    cli = {r["Names"]: r for r in cli_json(f"docker ps -a --filter label=org.dockercourse.run={run.id} "
                                           "--format '{{json .}}'")}
    for row in full.to_dict("records"):
        assert cli[row["NAME"]]["State"] == row["STATE"]
        assert cli[row["NAME"]]["Image"] == row["IMAGE"]
    up.reload()
    port = up.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
    assert full.set_index("NAME").loc[up.name, "PORTS"] == f"127.0.0.1:{port}->80/tcp"


def test_networks_table_matches_docker_network_ls(client, run):
    net = client.networks.create(run.name("net"), labels=run.labels, internal=True)
    table = tables.networks_table(client.networks.list(names=[net.name])).iloc[0]
    cli = cli_json(f"docker network ls --filter name={net.name} --format '{{{{json .}}}}'")[0]
    assert (table["NAME"], table["DRIVER"], table["SCOPE"]) == (cli["Name"], cli["Driver"], cli["Scope"])
    assert bool(table["INTERNAL"]) is True and cli["Internal"] == "true"
    inspected = cli_json(f"docker network inspect {net.name} --format '{{{{json .IPAM.Config}}}}'")[0]
    assert table["SUBNET"] == inspected[0]["Subnet"]


def test_inspect_table_flattens_and_orders(client, base):
    table = tables.inspect_table(base, first=tables.IMAGE_FIELDS)
    flat = dict(zip(table["field"], table["value"]))
    doc = json.loads(run_cli(f"docker image inspect {BASE_IMAGE}").stdout)[0]
    assert flat["Id"] == doc["Id"] and table["field"][0] == "Id"
    assert flat["Config.Cmd[0]"] == doc["Config"]["Cmd"][0] == "sh"
    assert flat["RootFS.Layers[0]"] == doc["RootFS"]["Layers"][0]
    assert len(table) == len(set(table["field"]))
    only = tables.inspect_table(base, first=["Id", "Os"], only_first=True)
    assert list(only["field"]) == ["Id", "Os"]


def test_top_table(client, run, base):
    from helpers.lifecycle import wait_for_process

    c = client.containers.run(BASE_IMAGE, ["sleep", "60"], name=run.name("top"), labels=run.labels, detach=True)
    wait_for_process(c, "sleep 60")   # just started, top may still see runc's "[runc:[2:INIT]]" under load
    top = tables.top_table(c.top())
    assert "PID" in top.columns and top["CMD"].tolist() == ["sleep 60"]


def test_human_size_and_timestamp():
    assert tables.human_size(1_980_000) == "1.98MB" and tables.human_size(999) == "999B"
    assert tables.timestamp("2026-11-28T01:23:46.123456789Z") == "2026-11-28 01:23:46"
    assert tables.timestamp(0) == "" and tables.timestamp(1672531200) == "2023-01-01 00:00:00"
