"""Docker's answers as pandas DataFrames, in one place.

docker-py's models keep the raw API document in ``.attrs``. A *listing* (``images.list()``,
``containers.list(sparse=True)``) returns a different, sparser shape than *inspect* (for example
``Created`` is epoch seconds in a listing and an ISO string in inspect; a sparse container has
``Names`` and ``State`` as a string, an inspected one ``Name`` and ``State`` as a dict). Every
function here accepts either shape, a model or a plain dict, so a notebook never has to care.

Columns follow the docker CLI's so a learner can compare the two side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import functools

import pandas as pd

from .errors import BadInput

Doc = Mapping[str, Any]


def attrs(obj: Any) -> Doc:
    """The raw API document of a docker-py model, or the dict itself."""
    if hasattr(obj, "attrs"):
        return obj.attrs
    if isinstance(obj, Mapping):
        return obj
    raise BadInput(f"Expected a docker-py object (an image, container or network) or its .attrs dict, "
                   f"not {_describe(obj)}: pass what client.<kind>.get() or .list() returned.")


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def short_id(value: str | None) -> str:
    """``sha256:5780d8f0…`` → ``5780d8f012b1`` (12 hex digits, as the CLI shows ids)."""
    if not value:
        return "<missing>"
    return value.split(":", 1)[-1][:12]


def human_size(n: int | float | None) -> str:
    """Bytes the way the docker CLI prints them (decimal units, 3 significant digits)."""
    if n is None:
        return ""
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    raise AssertionError("unreachable")


def timestamp(value: int | float | str | None) -> str:
    """Epoch seconds or Docker's ISO time (with nanoseconds) → ``YYYY-MM-DD HH:MM:SS`` UTC."""
    if value in (None, "", 0, "0001-01-01T00:00:00Z"):
        return ""
    if isinstance(value, (int, float)):
        moment = datetime.fromtimestamp(value, tz=timezone.utc)
    else:
        head = value.rstrip("Z").split(".")[0]
        moment = datetime.fromisoformat(head).replace(tzinfo=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _frame(rows: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


# --- images -----------------------------------------------------------------------------------

IMAGE_COLUMNS = ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")


def _split_ref(ref: str) -> tuple[str, str]:
    repo, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:  # "host:5000/name" has no tag
        return ref, "<none>"
    return repo, tag


def images_table(images: Iterable[Any], repository: str | None = None) -> pd.DataFrame:
    """One row per name of each image, like ``docker images``; dangling images show <none>.

    ``repository`` keeps only the rows of that repository, as ``docker images REPOSITORY`` does
    (``images.list(name=…)`` returns whole images, with every name they have). ``SIZE`` is the
    document's ``Size``: in a listing (``client.api.images()``, ``helpers.images.list_images``)
    what ``docker images`` shows; in an inspect document (``client.images.list()`` inspects each
    image) on the containerd image store, only the compressed content (``helpers.images.image_sizes``).
    Digest references (``busybox@sha256:…``, which the containerd store lists among ``RepoTags``
    after a pull by digest) are not tags: no row of their own, as in ``docker images``; API 1.44+
    gives an untagged image ``RepoTags: []`` (older ones ``["<none>:<none>"]``): both show <none>.
    """
    rows = []
    for image in images:
        doc = attrs(image)
        refs = doc.get("RepoTags") or []
        tags = [t for t in refs if "@" not in t and t != "<none>:<none>"]
        if not tags:  # no name: its repositories (from digest references) with tag <none>, as the CLI
            tags = sorted({t.split("@")[0] + ":<none>" for t in refs if "@" in t}) or ["<none>:<none>"]
        for ref in tags:
            repo, tag = _split_ref(ref)
            if repository is not None and repo != repository:
                continue
            rows.append({"REPOSITORY": repo, "TAG": tag, "IMAGE ID": short_id(doc.get("Id")),
                         "CREATED": timestamp(doc.get("Created")), "SIZE": human_size(doc.get("Size"))})
    rows.sort(key=lambda r: (r["REPOSITORY"], r["TAG"]))
    return _frame(rows, IMAGE_COLUMNS)


HISTORY_COLUMNS = ("IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT")


def history_table(history: Iterable[Doc]) -> pd.DataFrame:
    """``image.history()`` like ``docker history --no-trunc``: newest layer first."""
    rows = [{"IMAGE": short_id(h.get("Id")) if h.get("Id") not in (None, "<missing>") else "<missing>",
             "CREATED": timestamp(h.get("Created")), "CREATED BY": h.get("CreatedBy", ""),
             "SIZE": human_size(h.get("Size")), "COMMENT": h.get("Comment", "")} for h in history]
    return _frame(rows, HISTORY_COLUMNS)


# --- containers -------------------------------------------------------------------------------

CONTAINER_COLUMNS = ("NAME", "IMAGE", "COMMAND", "STATE", "EXIT CODE", "PORTS")


def _ports(doc: Doc) -> str:
    listed = doc.get("Ports")
    if isinstance(listed, list):  # listing shape
        parts = [f"{p['IP']}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}" if p.get("PublicPort")
                 else f"{p['PrivatePort']}/{p['Type']}" for p in listed]
    else:  # inspect shape
        bound = (doc.get("NetworkSettings") or {}).get("Ports") or {}
        parts = []
        for private, bindings in bound.items():
            parts += [f"{b['HostIp']}:{b['HostPort']}->{private}" for b in bindings or []] or [private]
    return ", ".join(sorted(set(parts)))


def container_row(container: Any) -> dict[str, Any]:
    """The fields of one container, from a sparse listing or a full inspect document."""
    doc = attrs(container)
    if "Names" in doc:  # listing shape (containers.list(sparse=True))
        name = doc["Names"][0].lstrip("/")
        image, command, state = doc.get("Image", ""), doc.get("Command", ""), doc.get("State", "")
        status = doc.get("Status", "")
        exit_code = status.split("(")[1].split(")")[0] if state == "exited" and "(" in status else ""
    else:  # inspect shape
        name = doc.get("Name", "").lstrip("/")
        config = doc.get("Config") or {}
        image = config.get("Image", "")
        command = " ".join([doc.get("Path", "")] + list(doc.get("Args") or [])).strip()
        st = doc.get("State") or {}
        state = st.get("Status", "")
        exit_code = str(st.get("ExitCode", "")) if state == "exited" else ""
    return {"NAME": name, "IMAGE": image, "COMMAND": command, "STATE": state,
            "EXIT CODE": exit_code, "PORTS": _ports(doc)}


def containers_table(containers: Iterable[Any]) -> pd.DataFrame:
    """Like ``docker ps -a``, with the state (created/running/paused/exited) instead of the
    ever-changing "Up 3 seconds", sorted by name."""
    rows = sorted((container_row(c) for c in containers), key=lambda r: r["NAME"])
    return _frame(rows, CONTAINER_COLUMNS)


def top_table(top: Doc) -> pd.DataFrame:
    """``container.top()`` (``docker top``) as a table: the container's processes on the host."""
    return pd.DataFrame(top.get("Processes") or [], columns=top.get("Titles") or [])


# --- networks ---------------------------------------------------------------------------------

NETWORK_COLUMNS = ("NAME", "DRIVER", "SCOPE", "SUBNET", "GATEWAY", "INTERNAL")


def networks_table(networks: Iterable[Any]) -> pd.DataFrame:
    """Like ``docker network ls``, plus each network's subnet and gateway, sorted by name."""
    rows = []
    for net in networks:
        doc = attrs(net)
        config = ((doc.get("IPAM") or {}).get("Config") or [{}])
        first = config[0] if config else {}
        rows.append({"NAME": doc.get("Name", ""), "DRIVER": doc.get("Driver", ""),
                     "SCOPE": doc.get("Scope", ""), "SUBNET": first.get("Subnet", ""),
                     "GATEWAY": first.get("Gateway", ""), "INTERNAL": bool(doc.get("Internal"))})
    rows.sort(key=lambda r: r["NAME"])
    return _frame(rows, NETWORK_COLUMNS)


# --- any inspect document -------------------------------------------------------------------

def flatten(doc: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists → ``{"Config.Env[0]": "PATH=…", …}``; empty containers kept as-is."""
    out: dict[str, Any] = {}
    if isinstance(doc, Mapping) and doc:
        for key, value in doc.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(doc, list) and doc:
        for i, value in enumerate(doc):
            out.update(flatten(value, f"{prefix}[{i}]"))
    else:
        out[prefix] = doc
    return out


#: The fields of an image a learner needs first (syllabus §1, inspect).
IMAGE_FIELDS = ("Id", "RepoTags", "RepoDigests", "Created", "Size", "Architecture", "Os",
                "Config.Cmd", "Config.Env", "Config.ExposedPorts", "Config.Labels", "RootFS.Layers")


def inspect_table(doc: Any, first: Sequence[str] = (), only_first: bool = False) -> pd.DataFrame:
    """An inspect document as a two-column table (``field``, ``value``), nested keys flattened.

    Fields named in ``first`` (a name also selects its children: ``Config.Env`` takes
    ``Config.Env[0]``, ``Config.Env[1]``…) come first, in that order; the rest follow in the
    document's order unless ``only_first``.
    """
    flat = flatten(attrs(doc))

    def under(key: str, name: str) -> bool:
        return key == name or key.startswith(name + ".") or key.startswith(name + "[")

    ordered: list[str] = []
    for name in first:
        ordered += [k for k in flat if under(k, name) and k not in ordered]
    if not only_first:
        ordered += [k for k in flat if k not in ordered]
    return pd.DataFrame({"field": ordered, "value": [flat[k] for k in ordered]})


def key_value_table(doc: Mapping[str, Any], keys: Sequence[str]) -> pd.DataFrame:
    """Chosen (dotted) keys of a document, e.g. ``client.version()`` or ``client.info()``."""
    flat = flatten(doc)
    return pd.DataFrame({"field": list(keys), "value": [flat.get(k, doc.get(k)) for k in keys]})


# --- bad input: one sentence saying what to pass, not an error from deep inside pandas -------------

def _takes_a_list(fn, hint: str):
    """Check that ``fn``'s first argument is a list of docker-py objects or dicts."""
    @functools.wraps(fn)
    def checked(items: Any, *args: Any, **kwargs: Any) -> pd.DataFrame:
        if isinstance(items, (str, bytes, Mapping)) or hasattr(items, "attrs") or not isinstance(items, Iterable):
            raise BadInput(f"{fn.__name__}() takes a list such as {hint}, not {_describe(items)}: "
                           "pass the whole list (put a single object in [ ]).")
        items = list(items)
        for item in items:
            attrs(item)
        return fn(items, *args, **kwargs)
    return checked


def _names_list(value: Any, fn: str, what: str) -> None:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) or \
            not all(isinstance(v, str) for v in value):
        raise BadInput(f"{fn}() takes {what} as a list of field names: pass e.g. [\"Id\", \"Config.Env\"], "
                       f"not {_describe(value)}.")


def _takes_a_document(fn, hint: str, names: str | None = None):
    """Check that ``fn``'s first argument is one document (and ``names``, if any, a list of str)."""
    @functools.wraps(fn)
    def checked(doc: Any, *args: Any, **kwargs: Any) -> pd.DataFrame:
        if not (hasattr(doc, "attrs") or isinstance(doc, Mapping)):
            raise BadInput(f"{fn.__name__}() takes {hint}: pass that, not {_describe(doc)}.")
        if names is not None:
            value = args[0] if args else kwargs.get(names, ())
            _names_list(value, fn.__name__, names)
        return fn(doc, *args, **kwargs)
    return checked


images_table = _takes_a_list(images_table, "client.images.list()")
history_table = _takes_a_list(history_table, "image.history()")
containers_table = _takes_a_list(containers_table, "client.containers.list(all=True)")
networks_table = _takes_a_list(networks_table, "client.networks.list()")
top_table = _takes_a_document(top_table, "what container.top() returns (a dict with Titles and Processes)")
inspect_table = _takes_a_document(inspect_table, "one image, container or network (or its .attrs dict)", "first")
key_value_table = _takes_a_document(key_value_table, "a dict such as client.version() or client.info()", "keys")
