"""No learner notebook does anything unsafe on a shared machine.

Every code cell of every notebook is scanned for: a privileged container (``privileged=True``,
``--privileged``), the Docker socket handed to a container (``docker.sock`` anywhere), ports
published on every interface (``0.0.0.0``, a docker-py ``ports=`` value without a host IP,
``-p 8080:80`` without one, ``-P`` / ``publish_all_ports=True``), and URLs that leave the machine
(a string URL whose host is neither loopback nor a course container's name). The cheat sheets'
CLI forms, which a test runs, are scanned for the first two. The scanner itself is tested on
bad and good snippets, so an empty scan is not a silent pass.
"""

from __future__ import annotations

import ast
import io
import ipaddress
import json
import re
import tokenize
from pathlib import Path

import pytest

from tests.cheatsheet import sheet_commands

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}

PRIVILEGED = re.compile(r"privileged\s*=\s*True|--privileged\b")
SOCKET = re.compile(r"docker\.sock")
# (0.0.0.0 itself is judged where it binds: ports= values and -p; a cell may compare against it)
ALL_INTERFACES = re.compile(r"publish_all_ports\s*=\s*True|(?<![\w-])-P\b|--publish-all\b")
# -p / --publish followed by [hostport:]containerport with no host IP in front
CLI_PORT = re.compile(r"(?:(?<![\w-])-p|--publish)[ =]['\"]?(?P<spec>[^\s'\"]+)")
QUOTES = re.compile(r"^[bfrBFRuU]*(\"\"\"|\'\'\'|\"|\')|(\"\"\"|\'\'\'|\"|\')$")
DOCKER_RUN = re.compile(r"\bdocker\s+(?:container\s+)?(?:run|create)\b")
URL = re.compile(r"\b(?:https?|tcp|ftp)://(?P<host>\[[^\]]*\]|[^/:\s'\"{}]*)(?P<rest>[^\s'\"]*)")


def python_source(cell: str) -> str:
    """A code cell as Python: IPython ``!shell`` lines and ``%magics`` become string literals
    (so they are still scanned as text), ``%%`` cell magics whole."""
    if cell.lstrip().startswith("%%"):
        return repr(cell)
    lines = []
    for line in cell.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("!", "%")):
            lines.append(line[: len(line) - len(stripped)] + repr(stripped))
        else:
            lines.append(line)
    return "\n".join(lines)


def _strings(source: str) -> list[str]:
    """Every string literal of the code (comments are not code, so they are not scanned)."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.STRING or tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
                out.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        out.append(source)
    return out


def _without_comments(source: str) -> str:
    try:
        toks = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type != tokenize.COMMENT]
        return tokenize.untokenize(toks)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return source


def _host_ok(host: str) -> bool:
    host = host.strip("[]")
    if host in ("0.0.0.0", "::"):
        return False
    if host in LOOPBACK or host.startswith("127.") or host == "":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host  # a container's or network alias's name (no domain): stays on the daemon
    return ip.is_loopback or ip.is_private  # a container's address on a Docker network


def _port_value_problems(node: ast.AST, assigned: dict[str, ast.AST]) -> list[str]:
    """Problems with a docker-py ``ports=`` value: every binding needs a host IP."""
    if isinstance(node, ast.Name) and node.id in assigned:
        node = assigned[node.id]
    if not isinstance(node, ast.Dict):
        return [f"ports={ast.unparse(node)} cannot be checked: write the dict in the call with "
                "(host_ip, port) tuples"]
    problems = []
    for value in node.values:
        bindings = value.elts if isinstance(value, ast.List) and all(
            isinstance(e, ast.Tuple) for e in value.elts) else [value]
        for b in bindings:
            if isinstance(b, ast.Tuple) and b.elts:
                ip = b.elts[0]
                if isinstance(ip, ast.Constant) and (not isinstance(ip.value, str) or not _host_ok(ip.value)
                                                     or ip.value in ("", "0.0.0.0")):
                    problems.append(f"port published on {ip.value!r}: use '127.0.0.1' or daemon_host(client)")
            else:
                problems.append(f"port {ast.unparse(b)} has no host IP, so it listens on every interface: "
                                "use ('127.0.0.1', port)")
    return problems


def scan_code(cells: list[str]) -> list[str]:
    """Every safety problem in a notebook's code cells, one sentence each."""
    problems: list[str] = []
    trees = []
    for cell in cells:
        source = python_source(cell)
        code = _without_comments(source)
        for pattern, what in ((PRIVILEGED, "a privileged container"), (SOCKET, "the Docker socket in a container"),
                              (ALL_INTERFACES, "a port on every interface")):
            for m in pattern.finditer(code):
                problems.append(f"{what}: {m.group(0)!r}")
        texts = _strings(source)
        joined = " ".join(QUOTES.sub("", t) for t in texts)  # ["docker", "run", "-p", …] too
        for command in DOCKER_RUN.split(joined)[1:]:
            for m in CLI_PORT.finditer(command):
                spec = m.group("spec")
                parts = spec.split(":")
                if len(parts) < 3 and not spec.startswith("["):
                    problems.append(f"-p {spec} has no host IP: write -p 127.0.0.1:{spec}")
                elif not _host_ok(parts[0].strip("[]")) and "{" not in parts[0] and "$" not in parts[0]:
                    problems.append(f"-p {spec} listens on {parts[0]}: use 127.0.0.1")
        for text in texts:
            for m in URL.finditer(text):
                if not _host_ok(m.group("host")):
                    problems.append(f"a URL leaving the machine: {m.group(0)!r}")
        try:
            trees.append(ast.parse(source))
        except SyntaxError:
            continue
    assigned: dict[str, ast.AST] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                assigned[node.targets[0].id] = node.value
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "ports" and not (isinstance(kw.value, ast.Constant) and kw.value.value is None):
                        problems += _port_value_problems(kw.value, assigned)
    return problems


def code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_safe(path):
    problems = scan_code(code_cells(path))
    assert not problems, f"{path.name}: " + "; ".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_cheat_sheet_is_safe(path):
    try:
        commands = sheet_commands(path)
    except AssertionError:
        pytest.skip("no cheat sheet yet")
    bad = [c for c in commands if PRIVILEGED.search(c) or SOCKET.search(c)]
    assert not bad, f"{path.name}: the cheat sheet runs {bad}"


# --- the scanner finds what it must, and passes what is fine ------------------------------------

BAD = [
    'client.containers.run(BASE_IMAGE, privileged=True)',
    '!docker run --privileged busybox:1.35',
    'client.containers.run(BASE_IMAGE, volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock"}})',
    'client.containers.run(BASE_IMAGE, volumes=["/run/docker.sock:/s"])',
    'client.containers.run(BASE_IMAGE, ports={"80/tcp": 8080})',
    'client.containers.run(BASE_IMAGE, ports={"80/tcp": None})',
    'client.containers.run(BASE_IMAGE, ports={"80/tcp": ("0.0.0.0", 8080)})',
    'client.containers.run(BASE_IMAGE, ports={"80/tcp": ("", 8080)})',
    'p = {"80/tcp": 8080}\nclient.containers.run(BASE_IMAGE, ports=p)',
    'client.containers.run(BASE_IMAGE, publish_all_ports=True)',
    '!docker run -d -p 8080:80 busybox:1.35 httpd -f',
    '!docker run -d -P busybox:1.35',
    'subprocess.run(["docker", "run", "-p", "8080:80", "busybox:1.35"])',
    'subprocess.run("docker run --publish=0.0.0.0:8080:80 busybox:1.35", shell=True)',
    'urllib.request.urlopen("http://example.com/")',
    'urllib.request.urlopen("https://8.8.8.8/")',
    'urllib.request.urlopen("http://0.0.0.0:8080/")',
    'c.exec_run("wget -qO- http://registry-1.docker.io/v2/")',
]

GOOD = [
    'client.containers.run(BASE_IMAGE, ports={"80/tcp": ("127.0.0.1", 8080)})',
    'client.containers.run(BASE_IMAGE, ports={"80/tcp": (daemon_host(client), None)})',
    'client.containers.run(BASE_IMAGE, ports={"80/tcp": [("127.0.0.1", 8080), ("::1", 8080)]})',
    'client.containers.run(BASE_IMAGE, ports=None)',
    '!docker run -d -p 127.0.0.1:8080:80 busybox:1.35 httpd -f',
    'urllib.request.urlopen(f"http://{daemon_host(client)}:{port}/")',
    'urllib.request.urlopen("http://127.0.0.1:8080/")',
    'c.exec_run(["wget", "-qO-", f"http://{run.name(\'web\')}/"])',
    'c.exec_run("wget -qO- http://web/")',
    'c.exec_run("wget -qO- http://172.18.0.2/")',
    '# privileged=True would fail here anyway (see the notes); http://example.com',
    'top = container.top(ps_args="-p 1")',
    'print("not on every interface:", binding["HostIp"] != "0.0.0.0")',
]


@pytest.mark.parametrize("code", BAD)
def test_scanner_finds(code):
    assert scan_code([code]), code


@pytest.mark.parametrize("code", GOOD)
def test_scanner_passes(code):
    assert scan_code([code]) == [], code
