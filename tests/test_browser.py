"""The course as learners see it: every notebook run in JupyterLab in a real browser (Debian's
Chromium, driven by Playwright; tests/browser.py does the driving, these tests judge it).

One pass runs every notebook, two tabs at a time, in a 1280×800 window with the file browser open
(about as wide a notebook as a laptop gives); each test reads its part of that pass. Screenshots
of every widget and picture, and ``summary.json``, are kept in ``.state/artefacts/browser/``.
They skip only when Chromium cannot be had here (no apt-get, or Debian's archive out of reach).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.learner import compare_saved, write_results
from tests import browser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
if os.environ.get("COURSE_BROWSER_ONLY"):  # an author's shortcut: COURSE_BROWSER_ONLY=01,02
    NOTEBOOKS = [p for p in NOTEBOOKS if p.name[:2] in os.environ["COURSE_BROWSER_ONLY"].split(",")]
WITH_CONTROLS = browser.widget_notebooks(NOTEBOOKS)


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    import docker

    started = time.time()
    classmate = os.environ.get("COURSE_CLASSMATE")
    try:
        browser.chromium()
    except browser.Unavailable as err:
        if classmate:   # tests/test_concurrency.py waits for this learner: it is told why there is none
            _write_classmate(Path(classmate), started, [], f"no browser learner: {err}")
        pytest.skip(str(err))
    client = docker.from_env(timeout=300)
    result: dict = {"reports": {}}
    try:
        result = browser.browser_pass(tmp_path_factory.mktemp("browser"), NOTEBOOKS, client)
        for nb in NOTEBOOKS:   # what JupyterLab saved, compared with the committed notebook as nbval does
            found = result["reports"].get(nb.name)
            if found and found.saved and not found.problem:
                found.mismatches = compare_saved(Path(found.saved), nb, upto=found.compared_upto)
    finally:
        client.close()
        if classmate:
            _write_classmate(Path(classmate), started, list(result["reports"].values()),
                             "" if result["reports"] else "the browser pass did not finish")
    print(f"\n[browser] the pass took {result['seconds']} s:",
          ", ".join(f"{k} {r.seconds} s" for k, r in sorted(result["reports"].items())))
    for name, r in sorted(result["reports"].items()):
        if r.retried:   # the pass stumbled once (not the notebook: its run is judged as any other)
            print(f"[browser] {name} was run twice: the first run stopped with {r.retried}")
    return result


def _write_classmate(out: Path, started: float, reports: list, problem: str) -> None:
    """The browser pass as the concurrency test's second learner (tests/test_concurrency.py):
    its results in bench/learner.py's form, written whole when it is done."""
    notebooks = [{"notebook": r.name, "seconds": r.seconds, "kernel_pid": r.kernel_pid,
                  "failures": ([r.problem] if r.problem else []) + r.errors[:3] + r.mismatches}
                 for r in sorted(reports, key=lambda r: r.name)]
    if problem:
        notebooks.append({"notebook": "(the browser pass)", "seconds": None, "kernel_pid": None, "failures": [problem]})
    write_results(out, started, notebooks, learner="JupyterLab in Chromium")


def report(seen, nb: Path) -> browser.Report:
    found = seen["reports"][nb.name]
    assert not found.problem, f"{nb.name} could not be run in the browser: {found.problem} " \
                              f"(see .state/artefacts/browser/{nb.stem}-problem.png)"
    return found


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_run_all_in_jupyterlab_shows_no_error(seen, nb):
    found = report(seen, nb)
    assert not found.errors, f"{nb.name}, run in JupyterLab, shows error output:\n" + "\n\n".join(found.errors[:3])
    assert not found.not_run, f"{nb.name}: code cells {found.not_run} did not run"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_what_jupyterlab_saved_is_the_committed_outputs(seen, nb):
    """Run in JupyterLab and saved, every cell's outputs are the committed ones, compared as nbval
    compares them (for a notebook with controls, up to its clean-up: the clicks made more to remove)."""
    found = report(seen, nb)
    assert found.saved, f"{nb.name} was not saved from JupyterLab"
    assert not found.mismatches, f"{nb.name}, run in JupyterLab:\n" + "\n".join(found.mismatches[:5])


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_the_course_notebooks_open_trusted(seen, nb):
    found = report(seen, nb)
    assert not found.untrusted, f"{nb.name} opened untrusted: its saved outputs {found.untrusted[:5]} are not trusted"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_widgets_render_as_widgets_and_everything_fits_the_notebook(seen, nb):
    found = report(seen, nb)
    assert not found.unrendered, f"{nb.name}: widgets that did not render: {found.unrendered}"
    assert not found.overflows, (f"{nb.name}: wider than the notebook in a 1280-pixel window with the file "
                                 "browser open:\n" + "\n".join(found.overflows))
    shots = {p.name for p in browser.ARTEFACTS.glob(f"{nb.stem}-*.png")}
    assert set(found.shots) <= shots, f"screenshots missing: {set(found.shots) - shots}"


@pytest.mark.parametrize("nb", WITH_CONTROLS, ids=[p.stem[:2] for p in WITH_CONTROLS])
def test_each_control_does_what_its_label_says(seen, nb):
    found = report(seen, nb)
    assert found.widgets, f"{nb.name} makes a widget, and none was shown"
    assert not found.control_failures, f"{nb.name}: " + "\n".join(found.control_failures)
    assert found.controls, f"{nb.name}: no control of its widgets was clicked"


def test_nothing_is_requested_beyond_loopback(seen):
    outside = sorted({url for r in seen["reports"].values() for url in r.requests
                      if not url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:"))}
                     | {url for url in (seen["zh"] or {}).get("requests", [])
                        if not url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:"))})
    assert not outside, f"JupyterLab's pages asked beyond 127.0.0.1: {outside[:10]}"
    assert sum(len(r.requests) for r in seen["reports"].values()) > 0


def test_lang_zh_opens_the_chinese_interface(seen):
    assert not seen["zh"].get("problem"), seen["zh"].get("problem")
    menus = seen["zh"]["menus"]
    assert "文件" in menus and "File" not in menus, f"the menu bar with --lang zh: {menus}"
    assert (browser.ARTEFACTS / "lab-zh-1280x800.png").exists()
