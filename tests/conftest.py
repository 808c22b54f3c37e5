"""Fixtures for tests that talk to the real daemon (the run's hooks are in ../conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest

from helpers.connection import connect
from helpers.naming import Run


@pytest.fixture(scope="session")
def client() -> docker.DockerClient:
    return connect()


@pytest.fixture
def run(client: docker.DockerClient) -> Iterator[Run]:
    """A fresh Run for one test, cleaned up afterwards whatever happened."""
    r = Run(client, "tests")
    try:
        yield r
    finally:
        r.cleanup()
