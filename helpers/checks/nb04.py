"""Checks for notebook 04 · Containers and images (commit, export, import)."""

from __future__ import annotations

from pathlib import Path

import docker
from docker.errors import ImageNotFound

from ..images_from_containers import tar_members
from ..naming import Run
from . import Result, not_yet, passed

SITE_CMD = ["httpd", "-f", "-p", "8080", "-h", "/www"]


def _image(client: docker.DockerClient, ref: str, exercise: str, how: str):
    try:
        return client.images.get(ref)
    except ImageNotFound:
        return not_yet(exercise, f"there is no image {ref} yet: {how}.")


def check_commit(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 4.1: ``run.image("site")`` committed with an author, a message, CMD httpd on 8080, EXPOSE 8080."""
    ref = run.image("site")
    image = _image(client, ref, "4.1", f"commit the container with repository=run.name('site'), tag='v1'")
    if isinstance(image, Result):
        return image
    doc, config = image.attrs, image.attrs.get("Config") or {}
    if len(doc["RootFS"]["Layers"]) < 2:
        return not_yet("4.1", f"{ref} has a single layer: make it with container.commit(), not import.")
    if not doc.get("Author"):
        return not_yet("4.1", f"{ref} has no author: pass author='…' (-a).")
    if not doc.get("Comment"):
        return not_yet("4.1", f"{ref} has no commit message: pass message='…' (-m).")
    if config.get("Cmd") != SITE_CMD:
        return not_yet("4.1", f"{ref} would run {config.get('Cmd')}: add the change "
                              "'CMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]' (-c).")
    if "8080/tcp" not in (config.get("ExposedPorts") or {}):
        return not_yet("4.1", f"{ref} does not expose 8080/tcp: add the change 'EXPOSE 8080' (-c).")
    return passed("4.1", f"{ref} has a new layer with its author and message, and runs httpd on 8080.")


def check_export(path: object) -> Result:
    """Exercise 4.2: a tar at ``path`` holding a container's filesystem, with www/index.html."""
    if not isinstance(path, (str, Path)):
        return not_yet("4.2", "path should be where you wrote the tar, e.g. run.path('site.tar').")
    if not Path(path).is_file():
        return not_yet("4.2", f"{path} does not exist yet: write the chunks of container.export() to it.")
    try:
        members = tar_members(path)
    except Exception as err:  # the helper's own one-sentence errors
        return not_yet("4.2", str(err))
    names = set(members["name"])
    if "bin/busybox" not in names or ".dockerenv" not in names:
        return not_yet("4.2", f"{path} is not an exported container filesystem: use container.export().")
    if "www/index.html" not in names:
        return not_yet("4.2", f"{path} has no www/index.html: export the container from the exercise setup.")
    return passed("4.2", f"{Path(path).name} holds the container's whole filesystem ({len(members)} entries).")


def check_import(client: docker.DockerClient, run: Run) -> Result:
    """Exercise 4.3: ``run.image("flat")`` imported from the tar, one layer, CMD httpd on 8080."""
    ref = run.image("flat")
    image = _image(client, ref, "4.3", "import the tar with client.api.import_image(src=…, "
                                       "repository=run.name('flat'), tag='v1', changes=[…])")
    if isinstance(image, Result):
        return image
    layers = len(image.attrs["RootFS"]["Layers"])
    if layers != 1:
        return not_yet("4.3", f"{ref} has {layers} layers: an imported image has exactly one; use import_image.")
    if (image.attrs.get("Config") or {}).get("Cmd") != SITE_CMD:
        return not_yet("4.3", f"{ref} has no CMD httpd: pass changes=['CMD [\"httpd\", \"-f\", \"-p\", \"8080\", "
                              "\"-h\", \"/www\"]'] (import drops the container's config).")
    try:
        www = client.containers.run(ref, ["cat", "/www/index.html"], remove=True, labels=run.labels)
    except docker.errors.ContainerError:
        return not_yet("4.3", f"{ref} has no /www/index.html: import the tar from Exercise 4.2.")
    return passed("4.3", f"{ref} is one flat layer with the site ({len(www)} bytes of index.html).")
