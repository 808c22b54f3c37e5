"""coursehost/debian.py: the Debian packages the course runs, fetched by a private apt into
``.state/debian/<lane>-<hash>/`` from the exact pins of ``versions.toml``, never installed.

The fetches here use a temporary state folder and versions file (a lane of one small package);
the private apt's package lists are copied from the checkout's so that no test downloads them
again. The archive must be reachable (as for ``./course`` itself).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from coursehost import debian

ROOT = Path(__file__).resolve().parent.parent

#: A lane of one small package of the suite every other lane uses too (Debian 12's libmnl0).
SMALL = ("libmnl0", "bookworm")


def small_pin() -> str:
    """libmnl0's pin in the checkout's versions.toml (so the test fetches what the course does)."""
    return debian.versions(ROOT / "versions.toml")["common"][SMALL[0]][1]


def write_versions(path: Path, engine: dict[str, str]) -> None:
    """A versions.toml whose engine lane is ``engine`` and whose other lanes are empty."""
    body = "".join(f'"{pkg}" = "{pin}"\n' for pkg, pin in engine.items())
    others = sorted({s for sections in debian.LANES.values() for s in sections} - {"engine"})
    path.write_text(f"[engine]\n{body}\n" + "".join(f"[{section}]\n\n" for section in others))


@pytest.fixture
def private_state(tmp_path, monkeypatch) -> Path:
    """debian.py working in ``tmp_path``: its own state folder and versions.toml, with the
    checkout's private package lists of Debian 12 copied in (when there are some)."""
    state = tmp_path / "state"
    monkeypatch.setattr(debian, "STATE_DIR", state)
    monkeypatch.setattr(debian, "VERSIONS_FILE", tmp_path / "versions.toml")
    # versions()'s default path was bound when the module was imported: hand it the new one
    read = debian.versions
    monkeypatch.setattr(debian, "versions", lambda path=None: read(path or debian.VERSIONS_FILE))
    lists = ROOT / ".state" / "debian" / "apt" / "lists"
    (state / "debian" / "apt" / "lists").mkdir(parents=True)
    for f in lists.glob(f"*_dists_{SMALL[1]}_*"):
        shutil.copy2(f, state / "debian" / "apt" / "lists" / f.name)
    keyring = f" [signed-by={debian.KEYRING}]" if debian.KEYRING.exists() else ""
    (state / "debian" / "apt" / "sources.list").write_text(f"deb{keyring} {debian.MIRROR} {SMALL[1]} main\n")
    return state


def _machine_apt() -> dict[str, str]:
    """What of the machine's apt and dpkg a fetch must leave alone: sources, status, lists, cache."""
    seen = {}
    for pattern in ("/etc/apt/sources.list", "/etc/apt/sources.list.d/*", "/etc/apt/preferences.d/*",
                    "/var/lib/dpkg/status", "/var/lib/apt/lists/*", "/var/cache/apt/archives/*.deb"):
        for p in map(Path, sorted(glob.glob(pattern))):
            if p.is_file() and p.name != "lock":
                st = p.stat()
                seen[str(p)] = f"{st.st_size}:{st.st_mtime_ns}:" + (
                    hashlib.sha256(p.read_bytes()).hexdigest() if st.st_size < 5_000_000 else "")
    return seen


# --- versions.toml: the lanes -------------------------------------------------------------------

def test_every_pin_is_suite_slash_exact_version():
    raw = tomllib.loads((ROOT / "versions.toml").read_text())
    lanes = {s for sections in debian.LANES.values() for s in sections}
    assert lanes <= set(raw)
    for section in lanes:
        for pkg, pin in raw[section].items():
            assert re.fullmatch(r"(bookworm|trixie|forky|sid)(-security|-updates)?/[0-9][\w.:+~-]*", pin), \
                (section, pkg, pin)


def test_lanes_take_their_shared_sections():
    assert debian.pins("engine")["runc"] == debian.pins("dind")["runc"]          # [common] in both
    assert "runc" not in debian.pins("registry")
    assert {"docker.io", "containerd", "docker-buildx"} <= set(debian.pins("engine"))
    assert {"docker.io", "containerd"} <= set(debian.pins("dind"))


@pytest.mark.parametrize("pin, upstream", [("forky/28.5.2+dfsg4-5", "28.5.2"),
                                           ("trixie/26.1.5+dfsg1-9+deb13u1+b1", "26.1.5"),
                                           ("trixie/1.7.24~ds1-6+deb13u1", "1.7.24"),
                                           ("bookworm/1:1.35.0-4+deb12u1+b1", "1.35.0"),
                                           ("bookworm/0.19.0-1+b3", "0.19.0")])
def test_upstream_version_of_a_debian_version(private_state, pin, upstream):
    write_versions(debian.VERSIONS_FILE, {"docker.io": pin})
    assert debian.version("engine", "docker.io") == upstream


def test_a_lanes_folder_changes_with_any_of_its_pins(private_state):
    write_versions(debian.VERSIONS_FILE, {"libmnl0": "bookworm/1.0.4-3"})
    first = debian.lane_dir("engine")
    assert first.parent == private_state / "debian" and first.name.startswith("engine-")
    assert debian.lane_dir("engine") == first                                        # stable
    write_versions(debian.VERSIONS_FILE, {"libmnl0": "bookworm/1.0.4-4"})
    assert debian.lane_dir("engine") != first


# --- fetch: private apt only --------------------------------------------------------------------

def test_a_fetch_leaves_the_machines_apt_and_dpkg_alone(private_state):
    """A fetch runs apt-get with its own sources, lists, cache and an empty dpkg status: the
    machine's sources, package lists, cached .debs and installed packages are as they were,
    and the package is unpacked in the lane's folder, not installed."""
    write_versions(debian.VERSIONS_FILE, {SMALL[0]: f"{SMALL[1]}/{small_pin()}"})
    before = _machine_apt()
    target = debian.fetch("engine")
    assert _machine_apt() == before
    assert target == debian.lane_dir("engine") and target.parent == private_state / "debian"
    assert json.loads((target / ".complete").read_text()) == {SMALL[0]: [SMALL[1], small_pin()]}
    assert list(target.glob("usr/lib/x86_64-linux-gnu/libmnl.so.0*"))
    apt = private_state / "debian" / "apt"
    assert not (apt / "status").exists() or (apt / "status").read_text() == ""     # nothing "installed"
    assert (apt / "sources.list").read_text().split() [-2:] == [SMALL[1], "main"]  # its own source list
    assert not list(target.parent.glob(".fetch-*"))                                # its scratch folder went
    assert debian.fetch("engine") == target                                        # again: at once


def test_a_pin_the_archive_no_longer_has_gets_one_sentence(private_state, capsys):
    """Testing moves on: a version versions.toml names that the archive has dropped is named,
    with what the archive has instead, in one sentence (also from the command line)."""
    write_versions(debian.VERSIONS_FILE, {SMALL[0]: f"{SMALL[1]}/0.0.1-1"})
    with pytest.raises(debian.AptFailed) as err:
        debian.fetch("engine")
    message = str(err.value)
    assert message.startswith(f"versions.toml wants {SMALL[0]} 0.0.1-1 from Debian {SMALL[1]}, "
                              "and the archive now has ")
    assert small_pin() in message and message.endswith("run this again")
    assert ". " not in message and "\n" not in message and "Traceback" not in message
    assert not (debian.lane_dir("engine") / ".complete").exists()
    assert debian.main(["fetch", "engine"]) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err.strip() == f"[course] {message}"


def test_programs_paths_and_the_cli_config_of_the_engine_lane(tmp_path):
    dockerd = debian.program("engine", "dockerd")
    assert debian.lane_dir("engine") in dockerd.parents and os.access(dockerd, os.X_OK)
    with pytest.raises(debian.AptFailed, match="none of the packages of the engine lane in versions.toml has "
                                               "a program called no-such-program-dc"):
        debian.program("engine", "no-such-program-dc")
    path = debian.path_with("engine", "/usr/bin:/bin").split(os.pathsep)
    assert path[0] == str(debian.lane_dir("engine") / "course-bin") and path[-2:] == ["/usr/bin", "/bin"]
    assert (debian.lane_dir("engine") / "course-bin" / "iptables").exists()      # iptables with its own libs
    # the CLI's config folder: buildx found through cliPluginsExtraDirs, what was there is kept
    (tmp_path / "config.json").write_text('{"auths": {"127.0.0.1:5000": {}}}')
    assert debian.cli_config(tmp_path) == tmp_path
    config = json.loads((tmp_path / "config.json").read_text())
    plugins = Path(config["cliPluginsExtraDirs"][0])
    assert config["auths"] == {"127.0.0.1:5000": {}} and (plugins / "docker-buildx").exists()


# --- prune: what versions.toml no longer names, unless something runs from it --------------------

def test_prune_keeps_the_lanes_of_versions_toml_and_what_runs(private_state, tmp_path, monkeypatch):
    write_versions(debian.VERSIONS_FILE, {SMALL[0]: f"{SMALL[1]}/{small_pin()}"})
    base = private_state / "debian"
    current = debian.lane_dir("engine")
    old, running = base / "engine-0ld0ld0ld0", base / "dind-5ti11runs"
    for folder in (current, old, running, base / ".fetch-abc123"):
        (folder / "usr/bin").mkdir(parents=True)
    (running / "usr/bin/dockerd").write_text("")
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "exe").symlink_to(running / "usr/bin/dockerd")               # a dockerd of that lane
    (proc / "4243").mkdir()
    (proc / "4243" / "exe").symlink_to("/usr/bin/python3")                        # not the course's
    assert debian.in_use(proc) == {running}
    real_in_use = debian.in_use
    monkeypatch.setattr(debian, "in_use", lambda proc_dir=proc: real_in_use(proc_dir))
    assert debian.prune() == [old]
    assert current.is_dir() and running.is_dir() and (base / "apt").is_dir() and (base / ".fetch-abc123").is_dir()
    assert not old.exists()


def test_the_running_engine_is_in_use():
    """On the course's own engine, its dockerd runs from the engine lane: prune would keep it."""
    from coursehost import procs
    if os.environ.get("DOCKER_HOST") != f"unix://{debian.STATE_DIR / 'docker.sock'}" \
            or procs.read_pid(debian.STATE_DIR / "docker.pid") is None:
        pytest.skip("this daemon is not the course's own engine")
    assert debian.lane_dir("engine") in debian.in_use()


# --- the prefetch ./course runs with the system python3 while the virtualenv is made ------------

@pytest.mark.parametrize("variable", ["DOCKER_HOST", "DOCKER_CONTEXT"])
def test_another_daemon_in_sight_means_no_engine(monkeypatch, variable):
    monkeypatch.setenv(variable, "tcp://10.0.0.5:2375" if variable == "DOCKER_HOST" else "class")
    assert debian.engine_will_be_needed() is False


def test_prefetch_never_fails(monkeypatch):
    fetched = []
    monkeypatch.setattr(debian, "engine_will_be_needed", lambda: True)
    monkeypatch.setattr(debian, "fetch", fetched.append)
    assert debian.prefetch() == 0 and fetched == ["engine", "registry"]
    monkeypatch.setattr(debian, "engine_will_be_needed", lambda: False)
    fetched.clear()
    assert debian.prefetch() == 0 and fetched == ["engine"]                        # the CLI, always

    def fail(lane):
        raise debian.AptFailed("no network")
    monkeypatch.setattr(debian, "fetch", fail)
    assert debian.prefetch() == 0                                                   # the engine step says why


def test_the_file_runs_on_the_system_python_alone():
    """No site-packages, no helpers package: the file on its own, the standard library alone."""
    python = shutil.which("python3", path="/usr/bin:/bin") or "python3"
    done = subprocess.run([python, "-I", "-S", str(ROOT / "coursehost" / "debian.py"), "fetch", "engine"],
                          capture_output=True, text=True, timeout=300, cwd="/")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.strip() == str(debian.lane_dir("engine"))
    bad = subprocess.run([python, "-I", "-S", str(ROOT / "coursehost" / "debian.py"), "install"],
                         capture_output=True, text=True, timeout=60, cwd="/")
    assert bad.returncode == 2 and bad.stderr.startswith("usage:")
