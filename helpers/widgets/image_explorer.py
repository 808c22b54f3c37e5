"""An image explorer: choose an image, see its inspect summary and, below it, its layer history.

>>> explorer = image_explorer(client, run)     # doctest: +SKIP
>>> explorer                                   # a dropdown, a status line and two tables
>>> explorer.dropdown.value = "busybox:1.35"   # what a choice does; .summary/.history follow

The tables of the chosen image are also kept as ``explorer.summary`` and ``explorer.history``
(pandas DataFrames), and what the explorer last had to say as ``explorer.message``, so a test can
drive the widget and read what it shows.

The choices are the daemon's, not a list made once. ipywidgets tells the kernel nothing when the
learner opens a dropdown, so the explorer of a run (:func:`image_explorer`) follows the daemon's
image events (``docker events --filter type=image``: ``tag``, ``untag``, ``delete``, ``pull``,
``load``, ``import``) in a background thread and reads the list again when one concerns its
images; an image removed by another tab, ``docker rmi`` or a classmate's clean-up leaves the
dropdown within a moment. A busy daemon can drop an event (it gives each subscriber 100 ms), so a
choice that is gone by the time it is made says so in the explorer, in one sentence, and the list
is read again. The thread ends when the run's Clean-up cell runs (``run.cleanup()``), when
:meth:`ImageExplorer.close` is called, or when a newer explorer of the same run replaces this one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

import docker
import ipywidgets as widgets
import pandas as pd
from IPython.display import display

from ..base import BASE_IMAGE
from ..errors import BadInput, NotFound
from ..images import inspect_summary, list_images
from ..naming import Run
from ..tables import history_table
from .common import EventFollower, sentence, status_html, table_html

#: The image events after which the list of images may differ (moby's ``daemon/events``; the
#: containerd store also logs ``create`` before a build's ``tag``).
LIST_CHANGES = frozenset({"tag", "untag", "delete", "pull", "load", "import", "create"})

#: The explorer of each run that follows the daemon's events (one thread per run at most).
_following: dict[str, ImageExplorer] = {}


class ImageExplorer:
    """A dropdown of image references, a status line and, stacked below, the chosen image's tables.

    ``choices`` is called to read the list again (after an image event, or when a choice turned out
    to be gone): it returns each reference with its image Id (events name an image by either);
    without it, the list is ``references`` less those no longer on the daemon. With a
    ``run``, the explorer follows the daemon's image events until ``run.cleanup()`` or
    :meth:`close`. Raises BadInput for an empty list, NotFound when the first image is not there.
    """

    def __init__(self, client: docker.DockerClient, references: Sequence[str],
                 choices: Callable[[], Mapping[str, str]] | None = None, run: Run | None = None) -> None:
        if not references or isinstance(references, str):
            raise BadInput("the explorer needs a list of at least one image reference: pull or build an image first.")
        self.client, self.run = client, run
        self._fixed = list(references)
        self._choices = choices or self._still_there
        self._ids: set[str] = set()    # the Ids of the images in the list
        self._lock = threading.RLock()
        self._quiet = False       # set while the kernel itself changes the options
        self.closed = False
        self.follower: EventFollower | None = None
        self.dropdown = widgets.Dropdown(options=list(references), value=references[0], description="image",
                                         layout=widgets.Layout(max_width="100%"))
        # HTML widgets, not an Output widget: updating them sends no display messages, so the
        # notebook cell that changes the choice stays comparable (see nbval-notes).
        self.status = widgets.HTML()
        self.summary_view = widgets.HTML(layout=widgets.Layout(max_width="100%", overflow="auto"))
        self.history_view = widgets.HTML(layout=widgets.Layout(max_width="100%", overflow="auto"))
        self.summary = pd.DataFrame()
        self.history = pd.DataFrame()
        self.message = ""
        self.dropdown.observe(self._chosen, names="value")
        # stacked, not side by side: the two tables together are wider than a notebook beside the
        # file browser; each scrolls sideways in its own box when it alone is wider
        self.widget = widgets.VBox([self.dropdown, self.status, self.summary_view, self.history_view],
                                   layout=widgets.Layout(max_width="100%"))
        self.show(references[0])          # raises NotFound here, in the cell, if it is not there
        if run is not None:
            self._follow()
            run.on_cleanup(self._cleaned_up)

    # --- what it shows ----------------------------------------------------------------------------

    def show(self, reference: str) -> None:
        """Load ``reference``'s tables and draw them; raises NotFound if the daemon has no such image."""
        with self._lock:
            try:
                image = self.client.images.get(reference)
            except docker.errors.ImageNotFound as err:
                raise NotFound(f"There is no image {reference} on this daemon: choose another one, or pull "
                               "or build it.") from err
            self.summary = inspect_summary(image)
            self.history = history_table(image.history())[["CREATED BY", "SIZE", "COMMENT"]]
            self.summary_view.value = table_html(self.summary, f"<b>{escape(reference)}</b>: inspect summary")
            self.history_view.value = table_html(self.history, "<b>history</b>, newest layer first")

    def say(self, text: str, error: bool = False) -> None:
        """Write one sentence into the explorer's status line (an empty text clears it)."""
        self.message = text
        self.status.value = status_html(text, error)

    def _chosen(self, change: dict[str, Any]) -> None:
        """The dropdown's handler: show the choice, or say in the explorer why it cannot."""
        if self._quiet or change["new"] is None:
            return
        reference = change["new"]
        with self._lock:
            try:
                self.show(reference)
            except NotFound:
                self.say(f"{reference} is no longer on this daemon (something removed it after the list was "
                         "read): choose another image.", error=True)
                self.refresh(quietly=True)
            except Exception as err:  # noqa: BLE001 — a handler: the explorer says it, nothing escapes
                self.say(sentence(err, f"show {reference}", self.client), error=True)
                self.refresh(quietly=True)
            else:
                self.say("")
            if self.follower is None and self.run is not None and not self.closed and not self.run.cleaned_up:
                self._follow()        # the stream had ended (the daemon restarted): follow again

    # --- keeping the list current -----------------------------------------------------------------

    def _still_there(self) -> dict[str, str]:
        there = {}
        for reference in self._fixed:
            try:
                there[reference] = self.client.api.inspect_image(reference)["Id"]
            except docker.errors.ImageNotFound:
                continue
        return there

    def refresh(self, quietly: bool = False) -> list[str]:
        """Read the list of images again and put it in the dropdown, keeping the choice if it is
        still there; if it is gone, show the first image left and say so (unless ``quietly``: the
        caller says why). Returns the list. Never raises: a failure is said in the explorer."""
        with self._lock:
            try:
                listed = dict(self._choices())
            except Exception as err:  # noqa: BLE001 — said in the explorer, see the module docstring
                self.say(sentence(err, "read the list of images again", self.client), error=True)
                return list(self.dropdown.options)
            references, self._ids = list(listed), set(listed.values())
            current = self.dropdown.value
            if references == list(self.dropdown.options):
                return references
            self._quiet = True
            try:
                self.dropdown.options = references
                if current in references:
                    self.dropdown.value = current
            finally:
                self._quiet = False
            if references and current not in references:
                try:
                    self.show(self.dropdown.value)
                except Exception as err:  # noqa: BLE001 — as above
                    self.say(sentence(err, f"show {self.dropdown.value}", self.client), error=True)
                    return references
                if not quietly:
                    self.say(f"{current} was removed from the daemon meanwhile (by another tab, command or client): "
                             f"showing {self.dropdown.value}.")
            elif not references:
                self.summary_view.value = self.history_view.value = ""
                self.say("None of these images is on the daemon any more: pull or build one, then run this cell again.")
            return references

    def _follow(self) -> None:
        run = self.run
        assert run is not None
        try:
            self.follower = EventFollower(self.client, {"type": "image"}, self._on_event, self._on_end,
                                          name=f"image-explorer-{run.prefix}")
        except Exception as err:  # noqa: BLE001 — the explorer still works, on the learner's choices
            self.follower = None
            self.say(sentence(err, "follow the daemon's image events", self.client), error=True)
            return
        earlier = _following.get(run.id)
        _following[run.id] = self
        if earlier is not None and earlier is not self:
            earlier.close("A newer explorer of this run (its cell ran again) replaced this one: use that one.")
        self.refresh()    # what changed before the stream was open

    def _concerns_us(self, event: dict[str, Any]) -> bool:
        if event.get("Action") not in LIST_CHANGES:
            return False
        actor = event.get("Actor") or {}
        name = str((actor.get("Attributes") or {}).get("name") or "")
        if self.run is not None and name.split("/")[-1].startswith(self.run.prefix + "-"):
            return True
        # the classic store names an untagged or deleted image by its Id, not by the name that went
        return name in self.dropdown.options or actor.get("ID") in self._ids or name in self._ids

    def _on_event(self, event: dict[str, Any]) -> None:
        if self.run is not None and self.run.cleaned_up:
            return                 # the clean-up is removing the run's images: _cleaned_up follows
        if self._concerns_us(event):
            self.refresh()

    def _on_end(self, err: BaseException | None) -> None:
        self.follower = None
        self.say("The daemon's event stream ended (the daemon stopped or restarted): the list is read again "
                 "when you choose an image.", error=True)

    # --- the end ----------------------------------------------------------------------------------

    def _cleaned_up(self) -> None:
        """``run.cleanup()`` ran: stop following, show what is left, say why the run's images are gone."""
        self._stop()
        self.refresh(quietly=True)
        self.say("This run was cleaned up (its Clean-up cell ran), so its images are gone: run the notebook "
                 "again from its Setup cell to explore new ones.")

    def _stop(self) -> None:
        follower, self.follower = self.follower, None
        if follower is not None:
            follower.stop()
        if self.run is not None and _following.get(self.run.id) is self:
            del _following[self.run.id]

    def close(self, why: str = "This explorer was closed: run its cell again to explore images.") -> None:
        """Stop following the daemon's events and say ``why`` in the explorer (it still shows its tables)."""
        self.closed = True
        self._stop()
        self.say(why)

    def _ipython_display_(self) -> None:
        display(self.widget)


def run_images(client: docker.DockerClient, run: Run) -> dict[str, str]:
    """The run's own tagged images (``dc-<id>-…:tag``, sorted), then the base image, each with its
    image Id: the explorer's choices. The listing is asked again if another learner removes an
    image meanwhile (:func:`helpers.images.list_images`); the base image is left out if it is gone."""
    ours = {t: image["Id"] for image in list_images(client, name=f"{run.prefix}-*")
            for t in image.get("RepoTags") or [] if t.startswith(run.prefix + "-") and "@" not in t}
    choices = {t: ours[t] for t in sorted(ours)}
    with contextlib.suppress(docker.errors.ImageNotFound):
        choices[BASE_IMAGE] = client.api.inspect_image(BASE_IMAGE)["Id"]
    return choices


def image_explorer(client: docker.DockerClient, run: Run) -> ImageExplorer:
    """An explorer over the run's own tagged images, plus the base image, that follows the daemon
    (see the module docstring) until ``run.cleanup()``. Raises BadInput when ``run`` is not a
    Run, or when it was cleaned up already."""
    if not isinstance(run, Run):
        raise BadInput("image_explorer() takes the notebook's Run (run = Run(client, 'topic')), "
                       f"not {type(run).__name__}.")
    if run.cleaned_up:
        raise BadInput("This run was cleaned up (its Clean-up cell ran): run the notebook again from its Setup "
                       "cell, then make the explorer.")
    return ImageExplorer(client, list(run_images(client, run)), choices=lambda: run_images(client, run), run=run)
