"""Connecting: the daemon is found, and when none answers the learner gets one sentence."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import connection
from helpers.errors import CourseError, DaemonNotFound

DEAD = "tcp://127.0.0.1:9"  # discard port: nothing listens, connection refused at once


def test_connect_reaches_a_daemon(client):
    assert client.ping() is True
    assert connection.describe(client)


def test_dead_docker_host_gives_one_actionable_sentence(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", DEAD)
    with pytest.raises(DaemonNotFound) as err:
        connection.connect()
    message = str(err.value)
    assert DEAD in message and "DOCKER_HOST" in message
    assert message.count(". ") == 0 and "\n" not in message  # one sentence


def test_docker_host_is_the_only_place_looked_when_set(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", DEAD)
    assert [ep.source for ep in connection.candidate_endpoints()] == ["DOCKER_HOST"]


def test_binder_sentence(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("BINDER_SERVICE_HOST", "10.0.0.1")
    assert "Binder" in connection.no_daemon_advice()


def test_ipython_shows_one_line_not_a_traceback():
    """What a learner sees in a notebook when no daemon answers: just the sentence."""
    code = "from helpers import connect\nconnect()\n"
    env = dict(os.environ, DOCKER_HOST=DEAD)
    done = subprocess.run([sys.executable, "-m", "IPython", "--colors=NoColor", "-c", code],
                          capture_output=True, text=True, env=env, timeout=60)
    shown = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(shown) == 1, shown
    assert shown[0].startswith(f"DaemonNotFound: No Docker daemon answers at DOCKER_HOST={DEAD}"), shown


def test_course_errors_render_as_one_line():
    assert CourseError("do this")._render_traceback_() == ["CourseError: do this"]


def test_daemon_host_for_tcp_and_unix():
    import docker
    # a fixed API version: nothing is sent to these addresses
    tcp = docker.DockerClient(base_url="tcp://docker:2375", version="1.41")
    assert connection.daemon_host(tcp) == "docker"
    unix = docker.DockerClient(base_url="unix:///var/run/docker.sock", version="1.41")
    assert connection.daemon_host(unix) == "127.0.0.1"


def test_importing_the_package_has_no_side_effects_and_loads_pandas_only_for_tables():
    """``import helpers`` connects to nothing, sets nothing and leaves pandas for the first table;
    every name of ``__all__`` is still there, the table functions included."""
    probe = ("import sys, helpers; loaded = 'pandas' in sys.modules; "
             "from helpers import *; import helpers.tables as t; "
             "assert containers_table is t.containers_table and set(helpers.__all__) <= set(dir(helpers)); "
             "print(loaded, 'pandas' in sys.modules)")
    env = {**os.environ, "DOCKER_HOST": DEAD}  # nothing may be asked of a daemon on import
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "True"]
