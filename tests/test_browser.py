"""The course as learners see it: every notebook run in JupyterLab in a real browser (Debian's
Chromium, driven by Playwright; tests/browser.py does the driving, these tests judge it).

One pass runs every notebook, two tabs at a time, in a 1280×800 window with the file browser open
(about as wide a notebook as a laptop gives); each test reads its part of that pass. Screenshots
of every widget and picture, and ``summary.json``, are kept in ``.state/artefacts/browser/``.
They skip only when Chromium cannot be had here (no apt-get, or Debian's archive out of reach).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import browser

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
if os.environ.get("COURSE_BROWSER_ONLY"):  # an author's shortcut: COURSE_BROWSER_ONLY=01,02
    NOTEBOOKS = [p for p in NOTEBOOKS if p.name[:2] in os.environ["COURSE_BROWSER_ONLY"].split(",")]
WITH_CONTROLS = browser.widget_notebooks(NOTEBOOKS)


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    import docker

    try:
        browser.chromium()
    except browser.Unavailable as err:
        pytest.skip(str(err))
    client = docker.from_env(timeout=300)
    try:
        result = browser.browser_pass(tmp_path_factory.mktemp("browser"), NOTEBOOKS, client)
    finally:
        client.close()
    print(f"\n[browser] the pass took {result['seconds']} s:",
          ", ".join(f"{k} {r.seconds} s" for k, r in sorted(result["reports"].items())))
    return result


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
