"""A shared-daemon classroom: several learners run the whole course at once, against one daemon,
and every one of them passes — with nothing left on the daemon afterwards.

A learner is its own process running every notebook (whatever notebooks exist) in its own kernels,
checked as ``pytest --nbval`` checks them (bench/learner.py).

In ``./course test`` the two learners are this very pass and a *classmate*: the browser pass of
tests/test_browser.py, which runs the whole course in JupyterLab in Chromium, in its own kernels, on
the same daemon, while nbval runs every notebook here, and compares what JupyterLab saved with the
committed outputs as nbval does (``COURSE_CLASSMATE`` names the file it writes its results to when
it is done). The test waits for that file, then checks the classmate passed, left nothing, and
really ran at the same time as this pass's notebooks (nbval fails this pass's own notebooks
itself). Run on its own, the test starts two learners (bench/learner.py) instead.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest

from bench.learner import classroom, compare_saved, course_notebooks, gather, nbval_times_file, run_notebook


def notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    for n, (source, outputs) in enumerate(cells, start=1):
        cell = nbformat.v4.new_code_cell(source, execution_count=n)
        cell.outputs = [o if isinstance(o, dict) else nbformat.v4.new_output("stream", name="stdout", text=o)
                        for o in outputs]
        nb.cells.append(cell)
    nbformat.write(nb, path)
    return path


def test_the_checker_fails_on_wrong_outputs_and_errors(tmp_path):
    """The learners' check is nbval's: differing outputs and errors fail, markers are obeyed."""
    path = notebook(tmp_path / "t.ipynb", [
        ("print('same')", ["same\n"]),
        ("print('new')", ["old\n"]),
        ("# NBVAL_IGNORE_OUTPUT\nprint('whatever')", ["something else\n"]),
        ("print('dc-abc123-web')", ["dc-fff000-web\n"]),          # sanitised run ids are equal
        ("1/0", []),
        ("# NBVAL_RAISES_EXCEPTION\n1/0", [nbformat.v4.new_output("error", ename="ZeroDivisionError",
                                                                  evalue="division by zero", traceback=[])]),
        ("# NBVAL_SKIP\nraise SystemExit", []),
    ])
    result = run_notebook(path, {r"dc-[0-9a-f]{6}": "dc-RUNID"})
    assert [f.split(":")[0] for f in result["failures"]] == ["cell 1", "cell 4"], result["failures"]
    assert "ZeroDivisionError" in result["failures"][1]
    assert result["kernel_pid"] and not Path(f"/proc/{result['kernel_pid']}").exists(), \
        "the learner left its kernel running (30 learners' leftover kernels filled 19 GB)"


def test_the_browser_learners_check_fails_on_wrong_outputs(tmp_path):
    """What JupyterLab saved is compared as nbval compares: a differing output, an error and cells
    that are not the committed ones fail; markers, sanitised ids and cells past ``upto`` do not."""
    committed = notebook(tmp_path / "committed.ipynb", [
        ("print('same')", ["same\n"]),
        ("print('new')", ["old\n"]),
        ("# NBVAL_IGNORE_OUTPUT\nprint('whatever')", ["something else\n"]),
        ("print('dc-abc123-web')", ["dc-fff000-web\n"]),
        ("1/0", []),
        ("print('after the clicks')", ["removed 2\n"]),
    ])
    saved = notebook(tmp_path / "saved.ipynb", [
        ("print('same')", ["same\n"]),
        ("print('new')", ["new\n"]),
        ("# NBVAL_IGNORE_OUTPUT\nprint('whatever')", ["whatever\n"]),
        ("print('dc-abc123-web')", ["dc-abc123-web\n"]),
        ("1/0", [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])]),
        ("print('after the clicks')", ["removed 5\n"]),
    ])
    patterns = {r"dc-[0-9a-f]{6}": "dc-RUNID"}
    failures = compare_saved(saved, committed, patterns)
    assert [f.split(":")[0] for f in failures] == ["cell 1", "cell 4", "cell 5"], failures
    assert [f.split(":")[0] for f in compare_saved(saved, committed, patterns, upto=5)] == ["cell 1", "cell 4"]
    assert compare_saved(committed, committed, patterns) == []
    other = notebook(tmp_path / "other.ipynb", [("print('same')", ["same\n"])])
    assert compare_saved(other, committed, patterns) == ["other.ipynb: its cells are not the committed notebook's"]
    assert compare_saved(saved, committed, patterns, upto=0) == ["saved.ipynb: no cell was compared"]


@pytest.mark.skipif(os.environ.get("COURSE_PASS") == "dind", reason="run once, in the main pass")
def test_two_learners_run_the_whole_course_at_once(client):
    notebooks = course_notebooks()
    assert notebooks
    classmate = os.environ.get("COURSE_CLASSMATE")
    if classmate:
        result = classmate_alongside_this_pass(Path(classmate), notebooks)
    else:
        result = classroom(2, notebooks)
    assert result["notebooks"] == [p.name for p in notebooks]
    assert result["failures"] == [], "\n".join(result["failures"][:15])
    assert result["leaked_runs"] == [], f"objects left by the learners' kernels: {result['leaked_runs']}"


def classmate_alongside_this_pass(out: Path, notebooks: list[Path], timeout: float = 900) -> dict:
    """The classmate's outcome, once it is done, and proof that it overlapped this pass's notebooks."""
    deadline = time.monotonic() + timeout
    while not out.exists():  # written whole when the classmate ends (bench.learner.main)
        assert time.monotonic() < deadline, (f"the classmate (the browser pass, tests/test_browser.py) did not "
                                            f"finish in {timeout:.0f} s")
        time.sleep(0.5)
    done = json.loads(out.read_text())
    result = gather([(out, None)])
    result["notebooks"] = [r["notebook"] for r in done["notebooks"]]
    spans = [tuple(map(float, line.split()[1:])) for line in nbval_times_file(out).read_text().splitlines()]
    ours = (min(s for s, _ in spans), max(e for _, e in spans))
    together = min(ours[1], done["finished"]) - max(ours[0], done["started"])
    assert together >= 10, (f"the classmate ({done['started']:.0f}–{done['finished']:.0f}) and this pass's notebooks "
                            f"({ours[0]:.0f}–{ours[1]:.0f}) barely ran at once: {together:.1f} s")
    return result
