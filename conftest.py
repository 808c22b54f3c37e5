"""The test run's own hooks, for every path it collects (notebooks and tests alike): a per-notebook
summary of nbval's results, the order files are handed to xdist's workers, and when this pass's
notebook cells ran (for the classmate of tests/test_concurrency.py)."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

from bench.learner import nbval_times_file

_results: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb") and (report.when == "call" or report.outcome != "passed"):
        _results[path][report.outcome] += 1
    classmate = os.environ.get("COURSE_CLASSMATE")
    # noted once, by the process that sees every report (xdist's controller, or the only one)
    if classmate and path.endswith(".ipynb") and report.when == "call" and "PYTEST_XDIST_WORKER" not in os.environ:
        # tests/test_concurrency.py: did this pass's notebooks run while the classmate did?
        with nbval_times_file(Path(classmate)).open("a") as f:
            f.write(f"{path} {report.start:.3f} {report.stop:.3f}\n")


#: Scopes (files) that take longest, handed out first so that the workers finish together (with
#: xdist's --no-loadscope-reorder, which ./course passes: by default it orders by test count), and the
#: one that waits for the classmate (a learner started with the pass), handed out last.
SLOW_FIRST = ("test_class.py", "test_browser.py", "06_build.ipynb", "05_networking.ipynb", "test_nb06.py", "test_faults.py", "02_lifecycle.ipynb",
              "03_inside_containers.ipynb", "00_getting_started.ipynb", "test_nb05.py",
              "04_containers_and_images.ipynb", "01_images.ipynb", "test_open.py", "test_nb02.py")
LAST = ("test_concurrency.py",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        if name in LAST:
            return len(SLOW_FIRST) + 1
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)
    items.sort(key=rank)  # stable: the order within a file, and of the other files, is kept


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 (pytest's own type)
    if not _results:
        return
    terminalreporter.section("nbval, per notebook")
    for path in sorted(_results):
        counts = _results[path]
        verdict = "PASS" if not counts.get("failed") else "FAIL"
        detail = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        terminalreporter.write_line(f"{verdict}  {path}: {detail} cells")
