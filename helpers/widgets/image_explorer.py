"""An image explorer: choose an image, see its inspect summary and its layer history.

>>> explorer = image_explorer(client, run)     # doctest: +SKIP
>>> explorer                                   # shows a dropdown and two tables
>>> explorer.dropdown.value = "busybox:1.35"   # what a click does; .summary/.history follow

The tables of the chosen image are also kept as ``explorer.summary`` and ``explorer.history``
(pandas DataFrames), so a test can drive the widget and read what it shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import docker
import ipywidgets as widgets
import pandas as pd
from IPython.display import display

from ..errors import BadInput, NotFound
from ..base import BASE_IMAGE
from ..images import inspect_summary, list_images
from ..naming import Run
from ..tables import history_table


class ImageExplorer:
    """A dropdown of image references and, below it, the chosen image's tables."""

    def __init__(self, client: docker.DockerClient, references: Sequence[str]) -> None:
        if not references:
            raise BadInput("the explorer needs at least one image reference: pull or build an image first.")
        self.client = client
        self.dropdown = widgets.Dropdown(options=list(references), value=references[0], description="image")
        # HTML widgets, not an Output widget: updating them sends no display messages, so the
        # notebook cell that changes the choice stays comparable (see nbval-notes).
        self.summary_view = widgets.HTML()
        self.history_view = widgets.HTML()
        self.summary = pd.DataFrame()
        self.history = pd.DataFrame()
        self.dropdown.observe(lambda change: self.show(change["new"]), names="value")
        self.widget = widgets.VBox([self.dropdown, widgets.HBox([self.summary_view, self.history_view])])
        self.show(references[0])

    def show(self, reference: str) -> None:
        """Load ``reference``'s tables and draw them."""
        try:
            image = self.client.images.get(reference)
        except docker.errors.ImageNotFound as err:
            raise NotFound(f"no image {reference!r} on this daemon: choose another one or pull it.") from err
        self.summary = inspect_summary(image)
        self.history = history_table(image.history())[["CREATED BY", "SIZE", "COMMENT"]]
        self.summary_view.value = f"<b>{escape(reference)}</b>: inspect summary" + self.summary.to_html(index=False)
        self.history_view.value = "<b>history</b>, newest layer first" + self.history.to_html(index=False)

    def _ipython_display_(self) -> None:
        display(self.widget)


def image_explorer(client: docker.DockerClient, run: Run) -> ImageExplorer:
    """An explorer over the run's own tagged images, plus the base image (the listing is asked
    again if another learner removes an image meanwhile, see :func:`helpers.images.list_images`)."""
    ours = sorted({t for image in list_images(client, name=f"{run.prefix}-*") for t in image.get("RepoTags") or []
                   if t.startswith(run.prefix + "-") and "@" not in t})
    return ImageExplorer(client, ours + [BASE_IMAGE])
