"""The machinery behind the course: its own Docker engine, the offline registry and base image,
the Docker-in-Docker service, JupyterLab for ``./course open``, and the ``./course`` command line.

Notebooks never import this package; they import :mod:`helpers`. This one depends on ``helpers``
(connection, errors, the base image's name), never the other way round.
"""
