"""The course's exceptions: one sentence that says what is wrong and what to do.

In a notebook the learner sees only that sentence, not a 40-line traceback:
IPython calls ``_render_traceback_`` when an exception defines it.
"""

from __future__ import annotations


class CourseError(Exception):
    """Base class: ``str(err)`` is the whole, actionable message."""

    def _render_traceback_(self) -> list[str]:  # IPython hook, see module docstring
        return [f"{type(self).__name__}: {self}"]


class DaemonNotFound(CourseError):
    """No Docker daemon answered at any place the course looked."""


class ImageNotAvailable(CourseError):
    """An image could be found neither locally nor in any registry the daemon can reach."""


class NameTaken(CourseError):
    """An object with that name already exists on the daemon."""


class NotFound(CourseError):
    """A container, network, volume or image of that name does not exist."""


class BadInput(CourseError):
    """An argument has the wrong type or form."""


class EngineError(CourseError):
    """The course's own engine or registry could not be installed or started."""
