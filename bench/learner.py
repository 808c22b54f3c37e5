"""Learners for the concurrency test and the benchmark: each runs the whole course in its own
process and kernels, checked the way ``pytest --nbval`` checks it.

``python -m bench.learner OUT.json [--tabs N] NB…`` is one learner: it executes every notebook top to
bottom in a fresh kernel (nbclient, the library behind ``jupyter nbconvert --execute``), one after
another or N at a time (a learner with N tabs open), and compares every cell's outputs with the
committed ones using nbval's own comparison and the course's ``tests/sanitize.cfg``
(``# NBVAL_IGNORE_OUTPUT``, ``# NBVAL_SKIP``, ``raises-exception`` obeyed).

:func:`classroom` starts N learners at once against the one daemon, samples the machine's memory
while they run, and afterwards counts the objects their kernels left on the daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SANITIZE = ROOT / "tests" / "sanitize.cfg"


def course_notebooks() -> list[Path]:
    """Every notebook of the course, in order (whatever exists now)."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


# --- one notebook, checked as nbval checks it ------------------------------------------------------

class _Cell:
    """Just enough of nbval's IPyNbCell to borrow its output comparison."""

    def __init__(self, patterns: dict[str, str]) -> None:
        from nbval.plugin import IPyNbCell, IPyNbFile, nocolors

        self.parent = type("P", (), {"sanitize_patterns": patterns,
                                     "skip_compare": _skip_compare(IPyNbFile)})()
        self.colors = nocolors
        self._compare = IPyNbCell.compare_outputs
        self._sanitize = IPyNbCell.sanitize
        self.comparison_traceback: list[str] = []

    def sanitize(self, s: Any) -> Any:
        return self._sanitize(self, s)

    def format_output_compare(self, key: str, left: Any, right: Any) -> None:
        left, right = str(left), str(right)
        at = next((i for i, (a, b) in enumerate(zip(left, right)) if a != b), min(len(left), len(right)))
        start = max(0, at - 40)  # where they part, not the (shared) start of a long HTML table
        self.comparison_traceback.append(f"{key} at char {at}: expected {left[start:at + 120]!r}, "
                                         f"got {right[start:at + 120]!r}")

    def same(self, test: list, ref: list) -> bool:
        return self._compare(self, test, ref)


def _skip_compare(file_cls: type) -> tuple[str, ...]:
    # what IPyNbFile.__init__ sets without --nbdime
    return ("metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
            "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg")


def _options(cell: Any) -> dict[str, bool]:
    from nbval.plugin import find_comment_markers, find_metadata_tags

    options: dict[str, bool] = defaultdict(bool, find_metadata_tags(cell.metadata))
    options.update(dict(find_comment_markers(cell.source)))
    options.setdefault("check", True)
    return options


CELL_TIMEOUT = float(os.environ.get("COURSE_CELL_TIMEOUT", "300"))


def ipc_kernel_manager():
    """A python3 ``KernelManager`` (not started) whose kernel talks over unix sockets in a folder
    of its own (``os.path.dirname(km.ip)``: remove it after ``km.cleanup_resources()``). With TCP,
    kernels starting at once pick the same free port now and then, and one dies before replying
    ("ZMQError: Address already in use", then "Kernel died before replying to kernel_info":
    30 learners' kernels, and a fault test's kernel beside nbval's, have)."""
    from jupyter_client.manager import KernelManager

    sockets = tempfile.mkdtemp(prefix="course-kernel-")
    return KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))


def start_ipc_kernel(cwd: str, env: dict[str, str] | None = None, timeout: float = 60):
    """A started :func:`ipc_kernel_manager` kernel (in ``cwd``, with ``env``) and its blocking
    client, ready: ``(km, kc)``, as jupyter_client's ``start_new_kernel`` returns them. Raises
    RuntimeError when the kernel does not answer within ``timeout`` s (it is shut down then)."""
    km = ipc_kernel_manager()
    km.start_kernel(cwd=cwd, env=env if env is not None else dict(os.environ))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=timeout)
    except RuntimeError:
        stop_ipc_kernel(km, kc)
        raise
    return km, kc


def stop_ipc_kernel(km, kc=None, now: bool = True) -> None:
    """Stop ``kc``'s channels, shut down ``km``'s kernel if it still runs (at once, or politely
    with ``now=False``), and remove its socket folder."""
    if kc is not None:
        kc.stop_channels()
    if km.has_kernel and km.is_alive():
        km.shutdown_kernel(now=now)
    km.cleanup_resources()
    shutil.rmtree(os.path.dirname(km.ip), ignore_errors=True)


def run_notebook(path: Path, patterns: dict[str, str], timeout: float = CELL_TIMEOUT) -> dict[str, Any]:
    """Execute one notebook in a fresh kernel; the cells whose outputs differ or that raised."""
    import nbformat
    from nbclient import NotebookClient
    from nbval.plugin import coalesce_streams

    nb = nbformat.read(path, as_version=4)
    reference = {i: coalesce_streams([nbformat.from_dict(o) for o in c.outputs])
                 for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    unrun = {i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.execution_count is None}
    km = ipc_kernel_manager()
    client = NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3", allow_errors=True,
                            startup_timeout=300,  # 30 kernels starting at once on 2 cores (nbclient: 60)
                            resources={"metadata": {"path": str(path.parent)}})
    failures: list[str] = []
    start = time.monotonic()
    compare = _Cell(patterns)
    try:
        kernel_pid = _execute(client, nb, compare, unrun, reference, failures)
    finally:  # nbclient shuts down only kernels it made itself: a learner closes its tab
        stop_ipc_kernel(km, now=False)
    return {"notebook": path.name, "seconds": round(time.monotonic() - start, 2), "failures": failures,
            "kernel_pid": kernel_pid}


def _execute(client: Any, nb: Any, compare: _Cell, unrun: set[int], reference: dict[int, list],
             failures: list[str]) -> int | None:
    """Run every cell in the client's fresh kernel, noting failures; the kernel's pid."""
    with client.setup_kernel():
        kernel_pid = getattr(client.km.provisioner, "pid", None)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            options = _options(cell)
            if options["skip"]:
                continue
            cell.outputs = []
            client.execute_cell(cell, index)
            failure = _check_cell(index, cell, None if index in unrun else reference[index], options, compare)
            if failure:
                failures.append(failure)
    return kernel_pid


def _check_cell(index: int, cell: Any, reference: list | None, options: dict[str, bool],
                compare: _Cell) -> str | None:
    """What is wrong with code cell ``index``, as nbval judges it: an error it may not raise, or
    outputs that differ from ``reference`` (the committed ones, streams coalesced; None: not
    compared). None when nothing is."""
    from nbval.plugin import coalesce_streams

    errors = [o for o in cell.outputs if o.output_type == "error"]
    if errors and not options["check_exception"]:
        return f"cell {index}: {errors[0].ename}: {errors[0].evalue}"[:300]
    compare.comparison_traceback = []  # this cell's differences only
    if options["check"] and reference is not None and not compare.same(coalesce_streams(cell.outputs), reference):
        detail = " ".join(str(x) for x in compare.comparison_traceback)[:600]
        stderr = "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stderr")
        detail += f" (stderr: {stderr[:200]!r})" if stderr else ""
        return f"cell {index}: outputs differ: {detail}"
    return None


def compare_saved(ran: Path, committed: Path, patterns: dict[str, str] | None = None,
                  upto: int | None = None) -> list[str]:
    """The cells of notebook file ``ran`` (run and saved elsewhere, e.g. by JupyterLab) whose
    outputs differ from ``committed``'s, as nbval compares them (``tests/sanitize.cfg``, the
    cells' markers, stream coalescing); code cells from index ``upto`` on are not compared.

    Returns one line per differing cell or error output ([] when all match); an empty list is
    returned only if at least one cell was compared (else one line saying none was).
    """
    import nbformat
    from nbval.plugin import coalesce_streams, get_sanitize_patterns

    patterns = dict(get_sanitize_patterns(SANITIZE.read_text())) if patterns is None else patterns
    ours, theirs = nbformat.read(ran, as_version=4), nbformat.read(committed, as_version=4)
    if [c.source for c in ours.cells] != [c.source for c in theirs.cells]:
        return [f"{ran.name}: its cells are not the committed notebook's"]
    compare, failures, compared = _Cell(patterns), [], 0
    for index, (cell, ref) in enumerate(zip(ours.cells, theirs.cells)):
        if cell.cell_type != "code" or (upto is not None and index >= upto):
            continue
        options = _options(cell)
        if options["skip"] or ref.execution_count is None:
            continue
        compared += options["check"]
        failure = _check_cell(index, cell, coalesce_streams(ref.outputs), options, compare)
        if failure:
            failures.append(failure)
    return failures if compared else [f"{ran.name}: no cell was compared"]


def _run_checked(path: Path, patterns: dict[str, str]) -> dict[str, Any]:
    try:
        return run_notebook(path, patterns)
    except Exception as err:  # noqa: BLE001 — a kernel that died, a timeout: a failure, reported
        return {"notebook": path.name, "seconds": None, "kernel_pid": None,
                "failures": [f"{type(err).__name__}: {str(err)[:300]}"]}


def run_learner(paths: list[Path], tabs: int = 1) -> list[dict[str, Any]]:
    """One learner: every notebook, one fresh kernel each; in order, or ``tabs`` notebooks at a
    time (a learner with several tabs open), results still in the notebooks' order."""
    from concurrent.futures import ProcessPoolExecutor

    from nbval.plugin import get_sanitize_patterns

    patterns = dict(get_sanitize_patterns(SANITIZE.read_text()))
    if tabs <= 1:
        return [_run_checked(path, patterns) for path in paths]
    with ProcessPoolExecutor(max_workers=tabs) as tab:
        # the later chapters first: they are the longer ones, and a long one started last ends last
        futures = {path: tab.submit(_run_checked, path, patterns) for path in reversed(paths)}
        return [futures[path].result() for path in paths]


# --- many learners at once -------------------------------------------------------------------------

def memory_used() -> int:
    """Bytes of memory in use on the machine (MemTotal - MemAvailable, /proc/meminfo)."""
    fields = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0]) * 1024
    return fields["MemTotal"] - fields["MemAvailable"]


class MemorySampler(threading.Thread):
    """Samples :func:`memory_used` every ``interval`` seconds; ``peak`` is the highest seen."""

    def __init__(self, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.interval, self.baseline = interval, memory_used()
        self.peak = self.baseline
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self.peak = max(self.peak, memory_used())

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.peak = max(self.peak, memory_used())


def leaked_by(kernel_pids: set[int]) -> list[str]:
    """Run ids on the daemon (or in the files root) owned by these kernels: leftovers."""
    import socket

    from helpers.connection import connect
    from helpers.reaper import find_runs

    host = socket.gethostname()
    mine = {f"{host}:{pid}" for pid in kernel_pids}
    return sorted(run_id for run_id, found in find_runs(connect()).items()
                  if any(":".join(o.split(":")[:2]) in mine for o in found.owners))


def classroom(learners: int, paths: list[Path] | None = None, workdir: Path | None = None,
              timeout: float = 3600, groups: list[list[Path]] | None = None) -> dict[str, Any]:
    """``learners`` learners running the whole course at once, each its own process and kernels
    (or one process per list of notebooks in ``groups``).

    Returns wall time, failures (learner, notebook, cell), peak memory and leaked run ids.
    """
    import tempfile

    paths = course_notebooks() if paths is None else paths
    groups = [paths] * learners if groups is None else groups
    workdir = Path(tempfile.mkdtemp(prefix="course-class-")) if workdir is None else workdir
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    sampler = MemorySampler()
    sampler.start()
    start = time.monotonic()
    procs = []
    for i, group in enumerate(groups):
        out = workdir / f"learner-{i}.json"
        procs.append((out, subprocess.Popen([sys.executable, "-m", "bench.learner", str(out), *map(str, group)],
                                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                            stderr=open(workdir / f"learner-{i}.log", "w"))))
    for _, proc in procs:
        try:
            proc.wait(timeout=max(1.0, timeout - (time.monotonic() - start)))
        except subprocess.TimeoutExpired:
            proc.kill()
    wall = time.monotonic() - start
    sampler.stop()
    outcome = gather([(out, proc.returncode) for out, proc in procs], workdir)
    return {"learners": len(groups), "notebooks": [p.name for p in paths], "wall_seconds": round(wall, 1),
            **outcome,
            "memory_baseline_mb": round(sampler.baseline / 2**20), "memory_peak_mb": round(sampler.peak / 2**20),
            "memory_added_mb": round((sampler.peak - sampler.baseline) / 2**20), "workdir": str(workdir)}


def gather(learners: list[tuple[Path, int | None]], workdir: Path | str = "") -> dict[str, Any]:
    """What finished learners found: failures (learner, notebook, cell), seconds per notebook,
    their kernels' pids and the run ids those kernels left on the daemon.

    ``learners`` are (results file, exit code) pairs, the files :func:`main` wrote.
    """
    failures, per_notebook, pids = [], defaultdict(list), set()
    for i, (out, returncode) in enumerate(learners):
        try:
            results = json.loads(Path(out).read_text())["notebooks"]
        except (OSError, ValueError, KeyError, TypeError):
            failures.append(f"learner {i}: exited {returncode} without results (see {workdir or out})")
            continue
        for r in results:
            failures += [f"learner {i} {r['notebook']}: {f}" for f in r["failures"]]
            if r["seconds"] is not None:
                per_notebook[r["notebook"]].append(r["seconds"])
            if r["kernel_pid"]:
                pids.add(r["kernel_pid"])
    return {"failures": failures, "per_notebook_seconds": dict(per_notebook),
            "leaked_runs": leaked_by(pids), "kernel_pids": sorted(pids)}


def write_results(out: Path, started: float, notebooks: list[dict[str, Any]], **more: Any) -> None:
    """A learner's results file: ``started``/``finished`` (epoch seconds), ``notebooks`` (one dict
    each: notebook, seconds, failures, kernel_pid) and ``more``; written whole, then renamed, so a
    reader waiting for it never sees half of it."""
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps({"started": started, "finished": time.time(), **more, "notebooks": notebooks},
                                  indent=1))
    partial.replace(out)


def report_failures(text: str, notebooks: list[str]) -> list[list[str]]:
    """[notebook, what] for each failure in a learner's results file's ``text`` (as a learner in
    a lab container prints it), and for each of ``notebooks`` it did not run; one entry when
    ``text`` is no results file at all. [] when every notebook ran and passed."""
    try:
        found = json.loads(text)["notebooks"]
        failures = [[r["notebook"], f] for r in found for f in r["failures"]]
        ran = {r["notebook"] for r in found}
    except (ValueError, KeyError, TypeError):
        return [["all", "the learner did not report: " + text[-400:]]]
    return failures + [[n, "did not run"] for n in notebooks if n not in ran]


def nbval_times_file(classmate: Path) -> Path:
    """Where a test pass notes when its notebook cells ran, next to its classmate's results file
    (``COURSE_CLASSMATE``): tests/test_concurrency.py checks the two really ran at once."""
    return classmate.with_name(classmate.name + ".nbval-times")


def main(argv: list[str]) -> int:
    """One learner: ``python -m bench.learner OUT.json [--tabs N] [NB…]``; OUT.json appears when it
    is done (written whole, then renamed: a reader never sees half of it)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.learner")
    parser.add_argument("out", type=Path, help="where the results go (JSON)")
    parser.add_argument("--tabs", type=int, default=1, help="notebooks run at once (default: one after another)")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_intermixed_args(argv)
    out, paths = args.out, args.notebooks or course_notebooks()
    started = time.time()
    results = run_learner(paths, tabs=args.tabs)
    write_results(out, started, results)
    return 0 if not any(r["failures"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
