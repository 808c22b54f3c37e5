"""Checks for notebook 07 · Volumes and storage (named volumes, read-only mounts, backups)."""

from __future__ import annotations

from pathlib import Path

import docker

from ..naming import RUN, Run
from ..volumes import read_from_volume, tar_table
from . import Result, not_yet, passed

TODO = "buy milk"


def _notes_volume(client: docker.DockerClient, run: Run, exercise: str) -> dict | Result:
    name = run.name("notes")
    try:
        doc = client.api.inspect_volume(name)
    except docker.errors.NotFound:
        return not_yet(exercise, f"there is no volume {name} yet: create it with "
                                 "client.volumes.create(run.name('notes'), labels=run.labels).")
    if (doc.get("Labels") or {}).get(RUN) != run.id:
        return not_yet(exercise, f"{name} carries no labels of this run (a volume that -v makes on the fly has "
                                 "none): remove it, then create it with labels=run.labels before mounting it.")
    return doc


def check_notes_volume(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 7.1: the labelled volume ``run.name("notes")`` holds ``todo.txt`` with "buy milk",
    written by a container that is gone — the data outlived it."""
    doc = _notes_volume(client, run, "7.1")
    if isinstance(doc, Result):
        return doc
    name = doc["Name"]
    text = read_from_volume(client, run, name, "todo.txt")
    if text is None:
        return not_yet("7.1", f"{name} has no todo.txt: write it from a container that mounts the volume "
                              "(volumes=[f'{run.name(\"notes\")}:/notes']) into /notes/todo.txt.")
    if TODO not in text:
        return not_yet("7.1", f"todo.txt in {name} says {text.strip()[:40]!r}, not {TODO!r}.")
    users = client.api.containers(all=True, filters={"volume": name})
    if users:
        return not_yet("7.1", f"{len(users)} container(s) still use {name}: remove the writer "
                              "(container.remove()) to see the data outlive it.")
    return passed("7.1", f"{name} keeps todo.txt ({TODO!r}) with no container left.")


def check_read_only(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 7.2: a running container ``run.name("shelf")`` mounts the notes volume at
    ``/notes`` read-only."""
    doc = _notes_volume(client, run, "7.2")
    if isinstance(doc, Result):
        return doc
    name = run.name("shelf")
    try:
        shelf = client.containers.get(name)
    except docker.errors.NotFound:
        return not_yet("7.2", f"there is no container {name} yet: run it (sleep 3600) with the notes volume "
                              "mounted at /notes, read-only.")
    if shelf.status != "running":
        return not_yet("7.2", f"{name} is {shelf.status}: give it a command that keeps running, such as sleep 3600.")
    mounts = [m for m in shelf.attrs.get("Mounts") or [] if m.get("Destination") == "/notes"]
    if not mounts:
        return not_yet("7.2", f"{name} has nothing mounted at /notes: add volumes=[f'{{run.name(\"notes\")}}:/notes:ro'].")
    mount = mounts[0]
    if mount.get("Type") != "volume" or mount.get("Name") != doc["Name"]:
        return not_yet("7.2", f"/notes in {name} is a {mount.get('Type')} mount of {mount.get('Name') or mount.get('Source')}, "
                              f"not the volume {doc['Name']}.")
    if mount.get("RW"):
        return not_yet("7.2", f"/notes in {name} is writable: add ':ro' (or read_only=True with --mount).")
    return passed("7.2", f"{name} reads {doc['Name']} at /notes and cannot write to it.")


def check_backup(path: object) -> Result:
    """Exercise 7.3: a tar at ``path``, on this machine, holding the notes volume's todo.txt."""
    if not isinstance(path, (str, Path)):
        return not_yet("7.3", "path should be where the backup tar is, e.g. run.path('notes.tar').")
    path = Path(path)
    if not path.is_file():
        return not_yet("7.3", f"{path.name} is not on this machine yet: back the volume up with a helper "
                              "container and docker cp (vol.backup(client, run, …, path)).")
    try:
        members = tar_table(path)
    except Exception as err:  # the helper's own one-sentence errors
        return not_yet("7.3", str(err))
    names = {n.lstrip("./") for n in members["NAME"]}
    if "todo.txt" not in names:
        return not_yet("7.3", f"{path.name} has no todo.txt: back up the notes volume, from its root "
                              "(tar -C /notes .).")
    return passed("7.3", f"{path.name} holds todo.txt ({len(members)} entries): the volume can be restored anywhere.")
