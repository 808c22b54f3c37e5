"""Nothing the course ships reads what Docker Engine 29 (API 1.52) no longer returns.

docker-py's ``from_env()`` negotiates the newest API the daemon speaks, so a learner on Docker 29
gets the newest response shapes; code that indexes a removed field raises ``KeyError`` there (or,
through ``.get``, quietly gets ``None``), and a Go template that names one prints nothing. Removed:

- container inspect: the top-level ``NetworkSettings`` addresses (``IPAddress``, ``Gateway``,
  ``MacAddress`` and their siblings ``IPPrefixLen``, ``GlobalIPv6Address``,
  ``GlobalIPv6PrefixLen``, ``IPv6Gateway``, ``EndpointID``): read
  ``NetworkSettings.Networks[NAME]`` instead (docs.docker.com/engine/deprecated/, "Container
  top-level network properties in NetworkSettings"; API 1.52);
- events: ``status``, ``id``, ``from`` — read ``Type``, ``Action``, ``Actor`` (API 1.52, "GET
  /events no longer includes the deprecated status, id, and from fields");
- image inspect and lists: ``Container``, ``ContainerConfig``, ``VirtualSize`` (API 1.44–1.45);
- pull (and push, load, build) progress messages: the ``progress`` string — read
  ``progressDetail`` (Engine 29).

The scan is static: ``ast`` for Python (helpers/, coursehost/, tests/, bench/, and every
notebook's code cells, shell lines included), a regular expression for Go templates (in Python
strings and in the shipped CI and class configs). To stay precise it follows values: a key is
flagged only on what comes from ``NetworkSettings`` (not ``Networks[…]``), from ``events()``,
from an image (``images.get``, ``inspect_image``, ``api.images()``…) or from a progress stream
(``api.pull(…, stream=True)``…), through assignments, loops, comprehensions, ``self.``
attributes, function returns and the parameters of the functions they are passed to.
``ContainerConfig`` and ``VirtualSize`` exist nowhere else and are flagged on any value.
"""

from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

REMOVED_NETWORK = {"IPAddress", "Gateway", "MacAddress", "IPPrefixLen", "GlobalIPv6Address", "GlobalIPv6PrefixLen",
                   "IPv6Gateway", "EndpointID"}
REMOVED_EVENT = {"status", "id", "from"}
REMOVED_IMAGE = {"Container", "ContainerConfig", "VirtualSize"}
IMAGE_ONLY = {"ContainerConfig", "VirtualSize"}                 # no other object has these keys
REMOVED_STREAM = {"progress"}

ADVICE = {"netsettings": "read NetworkSettings.Networks[NAME] instead",
          "events": "read Type, Action and Actor instead",
          "image": "gone from image inspect and lists since API 1.44",
          "stream": "read progressDetail instead"}

# Go templates: docker inspect -f / --format, docker events --format
_NET = "|".join(sorted(REMOVED_NETWORK))
TEMPLATE_RULES = [
    (re.compile(r"\{\{[^}]*(?<![\w)\]])\.NetworkSettings\.(" + _NET + r")\b[^}]*\}\}"), None,
     "top-level NetworkSettings.{}: " + ADVICE["netsettings"]),
    (re.compile(r"\{\{[^}]*(?<![\w)\]])\.(ContainerConfig|VirtualSize)\b[^}]*\}\}"), None,
     "image {}: " + ADVICE["image"]),
    (re.compile(r"\{\{[^}]*(?<![\w)\]])\.(Container)\b(?![\w.])[^}]*\}\}"), re.compile(r"\binspect\b"),
     "image {}: " + ADVICE["image"]),
    (re.compile(r"\{\{[^}]*(?<![\w)\]])\.(Status|ID|From|status|id|from)\b[^}]*\}\}"), re.compile(r"\bevents\b"),
     "event {}: " + ADVICE["events"]),
]


def template_findings(text: str) -> list[str]:
    """What the Go templates in ``text`` (one line or one command) read that API 1.52 removed."""
    found = []
    for pattern, context, message in TEMPLATE_RULES:
        if context is not None and not context.search(text):
            continue
        found += [message.format(m.group(1)) for m in pattern.finditer(text)]
    return found


# --- Python: which values are what --------------------------------------------------------------

#: Method names too common to follow from a call to a function of that name (dict.get, list.append…).
NOT_FOLLOWED = {"get", "update", "run", "start", "stop", "list", "pull", "push", "load", "build", "remove", "wait",
                "append", "items", "keys", "values", "read", "write", "close", "format", "join", "split", "copy",
                "pop", "setdefault", "add", "extend", "insert", "sort", "replace", "strip", "cleanup", "main",
                "name", "path", "print", "display", "len", "str", "dict", "set", "sorted", "list", "next", "iter"}
#: Builtins whose result holds the same values as their (first) argument.
SAME_VALUES = {"list", "sorted", "iter", "next", "reversed", "tuple", "enumerate", "dict"}
#: Methods that put their argument into the object they are called on (``self.events.append(ev)``).
ADDS = {"append": 0, "extend": 0, "add": 0, "insert": 1, "appendleft": 0, "put": 0}
#: Methods whose result holds the values of the object they are called on.
KEEPS = {"values", "copy", "popleft", "pop"}
API_LIKE = {"api", "low", "apiclient", "api_client"}


def _is_api(node: ast.expr) -> bool:
    """``client.api``, ``api``, ``docker.APIClient(...)``: the low-level client, whose calls stream."""
    if isinstance(node, ast.Attribute):
        return node.attr in API_LIKE
    if isinstance(node, ast.Name):
        return node.id in API_LIKE
    if isinstance(node, ast.Call):
        f = node.func
        return (isinstance(f, ast.Attribute) and f.attr == "APIClient") or (isinstance(f, ast.Name) and f.id == "APIClient")
    return False


def _on(node: ast.expr, collection: str) -> bool:
    """Whether ``node`` is ``<something>.<collection>`` (``client.images``, ``self.client.containers``)."""
    return isinstance(node, ast.Attribute) and node.attr == collection


def _str_key(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _streams(call: ast.Call) -> bool:
    return any(k.arg == "stream" and isinstance(k.value, ast.Constant) and k.value.value for k in call.keywords)


@dataclass
class Unit:
    """One file to scan, or one notebook (its code cells in order, one namespace)."""
    label: str
    tree: ast.Module
    where: callable  # line -> "path:line"
    docstrings: set[int] = field(default_factory=set)


class Scan:
    def __init__(self, units: list[Unit]):
        self.units = units
        self.defs: dict[str, list[ast.FunctionDef]] = defaultdict(list)
        self.unit_of: dict[int, str] = {}
        self.returns: dict[str, set[str]] = defaultdict(set)
        self.params: dict[tuple[str, str], set[str]] = defaultdict(set)
        for unit in units:
            for node in ast.walk(unit.tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.defs[node.name].append(node)
                    self.unit_of[id(node)] = unit.label
                if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body \
                        and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
                    unit.docstrings.add(id(node.body[0].value))

    def findings(self) -> list[str]:
        for _ in range(8):  # to a fixed point: what functions return, what their parameters get
            state = ({k: set(v) for k, v in self.returns.items()}, {k: set(v) for k, v in self.params.items()})
            self.found: set[tuple[str, int, str]] = set()
            for unit in self.units:
                self.unit, self.self_attrs = unit, defaultdict(set)
                for _ in range(2):
                    self.block(unit.tree.body, {}, None)
            if state == ({k: set(v) for k, v in self.returns.items()}, {k: set(v) for k, v in self.params.items()}):
                break
        return sorted(f"{self.units_by_label[label].where(line)}: {msg}" for label, line, msg in self.found)

    @property
    def units_by_label(self) -> dict[str, Unit]:
        return {u.label: u for u in self.units}

    def flag(self, node: ast.AST, message: str) -> None:
        self.found.add((self.unit.label, node.lineno, message))

    # --- what a value is ---
    def kind(self, node: ast.expr | None, env: dict[str, set[str]]) -> set[str]:
        if node is None:
            return set()
        if isinstance(node, ast.Name):
            return set(env.get(node.id, ()))
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return set(self.self_attrs.get(node.attr, ()))
            return self.kind(node.value, env) if node.attr == "attrs" else set()
        if isinstance(node, ast.Subscript):
            key = _str_key(node.slice)
            if key is not None:
                return {"netsettings"} if key == "NetworkSettings" else set()
            return self.kind(node.value, env) - {"netsettings"}   # an element of a list of events, images…
        if isinstance(node, ast.Call):
            return self.call_kind(node, env)
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            return self.kind(node.elt, self.comprehension_env(node, env))
        if isinstance(node, ast.DictComp):
            return self.kind(node.value, self.comprehension_env(node, env))
        if isinstance(node, ast.IfExp):
            return self.kind(node.body, env) | self.kind(node.orelse, env)
        if isinstance(node, ast.BoolOp):
            return set().union(*(self.kind(v, env) for v in node.values))
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return set().union(set(), *(self.kind(e.value if isinstance(e, ast.Starred) else e, env) for e in node.elts))
        if isinstance(node, ast.NamedExpr):
            return self.kind(node.value, env)
        if isinstance(node, ast.Await):
            return self.kind(node.value, env)
        return set()

    def call_kind(self, call: ast.Call, env: dict[str, set[str]]) -> set[str]:
        f = call.func
        if isinstance(f, ast.Attribute):
            a = f.attr
            if a == "get" and call.args and _str_key(call.args[0]) is not None:
                return {"netsettings"} if _str_key(call.args[0]) == "NetworkSettings" else set()
            if a == "events":
                return {"events"}
            if a in ("inspect_image", "images") and (a == "inspect_image" or _is_api(f.value)):
                return {"image"}
            if _on(f.value, "images") and a in ("get", "list", "load", "pull") and not _streams(call):
                return {"image"}
            if _on(f.value, "images") and a == "build":
                return {"image", "stream"}
            if a == "commit":
                return {"image"}
            if a in ("pull", "push", "build", "import_image", "load_image") and (_is_api(f.value) or _streams(call)):
                return {"stream"}
            if a in KEEPS:
                return self.kind(f.value, env)
            if a in self.returns and (a not in NOT_FOLLOWED or (isinstance(f.value, ast.Name) and f.value.id == "self")):
                return set(self.returns[a])
            return set()
        if isinstance(f, ast.Name):
            if f.id in SAME_VALUES and call.args:
                return self.kind(call.args[0], env)
            if f.id == "filter" and len(call.args) == 2:
                return self.kind(call.args[1], env)
            if f.id in self.returns and f.id not in NOT_FOLLOWED:
                return set(self.returns[f.id])
        return set()

    def comprehension_env(self, node, env):
        inner = dict(env)
        for gen in node.generators:
            self.bind(gen.target, self.kind(gen.iter, inner), inner, gen.iter)
        return inner

    def bind(self, target: ast.expr, kinds: set[str], env: dict[str, set[str]], value: ast.expr | None = None) -> None:
        if isinstance(target, ast.Name):
            env[target.id] = set(kinds)
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
            self.self_attrs[target.attr] |= kinds
        elif isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                for t, v in zip(target.elts, value.elts):
                    self.bind(t, self.kind(v, env), env, v)
            elif isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "build" \
                    and _on(value.func.value, "images") and len(target.elts) == 2:
                self.bind(target.elts[0], {"image"}, env)            # (Image, build log stream)
                self.bind(target.elts[1], {"stream"}, env)
            elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "enumerate":
                self.bind(target.elts[-1], kinds, env)
            else:
                for t in target.elts:
                    self.bind(t, kinds, env)
        elif isinstance(target, ast.Starred):
            self.bind(target.value, kinds, env)

    # --- statements ---
    def block(self, stmts: list[ast.stmt], env: dict[str, set[str]], function: str | None) -> None:
        for stmt in stmts:
            self.statement(stmt, env, function)

    def statement(self, stmt: ast.stmt, env: dict[str, set[str]], function: str | None) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner = dict(env)
            args = [*stmt.args.posonlyargs, *stmt.args.args, *stmt.args.kwonlyargs]
            for a in args + [x for x in (stmt.args.vararg, stmt.args.kwarg) if x]:
                inner[a.arg] = set(self.params.get((stmt.name, a.arg), ()))
            for d in stmt.decorator_list:
                self.check(d, env)
            for _ in range(2):
                self.block(stmt.body, inner, stmt.name)
            return
        if isinstance(stmt, ast.ClassDef):
            self.block(stmt.body, env, function)
            return
        for expr in self.own_expressions(stmt):
            self.check(expr, env, function)
        if isinstance(stmt, ast.Assign):
            kinds = self.kind(stmt.value, env)
            for t in stmt.targets:
                self.bind(t, kinds, env, stmt.value)
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)) and stmt.value is not None:
            kinds = self.kind(stmt.value, env)
            if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
                kinds |= env.get(stmt.target.id, set())
            self.bind(stmt.target, kinds, env, stmt.value)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)):
            self.bind(stmt.target, self.kind(stmt.iter, env), env, stmt.iter)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                if item.optional_vars is not None:
                    self.bind(item.optional_vars, self.kind(item.context_expr, env), env)
        elif isinstance(stmt, ast.Return) and function is not None:
            self.returns[function] |= self.kind(stmt.value, env)
        for name in ("body", "orelse", "finalbody"):
            body = getattr(stmt, name, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                for _ in range(2 if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)) else 1):
                    self.block(body, env, function)
        for handler in getattr(stmt, "handlers", []) or []:
            self.block(handler.body, env, function)
        for case in getattr(stmt, "cases", []) or []:
            self.block(case.body, env, function)

    @staticmethod
    def own_expressions(stmt: ast.stmt) -> list[ast.expr]:
        """The expressions of a statement itself (not of the statements in its body)."""
        out = []
        for name, value in ast.iter_fields(stmt):
            if name in ("body", "orelse", "finalbody", "handlers", "cases"):
                continue
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, ast.expr):
                    out.append(v)
                elif isinstance(v, ast.withitem):
                    out += [v.context_expr] + ([v.optional_vars] if v.optional_vars else [])
        return out

    # --- reads ---
    def check(self, node: ast.expr, env: dict[str, set[str]], function: str | None = None) -> None:
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            inner = dict(env)
            for gen in node.generators:
                self.check(gen.iter, inner, function)
                self.bind(gen.target, self.kind(gen.iter, inner), inner, gen.iter)
                for cond in gen.ifs:
                    self.check(cond, inner, function)
            for part in ((node.key, node.value) if isinstance(node, ast.DictComp) else (node.elt,)):
                self.check(part, inner, function)
            return
        if isinstance(node, ast.Lambda):
            inner = dict(env)
            for a in node.args.args:
                inner[a.arg] = set()
            self.check(node.body, inner, function)
            return
        if isinstance(node, (ast.Yield, ast.YieldFrom)) and function is not None and node.value is not None:
            self.returns[function] |= self.kind(node.value, env)
        if isinstance(node, ast.NamedExpr):
            self.bind(node.target, self.kind(node.value, env), env)
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            self.key_read(node, node.value, _str_key(node.slice), env)
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr == "get" and node.args:
                self.key_read(node, f.value, _str_key(node.args[0]), env)
            if isinstance(f, ast.Attribute) and f.attr in ADDS and len(node.args) > ADDS[f.attr]:
                added = self.kind(node.args[ADDS[f.attr]], env)
                if added and isinstance(f.value, ast.Name):
                    env[f.value.id] = env.get(f.value.id, set()) | added
                elif added and isinstance(f.value, ast.Attribute) and isinstance(f.value.value, ast.Name) \
                        and f.value.value.id == "self":
                    self.self_attrs[f.value.attr] |= added
            self.follow_call(node, env)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in self.unit.docstrings \
                and "{{" in node.value:
            for message in template_findings(node.value):
                self.flag(node, message)
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "" for v in node.values)
            for message in template_findings(text):
                self.flag(node, message)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr) and not (isinstance(node, ast.JoinedStr) and isinstance(child, ast.Constant)):
                self.check(child, env, function)
            elif isinstance(child, ast.keyword):
                self.check(child.value, env, function)
            elif isinstance(child, ast.comprehension):
                pass

    def key_read(self, node: ast.AST, value: ast.expr, key: str | None, env: dict[str, set[str]]) -> None:
        if key is None:
            return
        kinds = self.kind(value, env)
        if key in IMAGE_ONLY:
            self.flag(node, f"image {key}: {ADVICE['image']}")
        elif key in REMOVED_NETWORK and "netsettings" in kinds:
            self.flag(node, f"top-level NetworkSettings {key}: {ADVICE['netsettings']}")
        elif key in REMOVED_EVENT and "events" in kinds:
            self.flag(node, f"event {key}: {ADVICE['events']}")
        elif key == "Container" and "image" in kinds:
            self.flag(node, f"image {key}: {ADVICE['image']}")
        elif key in REMOVED_STREAM and "stream" in kinds:
            self.flag(node, f"progress message {key}: {ADVICE['stream']}")

    def follow_call(self, call: ast.Call, env: dict[str, set[str]]) -> None:
        """What a call passes in becomes what the called function's parameters are."""
        f = call.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
        on_self = isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "self"
        if name is None or (name in NOT_FOLLOWED and not on_self) or name not in self.defs:
            return
        for definition in self.defs[name]:
            if on_self and self.unit_of[id(definition)] != self.unit.label:
                continue                                        # self.update(…): this file's method
            params = [a.arg for a in (*definition.args.posonlyargs, *definition.args.args)]
            if isinstance(f, ast.Attribute) and params[:1] in (["self"], ["cls"]):
                params = params[1:]
            for param, arg in zip(params, call.args):
                if not isinstance(arg, ast.Starred):
                    self.params[(name, param)] |= self.kind(arg, env)
            for kw in call.keywords:
                if kw.arg is not None:
                    self.params[(name, kw.arg)] |= self.kind(kw.value, env)


# --- what is scanned ----------------------------------------------------------------------------

def python_unit(path: Path, text: str | None = None) -> Unit:
    label = str(path.relative_to(ROOT)) if path.is_absolute() else str(path)
    return Unit(label, ast.parse(text if text is not None else path.read_text()), lambda line: f"{label}:{line}")


def notebook_unit(path: Path) -> Unit:
    """A notebook's code cells, in order, as one module: IPython's own transformer turns
    ``!docker …`` lines and magics into Python, so their templates are scanned too."""
    from IPython.core.inputtransformer2 import TransformerManager

    manager, lines, where = TransformerManager(), [], []
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    for number, cell in enumerate(cells, 1):
        source = manager.transform_cell("".join(cell["source"]))
        for n, line in enumerate(source.splitlines(), 1):
            lines.append(line)
            where.append((number, n))
        lines.append("pass")                                  # a cell that ends in a comment stays a block
        where.append((number, 0))
    label = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
    return Unit(label, ast.parse("\n".join(lines)),
                lambda line: f"{label} code cell {where[line - 1][0]} line {where[line - 1][1]}")


PYTHON_FOLDERS = ["helpers", "coursehost", "tests", "bench"]
CONFIGS = [".github/workflows/course.yml", ".gitlab-ci.yml",
           "deploy/jupyterhub/values.yaml", ".ci/run", "course", "binder/postBuild"]


def course_units() -> list[Unit]:
    units = [python_unit(p) for folder in PYTHON_FOLDERS for p in sorted((ROOT / folder).rglob("*.py"))
             if p != Path(__file__).resolve() and ".ipynb_checkpoints" not in p.parts]
    return units + [notebook_unit(p) for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))]


def config_findings() -> list[str]:
    found = []
    for name in CONFIGS:
        path = ROOT / name
        if path.exists():
            for n, line in enumerate(path.read_text().splitlines(), 1):
                found += [f"{name}:{n}: {message}" for message in template_findings(line)]
    return found


def test_the_course_reads_nothing_api_1_52_removed():
    found = Scan(course_units()).findings() + config_findings()
    assert found == [], "\n".join(["reads of fields Docker Engine 29 (API 1.52) no longer returns:", *found])


# --- the scan itself: what it must flag, and what it must let pass --------------------------------

def scan_snippet(code: str) -> list[str]:
    return Scan([python_unit(Path("snippet.py"), code)]).findings()


def scan_cell(code: str, tmp_path: Path) -> list[str]:
    nb = tmp_path / "nb.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "source": code, "metadata": {}, "outputs": []}],
                              "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    unit = notebook_unit(nb)
    unit.label, unit.where = "nb", lambda line: f"nb:{line}"
    return Scan([unit]).findings()


FLAGGED = {
    "container attrs": 'c = client.containers.get("web")\nip = c.attrs["NetworkSettings"]["IPAddress"]',
    "inspect_container, .get": 'gw = client.api.inspect_container(cid)["NetworkSettings"].get("Gateway")',
    "NetworkSettings in a variable": 'ns = container.attrs.get("NetworkSettings", {})\nmac = ns["MacAddress"]',
    "container list": 'for c in client.api.containers():\n    print(c["NetworkSettings"]["IPPrefixLen"])',
    "event status in a loop": 'for ev in client.events(decode=True):\n    if ev["status"] == "die":\n        break',
    "event id in a comprehension": 'evs = list(client.api.events(since=0, until=1, decode=True))\n'
                                   'ids = [e.get("id") for e in evs]',
    "event from, through a function": 'def origins(evs):\n    return [e["from"] for e in evs]\n'
                                      'origins(client.events(decode=True))',
    "events a function returns": 'def recent(client):\n    return list(client.events(since=0, until=1, decode=True))\n'
                                 'print([e["status"] for e in recent(client)])',
    "events kept on self": 'class Watch:\n    def __init__(self, client):\n'
                           '        self._stream = client.events(decode=True)\n'
                           '    def ids(self):\n        return [ev["id"] for ev in self._stream]',
    "image ContainerConfig": 'img = client.images.get("busybox:1.35")\nprint(img.attrs["ContainerConfig"]["Cmd"])',
    "image Container": 'print(client.api.inspect_image("busybox:1.35")["Container"])',
    "image list VirtualSize": 'sizes = [i["VirtualSize"] for i in client.api.images()]',
    "VirtualSize anywhere": 'row = summary.get("VirtualSize", 0)',
    "built image Container": 'image, logs = client.images.build(path=".", tag="x")\nprint(image.attrs.get("Container"))',
    "committed image": 'snap = container.commit(repository="x")\nsnap.attrs["Container"]',
    "pull progress string": 'for line in client.api.pull("busybox", tag="1.35", stream=True, decode=True):\n'
                            '    print(line.get("progress"))',
    "progress through a generator": 'def pull_lines(api):\n    yield from api.pull("busybox", stream=True, decode=True)\n'
                                    'bars = [m["progress"] for m in pull_lines(client.api)]',
    "events kept in a list on self": 'class Recorder:\n    def __init__(self, client):\n        self.seen = []\n'
                                     '        for ev in client.events(decode=True):\n            self.seen.append(ev)\n'
                                     '    def last(self):\n        return self.seen[-1]["status"]',
    "events merged in a dict": 'past = client.events(since=0, until=1, decode=True)\nmerged = {e["time"]: e for e in past}\n'
                               'print([e["from"] for e in sorted(merged.values(), key=len)])',
    "progress through a method of self": 'class Bars:\n    def __init__(self):\n        self.lines = []\n'
                                         '    def update(self, line):\n        self.lines.append(dict(line))\n'
                                         '    def follow(self, lines):\n        for line in lines:\n            self.update(line)\n'
                                         '        return self.lines\n'
                                         'seen = Bars().follow(client.api.pull("busybox", stream=True, decode=True))\n'
                                         'print(seen[0].get("progress"))',
    "inspect template in a list": 'subprocess.run(["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name])',
    "json template": 'sh(f"docker inspect --format \'{{{{json .NetworkSettings.Gateway}}}}\' {name}")',
    "events template": 'subprocess.run("docker events --since 0 --until 1 --format \'{{.Status}}\'", shell=True)',
    "image inspect template": 'run("docker image inspect -f \'{{.ContainerConfig.Cmd}}\' busybox")',
}

PASSING = {
    "a network's address": 'ip = c.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]',
    "Networks in a variable": 'nets = c.attrs["NetworkSettings"]["Networks"]\n'
                              'gws = [n["Gateway"] for n in nets.values()]\nmacs = [nets[k]["MacAddress"] for k in nets]',
    "an endpoint": 'ep = c.attrs["NetworkSettings"]["Networks"][name]\nprint(ep.get("IPAddress"), ep["MacAddress"])',
    "IPAM gateway": 'gw = client.api.inspect_network(n)["IPAM"]["Config"][0]["Gateway"]',
    "event Type, Action, Actor": 'for ev in client.events(decode=True):\n'
                                 '    print(ev["Type"], ev["Action"], ev["Actor"]["ID"], ev.get("Actor", {}).get("Attributes"))',
    "pull status, id, progressDetail": 'for line in client.api.pull("busybox", stream=True, decode=True):\n'
                                       '    print(line.get("status"), line.get("id"), line["progressDetail"])',
    "pull stream called events": 'def pull_events(client):\n'
                                 '    yield from client.api.pull("busybox", tag="1.35", stream=True, decode=True)\n'
                                 'print([e["status"] for e in pull_events(client) if e.get("id")])',
    "a kernel reply's status": 'reply = kc.get_shell_msg()\nassert reply["content"]["status"] == "ok"',
    "a table's Container column": 'df = pd.DataFrame(rows)\nprint(df["Container"], row["from"], rec["id"])',
    "container state": 'print(c.attrs["State"]["Status"], c.attrs["Config"]["Image"], c.attrs["Id"])',
    "an image's own fields": 'img = client.images.get("busybox:1.35")\nprint(img.attrs["Config"]["Cmd"], img.attrs["Size"])',
    "walk of events by Action": 'def walk(evs):\n    return [e["Action"] for e in evs]\nwalk(client.events(decode=True))',
    "the template over Networks": 'run(["docker", "inspect", "-f", '
                                  '"{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name])',
    "stats template": 'run("docker stats --no-stream --format \'{{.Container}} {{.CPUPerc}}\'")',
    "ps template": 'run("docker ps --format \'{{.ID}} {{.Status}}\'")',
    "events template by Action": 'run("docker events --format \'{{.Type}} {{.Action}} {{.Actor.ID}}\'")',
    "a docstring": 'def ip(c):\n    """Not the old top-level {{.NetworkSettings.IPAddress}}: Networks."""\n'
                   '    return c.attrs["NetworkSettings"]["Networks"]',
}


@pytest.mark.parametrize("code", FLAGGED.values(), ids=FLAGGED.keys())
def test_the_scan_flags(code):
    assert len(scan_snippet(code)) == 1, scan_snippet(code)


@pytest.mark.parametrize("code", PASSING.values(), ids=PASSING.keys())
def test_the_scan_lets_pass(code):
    assert scan_snippet(code) == []


@pytest.mark.parametrize("cell, flagged", [
    ("!docker inspect -f '{{.NetworkSettings.IPAddress}}' web", True),
    ("ip = !docker inspect -f '{{.NetworkSettings.MacAddress}}' web", True),
    ("!docker events --since 0 --until 1 --format '{{.From}}'", True),
    ("!docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' web", False),
    ("%%bash\ndocker inspect -f '{{.NetworkSettings.Networks.bridge.Gateway}}' web", False),
    ("c = client.containers.get('web')\n!echo hi\nc.attrs['NetworkSettings']['IPAddress']", True),
])
def test_the_scan_reads_notebook_cells(tmp_path, cell, flagged):
    assert bool(scan_cell(cell, tmp_path)) is flagged


@pytest.mark.parametrize("line, flagged", [
    ("ip=$(docker inspect -f '{{.NetworkSettings.IPAddress}}' dind)", True),
    ("ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' dind)", False),
    ("docker image inspect --format '{{.Container}}' busybox", True),
    ("docker events --format '{{json .}}'", False),
    ("docker events --filter type=container --format '{{.ID}}'", True),
])
def test_the_scan_reads_config_templates(line, flagged):
    assert bool(template_findings(line)) is flagged
