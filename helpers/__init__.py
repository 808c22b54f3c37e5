"""Helpers for the Docker course in Jupyter notebooks.

Importing this package has no side effects: nothing connects, nothing starts, no option is set.
A notebook's setup cell does ``client = connect()`` and ``run = Run(client, "topic")``.
"""

from .connection import connect, daemon_host, describe
from .mirrors import check_images
from .errors import BadInput, CourseError, DaemonNotAnswering, DaemonNotFound, ImageNotAvailable, NameTaken, NotFound
from .base import BASE_IMAGE, BASE_REPO, BASE_TAG
from .naming import Run, cleanup_all

#: The table functions come from ``helpers.tables`` on first use: it imports pandas (a third of a
#: second), which the command line and the test processes that never draw a table need not pay.
_TABLES = ("containers_table", "history_table", "images_table", "inspect_table", "key_value_table",
           "networks_table", "top_table")


def __getattr__(name: str) -> object:
    if name in _TABLES:
        from . import tables
        return getattr(tables, name)
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_TABLES))


__all__ = [
    "check_images",
    "BASE_IMAGE", "BASE_REPO", "BASE_TAG", "BadInput", "CourseError", "DaemonNotAnswering", "DaemonNotFound",
    "ImageNotAvailable", "NameTaken", "NotFound", "Run", "cleanup_all", "connect",
    "containers_table", "daemon_host", "describe", "history_table", "images_table",
    "inspect_table", "key_value_table", "networks_table", "top_table",
]
