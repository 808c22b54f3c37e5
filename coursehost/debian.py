"""The Debian packages the course runs, fetched by apt into the checkout, never installed.

``versions.toml`` names each *lane* (the course's engine, the Docker-in-Docker lane, the registry)
as exact ``suite/version`` pins. :func:`fetch` makes a private apt (its own source list, lists,
cache and an empty dpkg status, all under ``.state/debian/apt``), runs ``apt-get update`` and
``apt-get download PKG=VERSION``, and unpacks the ``.deb`` files with ``dpkg -x`` into
``.state/debian/<lane>-<hash>/``. The machine's apt sources and installed packages are never
touched, so a Debian 12 and a Debian 13 machine run the very same binaries.

Standard library only, and no imports from ``helpers``: ``./course`` runs this file with the
system ``python3`` (``python3 coursehost/debian.py prefetch``) *while* the virtualenv is being
made, so that a fresh machine's two slow steps overlap.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VERSIONS_FILE = ROOT / "versions.toml"
STATE_DIR = Path(os.environ.get("COURSE_STATE_DIR", ROOT / ".state"))
#: The Debian archive apt fetches from (any mirror of deb.debian.org serves the same files).
MIRROR = os.environ.get("COURSE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
#: Where the ``<suite>-security`` suites are (Debian's security archive is a separate tree).
SECURITY_MIRROR = os.environ.get("COURSE_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
#: The lanes a fetch unpacks together: a lane's own packages, and those it shares.
LANES = {"engine": ("engine", "common"), "dind": ("dind", "common"), "registry": ("registry",),
         "browser": ("browser",), "lab": ("lab",)}
#: Lanes that are unpacked with the whole dependency closure of their pins, resolved by a private
#: apt of their own that sees only their suites and believes nothing is installed: a browser is
#: some 240 packages, and none of them needs to be on the machine.
CLOSURE_LANES = {"browser", "lab"}
#: Closure lanes that become an image's whole root file system (the class's lab image): they
#: unpack everything, the C runtime included.
SELF_CONTAINED_LANES = {"lab"}
#: What a closure lane never unpacks: the C/C++ runtime that every Debian with apt has, and whose
#: loader must match it (a Debian 13 machine's ld.so cannot run Debian 12's libc). A Debian 12
#: program runs on Debian 13's newer ones.
NOT_UNPACKED = {"libc6", "libgcc-s1", "gcc-12-base", "libstdc++6"}
#: The multiarch folder of this machine's libraries (``x86_64-linux-gnu``).
MULTIARCH = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(os.uname().machine,
                                                                                f"{os.uname().machine}-linux-gnu")
#: Where programs are in an unpacked package tree (the CLI plugins last: buildx).
BIN_DIRS = ("usr/sbin", "usr/bin", "sbin", "bin", "usr/libexec/docker/cli-plugins")
#: iptables' commands, run through wrappers that give it its own libraries and modules.
IPTABLES_COMMANDS = ("iptables", "iptables-save", "iptables-restore",
                     "ip6tables", "ip6tables-save", "ip6tables-restore")


class AptFailed(RuntimeError):
    """A lane's packages could not be fetched: no apt-get here, the archive no longer has a pinned
    version (the message says which was wanted and which the archive has), or apt-get failed (its
    last line of stderr says why)."""


def versions(path: Path | None = None) -> dict[str, dict[str, tuple[str, str]]]:
    """``versions.toml`` (or ``path``) as ``{section: {package: (suite, version)}}``."""
    with open(path or VERSIONS_FILE, "rb") as f:
        data = tomllib.load(f)
    return {section: {pkg: tuple(pin.split("/", 1)) for pkg, pin in pins.items()}  # type: ignore[misc]
            for section, pins in data.items()}


def pins(lane: str) -> dict[str, tuple[str, str]]:
    """Every package of ``lane`` with its (suite, version), its shared sections included."""
    table = versions()
    return {pkg: pin for section in LANES[lane] for pkg, pin in table[section].items()}


def version(lane: str, package: str) -> str:
    """The upstream version of ``package`` in ``lane`` (``28.5.2`` of ``28.5.2+dfsg4-5``)."""
    full = pins(lane)[package][1]
    return full.split(":", 1)[-1].split("+", 1)[0].split("~", 1)[0].split("-", 1)[0]


def lane_dir(lane: str) -> Path:
    """The folder ``lane`` is unpacked into; its name changes whenever a pin of it changes."""
    digest = hashlib.sha256(json.dumps(sorted(pins(lane).items())).encode()).hexdigest()[:10]
    return STATE_DIR / "debian" / f"{lane}-{digest}"


def _apt_dir(lane: str | None = None) -> Path:
    """The private apt's folder: one shared by the plain lanes, one of its own for a closure lane
    (inside the shared one, so :func:`prune` keeps it), whose lists hold only that lane's suites."""
    base = STATE_DIR / "debian" / "apt"
    return base / f"closure-{lane}" if lane in CLOSURE_LANES else base


def _apt_options(apt: Path | None = None) -> list[str]:
    apt = apt or _apt_dir()
    return ["-o", f"Dir::Etc::SourceList={apt / 'sources.list'}", "-o", "Dir::Etc::SourceParts=/nonexistent",
            "-o", f"Dir::State::Lists={apt / 'lists'}", "-o", f"Dir::State::status={apt / 'status'}",
            "-o", f"Dir::Cache={apt / 'cache'}", "-o", "Dir::Etc::Preferences=/nonexistent",
            "-o", "Dir::Etc::PreferencesParts=/nonexistent", "-o", "APT::Sandbox::User=root",
            "-o", "Debug::NoLocking=1", "-o", "APT::Get::AllowUnauthenticated=false",
            # The mirror here serves a frozen snapshot, and testing's Release file is past its
            # Valid-Until: accept that (signatures are still checked, every version is exact).
            "-o", "Acquire::Check-Valid-Until=false", "-qq"]


def _apt(argv: list[str], cwd: Path | None = None, apt: Path | None = None) -> subprocess.CompletedProcess:
    if shutil.which("apt-get") is None:
        raise AptFailed("the course fetches Docker's Debian packages with apt, and this machine has no apt-get: "
                        "install Docker yourself, start it, and run this again")
    return subprocess.run([argv[0], *_apt_options(apt), *argv[1:]], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C"))


def _last_line(done: subprocess.CompletedProcess) -> str:
    return (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no message"])[-1]


def _source(suite: str) -> str:
    """The archive a suite is in: ``bookworm-security`` is in Debian's security archive."""
    return SECURITY_MIRROR if suite.endswith("-security") else MIRROR


def update(suites: set[str], apt: Path | None = None) -> None:
    """Write the private source list for ``suites`` and run ``apt-get update`` on it."""
    apt = apt or _apt_dir()
    for sub in ("lists/partial", "cache/archives/partial"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "status").touch()
    keyring = f" [signed-by={KEYRING}]" if KEYRING.exists() else ""
    if apt == _apt_dir():
        # the shared apt of the plain lanes lists every suite they use, whichever lane asks, so
        # that a fetch of one lane never drops another's lists (closure lanes have their own)
        suites = set(suites) | {suite for lane in LANES if lane not in CLOSURE_LANES
                                for suite, _ in pins(lane).values()}
    (apt / "sources.list").write_text("".join(f"deb{keyring} {_source(s)} {s} main\n" for s in sorted(suites)))
    done = _apt(["apt-get", "update"], apt=apt)
    if done.returncode != 0:
        raise AptFailed(f"`apt-get update` for Debian {', '.join(sorted(suites))} failed: {_last_line(done)}")


def available(package: str, suite: str, apt: Path | None = None) -> list[str]:
    """The versions of ``package`` the private apt's lists have for ``suite``."""
    done = _apt(["apt-cache", "madison", package], apt=apt)
    return [cols[1].strip() for cols in (line.split("|") for line in done.stdout.splitlines())
            if len(cols) >= 3 and f" {suite}/" in cols[2]]


def _download(wanted: dict[str, tuple[str, str]], into: Path, closure: bool = False,
              apt: Path | None = None) -> None:
    exact = [f"{pkg}={ver}" for pkg, (_, ver) in sorted(wanted.items())]
    if closure:  # the pins and everything they depend on (not what they recommend), into ``into``
        (into / "partial").mkdir(exist_ok=True)
        done = _apt(["apt-get", "install", "-y", "--download-only", "--no-install-recommends",
                     "-o", f"Dir::Cache::archives={into}", *exact], apt=apt)
    else:
        done = _apt(["apt-get", "download", *exact], cwd=into, apt=apt)
    if done.returncode == 0:
        return
    for pkg, (suite, ver) in sorted(wanted.items()):
        have = available(pkg, suite, apt=apt)
        if ver not in have:
            found = ", ".join(have) or "none"
            raise AptFailed(f"versions.toml wants {pkg} {ver} from Debian {suite}, and the archive now has {found}: "
                            f"put one of those in versions.toml and run this again")
    raise AptFailed(f"`apt-get download` failed: {_last_line(done)}")


def fetch(lane: str) -> Path:
    """Make sure ``lane``'s packages are unpacked; return its folder (quick when they are).

    One process at a time fetches (a lock file in ``.state/debian/``): ``./course``'s prefetch,
    the DinD pass and two tests may ask for the same lane at once, and the others then find it
    done. Raises :class:`AptFailed` when they cannot be fetched, saying why in one sentence.
    """
    import fcntl

    target = lane_dir(lane)
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # every lane: the plain lanes share one apt folder
        if (target / ".complete").exists():
            return target
        return _fetch(lane, target)


def _fetch(lane: str, target: Path) -> Path:
    wanted = pins(lane)
    suites = {suite for suite, _ in wanted.values()}
    apt, closure = _apt_dir(lane), lane in CLOSURE_LANES
    lists = apt / "lists"
    have_lists = {s for s in suites if any(lists.glob(f"*_dists_{s}_*Packages*"))} if lists.is_dir() else set()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        debs = Path(tmp) / "debs"
        debs.mkdir()
        if have_lists != suites:
            update(suites, apt=apt)
        try:
            _download(wanted, debs, closure=closure, apt=apt)
        except AptFailed:
            update(suites, apt=apt)  # lists from an earlier day: the archive may have moved on
            _download(wanted, debs, closure=closure, apt=apt)
        tree = Path(tmp) / "tree"
        unpacked = {}
        for deb in sorted(debs.glob("*.deb")):
            name, ver = deb.name.split("_")[:2]
            if closure and name in NOT_UNPACKED and lane not in SELF_CONTAINED_LANES:
                continue
            unpacked[name] = ver.replace("%3a", ":")
            done = subprocess.run(["dpkg", "-x", str(deb), str(tree)], capture_output=True, text=True)
            if done.returncode != 0:
                raise AptFailed(f"`dpkg -x {deb.name}` failed: {_last_line(done)}")
        _iptables_wrappers(tree)
        if lane == "browser":
            _browser_wrapper(tree, target)
        (tree / ".complete").write_text(json.dumps(unpacked if closure else wanted, sort_keys=True, indent=1) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        tree.rename(target)
    return target


def _iptables_wrappers(tree: Path) -> None:
    """``course-bin/iptables`` and friends: xtables-nft-multi with the lane's own libraries."""
    if not (tree / "usr/sbin/xtables-nft-multi").exists():
        return
    (tree / "course-bin").mkdir(exist_ok=True)
    for command in IPTABLES_COMMANDS:
        wrapper = tree / "course-bin" / command
        wrapper.write_text("#!/bin/sh\n# iptables from the course's Debian packages, with their own libraries\n"
                           'root="$(dirname "$(dirname "$(readlink -f "$0")")")"\n'
                           'LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" '
                           'XTABLES_LIBDIR="$root/usr/lib/x86_64-linux-gnu/xtables" '
                           f'exec "$root/usr/sbin/xtables-nft-multi" {command} "$@"\n')
        wrapper.chmod(0o755)



def _browser_wrapper(tree: Path, target: Path) -> None:
    """``course-bin/chromium``: Debian's Chromium with the lane's own libraries and fonts.

    ``tree`` is unpacked now and becomes ``target``: the files name ``target``'s paths. The fonts
    are the lane's alone (``course-fonts/fonts.conf``; DejaVu for Latin text, WenQuanYi Micro Hei
    for Chinese), so a screenshot looks the same on every machine.
    """
    if not (tree / "usr/lib/chromium/chromium").exists():
        return
    fonts = tree / "course-fonts"
    fonts.mkdir(exist_ok=True)
    aliases = {"sans-serif": ("DejaVu Sans", "WenQuanYi Micro Hei"), "serif": ("DejaVu Serif", "WenQuanYi Micro Hei"),
               "monospace": ("DejaVu Sans Mono", "WenQuanYi Micro Hei Mono")}
    (fonts / "fonts.conf").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n'
        "<!-- the browser lane's own fonts, written by coursehost/debian.py -->\n<fontconfig>\n"
        f"  <dir>{target / 'usr/share/fonts'}</dir>\n  <cachedir>{target / 'course-fonts/cache'}</cachedir>\n"
        + "".join(f"  <alias><family>{generic}</family><prefer>"
                  + "".join(f"<family>{f}</family>" for f in families) + "</prefer></alias>\n"
                  for generic, families in aliases.items())
        + "</fontconfig>\n")
    libs = ":".join(str(target / d) for d in (f"usr/lib/{MULTIARCH}", f"lib/{MULTIARCH}",
                                             f"usr/lib/{MULTIARCH}/pulseaudio"))
    (tree / "course-bin").mkdir(exist_ok=True)
    wrapper = tree / "course-bin" / "chromium"
    wrapper.write_text("#!/bin/sh\n# Debian's Chromium from the course's browser lane, with its own libraries and fonts\n"
                       f'LD_LIBRARY_PATH="{libs}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}" '
                       f'FONTCONFIG_FILE="{target / "course-fonts/fonts.conf"}" '
                       + f'exec "{target / "usr/lib/chromium/chromium"}" "$@"\n')
    wrapper.chmod(0o755)


def bin_dirs(lane: str) -> list[Path]:
    """The folders of ``lane`` that hold programs, the iptables wrappers first."""
    root = lane_dir(lane)
    return [root / "course-bin", *(root / d for d in BIN_DIRS)]


def program(lane: str, name: str) -> Path:
    """The path of program ``name`` in ``lane`` (fetched if need be); AptFailed if it has none."""
    fetch(lane)
    for folder in bin_dirs(lane):
        if (folder / name).exists():
            return folder / name
    raise AptFailed(f"none of the packages of the {lane} lane in versions.toml has a program called {name}")


def path_with(lane: str, path: str | None = None) -> str:
    """A ``PATH`` that finds ``lane``'s programs before the machine's."""
    rest = path if path is not None else os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return os.pathsep.join([*(str(d) for d in bin_dirs(lane) if d.is_dir()), rest])


def cli_config(config_dir: Path | None = None) -> Path:
    """A docker CLI configuration folder whose CLI finds the engine lane's buildx plugin.

    ``DOCKER_CONFIG`` pointed at it (``./course`` does, unless the learner set one) makes the
    lane's ``docker`` find ``docker buildx`` through ``cliPluginsExtraDirs`` (docker CLI 24+,
    docs.docker.com/reference/cli/docker/#configuration-files). No credentials are kept there
    by the course; ``docker login`` writes to it like any config folder.
    """
    folder = config_dir or STATE_DIR / "docker-config"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.json"
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        data = {}
    plugins = str(lane_dir("engine") / "usr/libexec/docker/cli-plugins")
    if data.get("cliPluginsExtraDirs") != [plugins]:
        data["cliPluginsExtraDirs"] = [plugins]
        config.write_text(json.dumps(data, indent=1) + "\n")
    return folder


def in_use(proc: Path = Path("/proc")) -> set[Path]:
    """The lane folders some running process was started from (its executable lives there)."""
    used = set()
    base = STATE_DIR / "debian"
    for exe in proc.glob("[0-9]*/exe"):
        try:
            target = Path(os.readlink(exe))
        except OSError:
            continue
        if base in target.parents:
            used.add(base / target.relative_to(base).parts[0])
    return used


def prune() -> list[Path]:
    """Remove lane folders that ``versions.toml`` no longer names and nothing runs from."""
    base = STATE_DIR / "debian"
    keep = {lane_dir(lane) for lane in LANES} | in_use() | {_apt_dir()}
    removed = []
    for folder in sorted(base.glob("*-*")) if base.is_dir() else []:
        if folder.is_dir() and folder not in keep and not folder.name.startswith("."):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def engine_will_be_needed() -> bool:
    """Whether ``./course`` is about to start its own engine here: Linux, root, apt, and no
    ``DOCKER_HOST`` or docker context naming another daemon."""
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    if os.environ.get("DOCKER_HOST") or os.environ.get("DOCKER_CONTEXT"):
        return False
    config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        return json.loads(config.read_text()).get("currentContext") in (None, "", "default")
    except (OSError, ValueError, AttributeError):
        return True


def prefetch() -> int:
    """Fetch the lanes the command will need now, silently; always 0 (the engine step fetches
    again and reports what is wrong). The engine lane's CLI is wanted even for a remote daemon:
    the tests compare against it."""
    lanes = ["engine", "registry"] if engine_will_be_needed() else ["engine"]
    for lane in lanes:
        try:
            fetch(lane)
        except Exception:  # noqa: BLE001
            pass
    return 0


def main(argv: list[str]) -> int:
    if argv == ["prefetch"]:
        return prefetch()
    if len(argv) == 2 and argv[0] == "fetch" and argv[1] in LANES:
        try:
            print(fetch(argv[1]))
        except AptFailed as err:
            print(f"[course] {err}", file=sys.stderr)
            return 1
        return 0
    print("usage: python3 coursehost/debian.py prefetch | fetch " + "|".join(LANES), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
