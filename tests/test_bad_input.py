"""Bad input to every helper a learner calls gives one clear sentence — a helpers.errors
exception saying what to do — never a silent pass and never a traceback from deep inside
docker-py or pandas."""

from __future__ import annotations

import pytest

from helpers import BASE_IMAGE, tables
from helpers.connection import connect
from helpers.errors import BadInput, CourseError, DaemonNotFound
from helpers.naming import Run, cleanup_all


def one_sentence(err: BaseException) -> str:
    """The message is one actionable sentence: a course error, one line, not too long."""
    assert isinstance(err, CourseError), f"{type(err).__name__}: {err}"
    text = str(err)
    assert "\n" not in text and 20 < len(text) < 400, text
    assert any(w in text.lower() for w in (":", "use", "pass", "should", "must", "write")), f"says what to do: {text}"
    return text


# --- connect ---------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["tcp://127.0.0.1:1", "unix:///nonexistent/docker.sock", "nonsense://x"])
def test_connect_to_nothing(monkeypatch, host):
    monkeypatch.setenv("DOCKER_HOST", host)
    with pytest.raises(DaemonNotFound) as err:
        connect()
    assert host in one_sentence(err.value)


# --- Run --------------------------------------------------------------------------------------

@pytest.mark.parametrize("client_arg", [None, "client", 3])
def test_run_without_a_client(client_arg):
    with pytest.raises(BadInput, match="client from connect") as err:
        Run(client_arg, "images")
    one_sentence(err.value)


@pytest.mark.parametrize("topic", ["", "Has Space", None, 3, "x/y"])
def test_run_with_a_bad_topic(client, topic):
    with pytest.raises(BadInput, match="topic") as err:
        Run(client, topic)
    one_sentence(err.value)


@pytest.mark.parametrize("run_id", ["XYZ", "abc", 123456, "abcdefg"])
def test_run_with_a_bad_id(client, run_id):
    with pytest.raises(BadInput, match="6 lowercase hex") as err:
        Run(client, "x", id=run_id)
    one_sentence(err.value)


@pytest.mark.parametrize("what", ["", "Web", "a b", "-x", "x/y", "x:y", None, 3, ["web"]])
def test_name_illegal(run, what):
    with pytest.raises(BadInput, match="cannot be part of a Docker name") as err:
        run.name(what)
    one_sentence(err.value)


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a b", "a:b", "x" * 129, None, 1])
def test_image_bad_tag(run, tag):
    with pytest.raises(BadInput, match="not a Docker tag") as err:
        run.image("web", tag)
    one_sentence(err.value)


def test_image_bad_name(run):
    with pytest.raises(BadInput):
        run.image("Web")


@pytest.mark.parametrize("filename", ["", ".", "..", "../x.tar", "/etc/passwd", "a/b.tar", None, 3])
def test_path_outside_the_runs_folder(run, filename):
    with pytest.raises(BadInput, match="file name") as err:
        run.path(filename)
    one_sentence(err.value)


def test_a_name_already_taken_is_a_clear_conflict(client, run):
    """Docker itself refuses a taken name (409); the course's names never collide across runs."""
    client.images.pull("busybox", tag="1.35")
    client.containers.create(BASE_IMAGE, ["true"], name=run.name("taken"), labels=run.labels)
    other = Run(client, "tests")
    try:
        assert other.name("taken") != run.name("taken")
    finally:
        other.cleanup()


# --- cleanup -----------------------------------------------------------------------------------

def test_cleanup_all_without_a_client():
    with pytest.raises(BadInput) as err:
        cleanup_all("client")
    one_sentence(err.value)


def test_cleanup_twice_is_not_an_error(run):
    run.cleanup()
    assert set(run.cleanup().values()) == {0}


# --- tables ------------------------------------------------------------------------------------

LISTS = [tables.images_table, tables.containers_table, tables.networks_table, tables.history_table]


@pytest.mark.parametrize("fn", LISTS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad", [None, "busybox", 3, {"Id": "x"}, ["busybox"], [None]])
def test_table_of_a_list_given_something_else(fn, bad):
    with pytest.raises(BadInput) as err:
        fn(bad)
    one_sentence(err.value)


def test_table_of_one_model_says_put_it_in_a_list(client):
    image = client.images.pull("busybox", tag="1.35")
    with pytest.raises(BadInput, match=r"put a single object in \[ \]"):
        tables.images_table(image)


@pytest.mark.parametrize("bad", [None, "abc", 3, ["a"]])
def test_inspect_table_of_something_else(bad):
    with pytest.raises(BadInput) as err:
        tables.inspect_table(bad)
    one_sentence(err.value)


@pytest.mark.parametrize("first", ["Id", 3, [1]])
def test_inspect_table_first_must_be_a_list_of_names(first):
    with pytest.raises(BadInput, match="list of field names") as err:
        tables.inspect_table({"Id": "x"}, first)
    one_sentence(err.value)


@pytest.mark.parametrize("args", [("version", ["Version"]), ({"Version": "1"}, "Version"), (None, [])])
def test_key_value_table_bad(args):
    with pytest.raises(BadInput) as err:
        tables.key_value_table(*args)
    one_sentence(err.value)


@pytest.mark.parametrize("bad", [None, "sleep", [], 3])
def test_top_table_bad(bad):
    with pytest.raises(BadInput, match="container.top") as err:
        tables.top_table(bad)
    one_sentence(err.value)


def test_good_input_still_works(client):
    """The checks do not get in the way of the shapes the notebooks pass."""
    image = client.images.pull("busybox", tag="1.35")
    assert len(tables.images_table([image])) >= 1
    assert len(tables.images_table(iter([image.attrs]))) >= 1            # any iterable of dicts
    assert list(tables.inspect_table(image, ["Id"], only_first=True)["field"]) == ["Id"]
    assert list(tables.key_value_table({"a": {"b": 1}}, keys=("a.b",))["value"]) == [1]
    assert tables.top_table({"Titles": ["PID"], "Processes": [["1"]]}).shape == (1, 1)


# --- the topic helpers a learner calls (helpers/images.py, lifecycle.py, network.py, attach.py,
# images_from_containers.py, widgets/) -----------------------------------------------------------

def _topic_cases():
    """(id, call(client, run, tmp_path)) pairs: each must raise a course error."""
    from helpers import images, images_from_containers, lifecycle, network

    def text_file(tmp):
        path = tmp / "not-a.tar"
        path.write_text("hello")
        return str(path)

    return [
        ("images.search empty term", lambda c, r, t: images.search(c, "")),
        ("images.search wrong type", lambda c, r, t: images.search(c, 3)),
        ("images.search bad limit", lambda c, r, t: images.search(c, "busybox", limit=0)),
        ("images.search unknown filter", lambda c, r, t: images.search(c, "busybox", filters={"colour": "red"})),
        ("images.pull_events no tag", lambda c, r, t: list(images.pull_events(c, "busybox", None))),
        ("images.pull_events unknown image", lambda c, r, t: list(images.pull_events(c, r.name("nowhere"), "v1"))),
        ("images.tar_contents missing file", lambda c, r, t: images.tar_contents(t / "missing.tar")),
        ("images.tar_contents not a tar", lambda c, r, t: images.tar_contents(text_file(t))),
        ("lifecycle.parse_time garbage", lambda c, r, t: lifecycle.parse_time("yesterday")),
        ("lifecycle.split_timestamps wrong type", lambda c, r, t: lifecycle.split_timestamps(3)),
        ("lifecycle.split_timestamps no timestamps", lambda c, r, t: lifecycle.split_timestamps("hello\n")),
        ("lifecycle.container_events by name", lambda c, r, t: lifecycle.container_events(c, "web", 0)),
        ("network.links not a container", lambda c, r, t: network.links("web")),
        ("network.subnet_of unknown network", lambda c, r, t: network.subnet_of(c, r.name("nonet"))),
        ("network.bridge_name wrong type", lambda c, r, t: network.bridge_name(c, 3)),
        ("network.http_get bad port", lambda c, r, t: network.http_get(c, "80")),
        ("network.remove by name", lambda c, r, t: network.remove("ov")),
        ("network.reaches no patience", lambda c, r, t: network.reaches("web", "db", patience=0)),
        ("lifecycle.wait_for_process no command", lambda c, r, t: lifecycle.wait_for_process("web", "")),
        ("network.remove gone already", lambda c, r, t: _removed_twice(c, r)),
        ("images_from_containers.image_facts unknown", lambda c, r, t: images_from_containers.image_facts(
            c, r.image("nothing"))),
        ("images_from_containers.image_facts wrong type", lambda c, r, t: images_from_containers.image_facts(c, 3)),
        ("images_from_containers.compare_images wrong type",
         lambda c, r, t: images_from_containers.compare_images(c, "web")),
        ("images_from_containers.tar_members missing", lambda c, r, t: images_from_containers.tar_members(
            t / "missing.tar")),
        ("widgets.LifecyclePanel without a run", lambda c, r, t: __import__(
            "helpers.widgets.lifecycle_panel", fromlist=["LifecyclePanel"]).LifecyclePanel(c, "run")),
        ("attach not a container", lambda c, r, t: __import__("helpers.attach", fromlist=["attach"]).attach("web")),
    ]


def _removed_twice(client, run):
    from helpers import network

    net = client.networks.create(run.name("twice"), labels=run.labels)
    network.remove(net)
    network.remove(net)


def _case(case):
    return case if hasattr(case, "marks") else pytest.param(*case)


TOPIC_CASES = [_case(c) for c in _topic_cases()]


@pytest.mark.parametrize("name, call", [pytest.param(*c.values, marks=c.marks, id=c.values[0]) for c in TOPIC_CASES])
def test_topic_helpers_bad_input(client, run, tmp_path, name, call):
    with pytest.raises(CourseError) as err:
        call(client, run, tmp_path)
    one_sentence(err.value)
