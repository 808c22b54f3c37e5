"""helpers.tables agrees with the docker CLI for the same images: ``docker images``,
``docker image inspect`` and ``docker history`` — ids, names, sizes (the CLI's human form and
bytes), times and created-by — so a learner comparing a table with a terminal sees the same."""

from __future__ import annotations

import io
import json

import pytest

from helpers import BASE_IMAGE, Run
from helpers.images import list_images
from helpers.tables import flatten, history_table, human_size, images_table, inspect_table, short_id
from tests.cheatsheet import run_cli

DOCKERFILE = """FROM busybox:1.35
ENV GREETING=hello
RUN echo "$GREETING from the course" > /www/greeting.txt
RUN mkdir -p /data && seq 1 20000 > /data/numbers.txt
EXPOSE 8080
LABEL lesson="images"
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
"""


def json_lines(command: str) -> list[dict]:
    return [json.loads(line) for line in run_cli(command).stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def run(client):
    """One run for the module (its images are built once), cleaned up afterwards."""
    r = Run(client, "tests")
    try:
        yield r
    finally:
        r.cleanup()


@pytest.fixture(scope="module")
def images(client, run):
    """busybox:1.35, a several-layer image under two names, and a dangling image of this run."""
    client.images.pull("busybox", tag="1.35")

    def build(dockerfile: str, tag: str):
        image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, nocache=True,
                                       network_mode="none")
        return image

    layered = build(DOCKERFILE, run.image("layered"))
    layered.tag(run.name("layered"), "2.0")
    labels = " ".join(f'{k}="{v}"' for k, v in run.labels.items())
    build(f"FROM busybox:1.35\nRUN echo 1 > /v\nLABEL {labels}\n", run.image("app"))
    build(f"FROM busybox:1.35\nRUN echo 2 > /v\nLABEL {labels}\n", run.image("app"))   # v1 now dangling
    return {"layered": client.images.get(run.image("layered")), "base": client.images.get(BASE_IMAGE)}


def test_images_table_matches_docker_images(client, run, images):
    cli = json_lines(f"docker images --format '{{{{json .}}}}' '{run.prefix}-*'")
    ours = images_table(list_images(client, name=f"{run.prefix}-*"))   # the listing docker images reads
    assert len(cli) == len(ours) == 3
    expected = sorted((c["Repository"], c["Tag"], c["ID"], c["CreatedAt"][:19], c["Size"]) for c in cli)
    got = sorted(tuple(r) for r in ours[["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]].itertuples(index=False))
    assert got == expected


def test_images_table_dangling_and_base(client, run, images):
    cli = json_lines(f"docker images --format '{{{{json .}}}}' -f dangling=true -f label=org.dockercourse.run={run.id}")
    ours = images_table(list_images(client, filters={"dangling": True, **run.filters}))
    assert [(c["Repository"], c["Tag"], c["ID"], c["Size"]) for c in cli] == \
        [tuple(r) for r in ours[["REPOSITORY", "TAG", "IMAGE ID", "SIZE"]].itertuples(index=False)]
    assert ours["REPOSITORY"].tolist() == ["<none>"]
    cli = json_lines(f"docker images --format '{{{{json .}}}}' {BASE_IMAGE}")
    row = images_table(list_images(client, filters={"reference": BASE_IMAGE})).set_index(
        ["REPOSITORY", "TAG"]).loc[("busybox", "1.35")]
    assert (row["IMAGE ID"], row["SIZE"], row["CREATED"]) == (cli[0]["ID"], cli[0]["Size"], cli[0]["CreatedAt"][:19])


@pytest.mark.parametrize("which", ["layered", "base"])
def test_inspect_table_matches_docker_image_inspect(client, images, which):
    image = images[which]
    image.reload()
    cli = json.loads(run_cli(f"docker image inspect {image.id}").stdout)[0]
    table = inspect_table(image)
    ours, theirs = dict(zip(table["field"], table["value"])), flatten(cli)
    again = json.loads(run_cli(f"docker inspect {image.id}").stdout)[0]
    if which == "base":  # other runs tag and untag busybox:1.35 meanwhile: its names (and, on the
        # containerd store, the digests listed under each name) and its last tag time change
        assert BASE_IMAGE in image.tags and BASE_IMAGE in cli["RepoTags"]
        moving = ("RepoTags", "RepoDigests", "Metadata.LastTagTime")
        ours, theirs = ({k: v for k, v in d.items() if not k.startswith(moving)} for d in (ours, theirs))
        again, cli_kept = ({k: v for k, v in flatten(d).items() if not k.startswith(moving)} for d in (again, cli))
    else:
        cli_kept = cli
    assert ours == theirs
    assert again == cli_kept                                                       # docker inspect: the same document
    summary = inspect_table(image, ["Id", "RepoTags", "Size", "Config.Cmd", "RootFS.Layers"], only_first=True)
    values = dict(zip(summary["field"], summary["value"]))
    assert values["Id"] == cli["Id"] and values["Size"] == cli["Size"]
    assert [values[f"RootFS.Layers[{i}]"] for i in range(len(cli["RootFS"]["Layers"]))] == cli["RootFS"]["Layers"]
    assert [values[f"Config.Cmd[{i}]"] for i in range(len(cli["Config"]["Cmd"]))] == cli["Config"]["Cmd"]


@pytest.mark.parametrize("which", ["layered", "base"])
def test_history_table_matches_docker_history(client, images, which):
    image = images[which]
    cli = json_lines(f"docker history --no-trunc --format '{{{{json .}}}}' {image.id}")
    ours = history_table(image.history())
    assert len(cli) == len(ours) and len(ours) == (7 if which == "layered" else 1)
    for c, (_, r) in zip(cli, ours.iterrows()):
        assert r["IMAGE"] == (short_id(c["ID"]) if c["ID"] != "<missing>" else "<missing>")
        assert r["CREATED BY"] == c["CreatedBy"]
        assert r["SIZE"] == c["Size"]
        assert r["COMMENT"] == c["Comment"]
        assert r["CREATED"] == c["CreatedAt"][:19].replace("T", " ")
    short = json_lines(f"docker history --format '{{{{json .}}}}' {image.id}")
    assert [c["ID"] for c in short] == list(ours["IMAGE"])                 # the CLI's own 12-digit ids


def test_sizes_in_bytes_and_human_form(client, images):
    """The bytes behind the human form: `docker history --human=false` gives them."""
    image = images["layered"]
    cli = json_lines(f"docker history --human=false --format '{{{{json .}}}}' {image.id}")
    assert [int(c["Size"]) for c in cli] == [h["Size"] for h in image.history()]
    assert [human_size(int(c["Size"])) for c in cli] == list(history_table(image.history())["SIZE"])
    assert any(int(c["Size"]) > 1000 for c in cli[:-1])                     # a kB-sized layer is covered
