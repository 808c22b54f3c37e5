"""Fixtures for tests that talk to the real daemon, and a per-notebook summary of the run."""

from __future__ import annotations

from collections import defaultdict
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


_results: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb") and (report.when == "call" or report.outcome != "passed"):
        _results[path][report.outcome] += 1


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 (pytest's own type)
    if not _results:
        return
    terminalreporter.section("nbval, per notebook")
    for path in sorted(_results):
        counts = _results[path]
        verdict = "PASS" if not counts.get("failed") else "FAIL"
        detail = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        terminalreporter.write_line(f"{verdict}  {path}: {detail} cells")
