"""A shared-daemon classroom: several learners run the whole course at once, against one daemon,
and every one of them passes — with nothing left on the daemon afterwards.

Each learner is its own process running every notebook (whatever notebooks exist) in its own
kernels, checked as ``pytest --nbval`` checks them (bench/learner.py). This is the slowest test
of the suite (about one course run's time); the DinD pass skips it, having run it once already.
"""

from __future__ import annotations

import os

import nbformat
import pytest

from bench.learner import classroom, course_notebooks, run_notebook


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


@pytest.mark.skipif(os.environ.get("COURSE_PASS") == "dind", reason="run once, in the main pass")
def test_two_learners_run_the_whole_course_at_once(client):
    notebooks = course_notebooks()
    assert notebooks
    result = classroom(2, notebooks)
    assert result["notebooks"] == [p.name for p in notebooks]
    assert result["failures"] == [], "\n".join(result["failures"][:15])
    assert result["leaked_runs"] == [], f"objects left by the learners' kernels: {result['leaked_runs']}"
