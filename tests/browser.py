"""The course as learners see it: JupyterLab served as ``./course open`` serves it, driven in Debian's
Chromium by Playwright (tests/test_browser.py asserts on what this module finds).

- :func:`chromium` is the browser lane of versions.toml (coursehost/debian.py fetches it with apt
  into ``.state/debian/browser-*``, with its own libraries and fonts); Playwright's own browser
  download is never used (it cannot work offline).
- :class:`Lab` starts ``python -m coursehost.lab`` (what ``./course open`` runs) on its own port,
  token, runtime and settings folders, serving a copy of the notebooks (a browser run must not
  touch the committed files: autosave is off too).
- :func:`browser_pass` opens every notebook in a 1280×800 window with the file browser open, in
  two tabs at a time, clears its outputs, runs it with the Kernel menu's "Restart Kernel and Run
  All Cells…", and reports: error outputs, widgets that did not render, widgets and tables wider
  than the notebook, what each widget's controls did to the daemon, and every request the page
  made. A screenshot of each widget and picture goes to ``.state/artefacts/browser/``.

A notebook with controls (a widget with buttons or a dropdown) is run in two steps instead, so
that the controls are clicked while the run's objects still exist: "Restart Kernel and Run up
to Selected Cell…" with the cell before the clean-up selected, the clicks, then "Run Selected
Cell and All Below" from the clean-up cell. Every cell still runs once, in order, in one kernel.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from playwright.async_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parent.parent
ARTEFACTS = ROOT / ".state" / "artefacts" / "browser"
VIEWPORT = {"width": 1280, "height": 800}
#: How long one notebook may take in the browser (a loaded machine; nbval allows 120 s a cell).
NOTEBOOK_TIMEOUT = float(os.environ.get("COURSE_BROWSER_TIMEOUT", "600"))
TABS = 2
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: The reprs a widget falls back to when JupyterLab cannot render it (no widget manager).
WIDGET_REPR = re.compile(r"^(VBox|HBox|Box|Button|Dropdown|IntProgress|FloatProgress|HTML|Output|Text|Tab|Accordion)\(")


class KernelStuck(RuntimeError):
    """The notebook's kernel did not come back from a restart."""


class NotebookTooSlow(TimeoutError):
    """The notebook still ran after :data:`NOTEBOOK_TIMEOUT` seconds: it is not run once more."""


class Unavailable(RuntimeError):
    """No browser can be had here (no apt, or Debian's archive out of reach): the reason."""


def chromium() -> Path:
    """The browser lane's Chromium wrapper (fetched on first use, about 30 s and 220 MB)."""
    from coursehost import debian

    try:
        return debian.program("browser", "chromium")
    except debian.AptFailed as err:
        raise Unavailable(f"Debian's Chromium could not be fetched: {err}") from None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def widget_notebooks(paths: list[Path]) -> list[Path]:
    """The notebooks whose widgets have controls the browser pass clicks."""
    return [p for p in paths if any(k in p.read_text() for k in CONTROL_MAKERS)]


#: What in a notebook's source makes a widget with controls.
CONTROL_MAKERS = ("LifecyclePanel(", "image_explorer(")


class Lab:
    """``python -m coursehost.lab`` as ``./course open`` starts it, in folders of its own."""

    def __init__(self, workdir: Path, lang: str = "en", notebooks: list[Path] | None = None) -> None:
        self.workdir, self.lang = workdir, lang
        self.root = workdir / "notebooks"
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.proc: subprocess.Popen | None = None
        self.notebooks = notebooks or []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Lab":
        self.root.mkdir(parents=True, exist_ok=True)
        for nb in self.notebooks:
            shutil.copy2(nb, self.root / nb.name)
        settings = self.workdir / "user-settings" / "@jupyterlab"
        # the test's own choices, as a learner's settings would be: no autosave (the copies stay as
        # they were), every cell kept in the page (the checks and screenshots see all outputs)
        for plugin, values in {"docmanager-extension/plugin": {"autosave": False},
                               "notebook-extension/tracker": {"windowingMode": "none"}}.items():
            path = settings / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(self.workdir / "runtime"),
                   JUPYTER_CONFIG_DIR=str(self.workdir / "config"))
        self.log = open(self.workdir / "lab.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coursehost.lab", f"--lang={self.lang}", f"--port={self.port}",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
             f"--LabApp.user_settings_dir={self.workdir / 'user-settings'}",
             f"--LabApp.workspaces_dir={self.workdir / 'workspaces'}"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait(self, timeout: float = 120) -> None:
        """Until the server answers with its token; RuntimeError (with its log) if it died or not."""
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(f"{self.base}/api/status", headers={"Authorization": f"token {self.token}"})
        while True:
            try:
                with urllib.request.urlopen(request, timeout=10):
                    return
            except (urllib.error.URLError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start; its log:\n"
                                       + (self.workdir / "lab.log").read_text()[-3000:]) from None
                time.sleep(0.2)

    def api(self, path: str, method: str = "GET", timeout: float = 60):
        """The server's REST API (``/api/...``): the JSON it answers, None for an empty answer;
        raises urllib.error.URLError / OSError when it does not answer."""
        request = urllib.request.Request(f"{self.base}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def start_over(self, nb: Path) -> None:
        """Before ``nb`` is run once more: shut down the kernel of each of its sessions (as "Close and
        Shut Down Notebook" does; the next run's reaper then removes what that kernel made,
        helpers/reaper.py) and put back the notebook's committed copy."""
        for session in self.api("/api/sessions") or []:
            if session.get("path", "").endswith(nb.name):
                self.api(f"/api/sessions/{session['id']}", method="DELETE")
        shutil.copy2(nb, self.root / nb.name)

    def url(self, workspace: str, notebook: str | None = None) -> str:
        tree = f"/tree/{notebook}" if notebook else ""
        return f"{self.base}/lab/workspaces/{workspace}{tree}?reset&token={self.token}"

    def stop(self) -> None:
        """Ctrl-C, as a learner stops it (its kernels are shut down with it)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()


@dataclass
class Report:
    """What the browser pass saw of one notebook."""
    name: str
    seconds: float = 0.0
    problem: str = ""                                      # the pass itself could not finish
    untrusted: list[str] = field(default_factory=list)     # saved outputs shown as untrusted
    errors: list[str] = field(default_factory=list)        # error / stderr outputs
    not_run: list[int] = field(default_factory=list)       # code cells with no execution count
    widgets: int = 0
    unrendered: list[str] = field(default_factory=list)
    overflows: list[str] = field(default_factory=list)
    shots: list[str] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)      # what each click did, as checked
    control_failures: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    retried: str = ""                                      # why it was run a second time
    kernel_pid: int | None = None                          # its kernel (for the objects it left)
    saved: str = ""                                        # the notebook as JupyterLab saved it
    compared_upto: int | None = None                       # cells from here on not compared
    mismatches: list[str] = field(default_factory=list)    # cells whose outputs differ from the committed ones


# --- JavaScript run in the page ------------------------------------------------------------------

CELLS = ".jp-Notebook .jp-Cell"
#: Each code cell's prompt ("[3]:", "[*]:", "[ ]:"); null for one whose input is collapsed (its
#: prompt is not drawn: the cell runs all the same).
PROMPTS_JS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].map(c =>
  c.querySelector('.jp-InputPlaceholder') ? null : (c.querySelector('.jp-InputPrompt') || {}).textContent)"""
BUSY_JS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
                    .some(e => e.textContent.includes('*'))"""
STATUS_JS = """() => { const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  return ind ? ind.dataset.status : null; }"""
KERNEL_STUCK = 120
KERNEL_IDLE_JS = """() => { const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  return !!ind && ind.dataset.status === 'idle'; }"""
IDLE_JS = """() => { const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
  const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent);
  return ind && ind.dataset.status === 'idle' && !prompts.some(p => p.includes('*')); }"""
#: JupyterLab opens a Launcher tab whenever the main area is empty, once the page is restored: on a
#: fresh page about a second after the file browser lists, later on a loaded machine. Two CI
#: failures under load looked like a notebook left behind a Launcher that came after it (its Run
#: menu's "Run All Cells" gone — with another tab current it reads "Run All" — and no notebook
#: panel shown), so a notebook is opened only once the Launcher is the current tab.
LAUNCHER_JS = """() => !!document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current[data-id^="launcher-"]')"""
#: The current tab of the main area is the notebook ``name``.
NOTEBOOK_CURRENT_JS = """(name) => { const t = document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current');
  return !!t && t.innerText.trim() === name; }"""
#: Each output's cell index, kind and what the checks need.
SCAN_JS = """(mime) => {
  const cells = [...document.querySelectorAll('.jp-Notebook .jp-Cell')];
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer').getBoundingClientRect();
  return [...document.querySelectorAll('.jp-Notebook .jp-OutputArea-output')].map((o, k) => {
    const r = o.getBoundingClientRect();
    return {k, cell: cells.indexOf(o.closest('.jp-Cell')), mime: o.dataset.mimeType || '',
            text: (o.innerText || '').slice(0, 2000), trusted: o.classList.contains('jp-mod-trusted'),
            table: !!o.querySelector('table'), img: !!o.querySelector('img, svg') && (o.dataset.mimeType || '').startsWith('image/'),
            widget: o.dataset.mimeType === mime || !!o.querySelector('.jupyter-widgets'),
            drawn: !!o.querySelector('.jupyter-widgets') && [...o.querySelectorAll('.jupyter-widgets')].some(w => w.getBoundingClientRect().width > 0 && w.getBoundingClientRect().height > 0),
            controls: [...o.querySelectorAll('button, select, input')].map(e => e.tagName.toLowerCase() + ':' + (e.innerText || e.value || '').trim()),
            scrollWidth: o.scrollWidth, clientWidth: o.clientWidth, right: r.right, panelRight: panel.right};
  });
}"""


#: What the page shows when a step fails: a dialog, the main area's tabs (the current one marked *)
#: and an open menu.
PAGE_STATE_JS = """() => {
  const text = (e, n) => e ? (e.innerText || '').replace(/\\s+/g, ' ').trim().slice(0, n) : '';
  const tabs = [...document.querySelectorAll('#jp-main-dock-panel .lm-TabBar-tab')]
    .map(t => (t.classList.contains('lm-mod-current') ? '*' : '') + text(t, 60));
  return {dialog: text(document.querySelector('.jp-Dialog'), 300), tabs,
          menu: text(document.querySelector('.lm-Menu'), 200)};
}"""


async def page_state(page) -> str:
    """What the page shows, in one line, for a problem's report ("" when it cannot be read)."""
    try:
        seen = await page.evaluate(PAGE_STATE_JS)
    except Exception:  # noqa: BLE001 - a page that cannot be read has nothing to add
        return ""
    parts = [f"a dialog says {seen['dialog']!r}"] if seen["dialog"] else []
    parts.append(f"main area tabs {seen['tabs']} (* current)")
    if seen["menu"]:
        parts.append(f"an open menu shows {seen['menu']!r}")
    return "; ".join(parts)


#: Outputs JupyterLab shows differently when the notebook is not trusted (widgets and SVG not at
#: all: they fall back to text).
RICH_MIMES = ("text/html", "image/png", "image/svg+xml", WIDGET_MIME)


def untrusted(scan: list[dict]) -> list[str]:
    """Of the outputs :data:`SCAN_JS` found, the rich ones shown untrusted, as "cell N (mime)"."""
    return [f"cell {o['cell']} ({o['mime']})" for o in scan if o["mime"] in RICH_MIMES and not o["trusted"]]


async def _menu(page, menu: str, item: str) -> None:
    """Click ``menu`` in the menu bar, then ``item`` (its label as the English interface shows it).
    Raises RuntimeError at once when the item is hidden or disabled, as JupyterLab makes a
    notebook's commands when that notebook is not the current tab (a click would wait in vain)."""
    await page.click(f".lm-MenuBar-itemLabel:text-is('{menu}')")
    await page.locator(".lm-Menu").first.wait_for(state="visible", timeout=30_000)
    entry = page.locator(".lm-Menu .lm-Menu-item", has=page.locator(f".lm-Menu-itemLabel:text-is('{item}')"))
    if not await entry.count():   # JupyterLab names some items after the current tab ("Run All")
        labels = await page.locator(".lm-Menu .lm-Menu-itemLabel").all_inner_texts()
        await page.keyboard.press("Escape")
        raise RuntimeError(f"the {menu} menu has no {item!r}: it shows {[x for x in labels if x.strip()]}")
    classes = (await entry.get_attribute("class") or "").split()
    if unusable := [c.removeprefix("lm-mod-") for c in classes if c in ("lm-mod-hidden", "lm-mod-disabled")]:
        await page.keyboard.press("Escape")
        raise RuntimeError(f"the {menu} menu's {item!r} is {' and '.join(unusable)}")
    await entry.click()


async def _accept_dialog(page) -> None:
    await page.click(".jp-Dialog .jp-Dialog-button.jp-mod-accept", timeout=60_000)


async def _select_cell(page, index: int) -> None:
    cell = page.locator(CELLS).nth(index)
    await cell.scroll_into_view_if_needed()
    await cell.locator(".jp-InputPrompt").first.click()
    await page.keyboard.press("Escape")  # command mode
    if "jp-mod-active" not in (await cell.get_attribute("class") or ""):
        raise AssertionError(f"cell {index} could not be selected")


async def _run_and_wait(page, deadline: float, watch: int | None = None) -> None:
    """After a run command: until a cell runs (or cell ``watch`` has run: one short cell may be
    done before we look), then until none is queued and the kernel is idle."""
    ran = f"""() => {{ const c = [...document.querySelectorAll('{CELLS}')][{watch if watch is not None else -1}];
      const p = c && c.querySelector('.jp-InputPrompt'); return !!p && /\\[\\d+\\]/.test(p.textContent); }}"""
    await page.wait_for_function(f"() => ({BUSY_JS})() || ({ran})()", polling=100, timeout=120_000)
    stuck_since = None
    while True:  # until idle; a kernel that stays "starting" 120 s (seen on a loaded machine) is stuck
        left = deadline - time.monotonic()
        if left <= 0:
            raise NotebookTooSlow(f"the notebook still ran after {NOTEBOOK_TIMEOUT:.0f} s")
        try:
            await page.wait_for_function(IDLE_JS, polling=500, timeout=min(left, 10) * 1000)
            return
        except PlaywrightTimeout:
            pass
        status = await page.evaluate(STATUS_JS)
        if status in ("starting", "restarting", "unknown", "dead", "autorestarting"):
            stuck_since = stuck_since or time.monotonic()
            if time.monotonic() - stuck_since > KERNEL_STUCK:
                raise KernelStuck(f"the kernel stayed {status!r} for {KERNEL_STUCK} s")
        else:
            stuck_since = None


def _cleanup_cell(nb_path: Path) -> int | None:
    """The index of the last code cell that calls ``.cleanup(``: the notebook's clean-up."""
    cells = json.loads(nb_path.read_text())["cells"]
    found = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and ".cleanup(" in "".join(c["source"])]
    return found[-1] if found else None


# --- the widgets' controls ---------------------------------------------------------------------

def _state(client, name: str) -> str:
    """The daemon's state of container ``name`` ("none" when there is none)."""
    import docker

    try:
        return client.api.inspect_container(name)["State"]["Status"]
    except docker.errors.NotFound:
        return "none"


async def _daemon_says(client, name: str, want: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        have = await asyncio.to_thread(_state, client, name)
        if have == want or time.monotonic() > deadline:
            return have
        await asyncio.sleep(0.25)


async def _panel_controls(page, out, client, report: Report) -> None:
    """The lifecycle panel: each button, then the daemon's state of its container, and the panel's."""
    from playwright.async_api import expect

    text = await out.inner_text()
    found = re.search(r"(dc-[0-9a-f]{6}-[\w.-]+) is (\w+)", text)
    if not found:
        report.control_failures.append(f"lifecycle panel: no 'NAME is STATE' line in {text[:200]!r}")
        return
    name = found.group(1)
    prefix = name.rsplit("-", 1)[0]
    steps = [("create", "created"), ("start", "running"), ("pause", "paused"), ("unpause", "running"),
             ("stop", "exited"), ("restart", "running"), ("rename", "running"), ("stop", "exited"),
             ("remove", "none")]
    for action, want in steps:
        await out.locator("button", has_text=re.compile(rf"^\s*{action}\s*$")).click()
        if action == "rename":
            new = f"{prefix}-renamed"
            have, old = await _daemon_says(client, new, want), await _daemon_says(client, name, "none")
            ok = have == want and old == "none"
            report.controls.append(f"rename: daemon has {new} {have}, {name} {old}")
            if not ok:
                report.control_failures.append(f"'rename' pressed: the daemon has {new} {have!r} and the old name "
                                               f"{name} {old!r} (wanted {new} running and no {name})")
                return
            name = new
        else:
            have = await _daemon_says(client, name, want)
            report.controls.append(f"{action}: daemon says {name} {have}")
            if have != want:
                report.control_failures.append(f"'{action}' pressed: the daemon says {name} is {have!r}, "
                                               f"not {want!r}; the panel says {(await out.inner_text())[:300]!r}")
                return
        try:
            shown = name if action != "remove" else rf"{prefix}-\S+"
            await expect(out).to_contain_text(re.compile(rf"{shown} is {want}"), timeout=30_000)
        except AssertionError:
            report.control_failures.append(f"'{action}' pressed: the daemon says {want}, the panel does not show it: "
                                           f"{(await out.inner_text())[:300]!r}")
            return


async def _explorer_controls(page, out, client, report: Report) -> None:
    """The image explorer: each choice of the dropdown, then the daemon's Id of it in the summary."""
    from playwright.async_api import expect

    select = out.locator("select")
    options = [o.strip() for o in await select.locator("option").all_inner_texts()]
    if len(options) < 2:
        report.control_failures.append(f"image explorer: fewer than two images to choose from: {options}")
    for ref in [*options[1:], *options[:1]]:
        await select.select_option(label=ref)
        image_id = await asyncio.to_thread(lambda: client.images.get(ref).id)
        try:
            await expect(out).to_contain_text(f"{ref}: inspect summary", timeout=30_000)
            await expect(out).to_contain_text(image_id.split(":")[-1][:12], timeout=30_000)
        except AssertionError:
            report.control_failures.append(f"image explorer: chose {ref}, and its Id {image_id[:19]} is not shown: "
                                           f"{(await out.inner_text())[:300]!r}")
            return
        report.controls.append(f"chose {ref}: shows {image_id[:19]}")


async def _controls(page, client, report: Report, scan: list[dict]) -> None:
    outputs = page.locator(".jp-Notebook .jp-OutputArea-output")
    for o in scan:
        if not (o["widget"] and o["controls"]):
            continue
        out = outputs.nth(o["k"])
        labels = {c.split(":", 1)[1] for c in o["controls"]}
        if {"create", "start", "pause", "remove"} <= labels:
            await _panel_controls(page, out, client, report)
        elif "inspect summary" in o["text"] and any(c.startswith("select:") for c in o["controls"]):
            await _explorer_controls(page, out, client, report)
        else:
            report.control_failures.append(f"cell {o['cell']}: a widget with controls {sorted(labels)} that the "
                                           "browser tests do not click yet (add it to tests/browser.py)")


# --- one notebook --------------------------------------------------------------------------------

async def _scan(page, report: Report, stem: str, shots: bool) -> list[dict]:
    scan = await page.evaluate(SCAN_JS, WIDGET_MIME)
    for o in scan:
        where = f"cell {o['cell']}"
        if o["mime"] == "application/vnd.jupyter.stderr" or "Traceback (most recent call last)" in o["text"]:
            report.errors.append(f"{where}: {o['text'][:1500]}")
        if o["widget"]:
            if not o["drawn"] or re.search(r"Error displaying widget|Loading widget|model not found", o["text"]):
                report.unrendered.append(f"{where}: {o['text'][:300]!r}")
        elif o["mime"] == "text/plain" and WIDGET_REPR.match(o["text"]):
            report.unrendered.append(f"{where}: shown as text, not as a widget: {o['text'][:200]!r}")
        if (o["widget"] or o["table"] or o["img"]) and (o["scrollWidth"] > o["clientWidth"] + 1
                                                          or o["right"] > o["panelRight"] + 1):
            kind = "widget" if o["widget"] else "table" if o["table"] else "picture"
            report.overflows.append(f"{where}: a {kind} {o['scrollWidth']} px wide in an output "
                                    f"{o['clientWidth']} px wide (right edge {o['right']:.0f}, notebook's {o['panelRight']:.0f})")
    if shots:
        outputs = page.locator(".jp-Notebook .jp-OutputArea-output")
        report.widgets = sum(o["widget"] for o in scan)
        for o in scan:
            if not (o["widget"] or o["img"]):
                continue
            kind = "widget" if o["widget"] else "picture"
            out = outputs.nth(o["k"])
            base = ARTEFACTS / f"{stem}-cell{o['cell']:02d}-{kind}"
            await out.evaluate("e => e.scrollIntoView({block: 'start'})")
            # the widget alone, as much of it as the window shows (the notebook scrolls inside the
            # page, so an element taller than the window cannot be captured whole)
            box = await out.bounding_box()
            view = await page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer").bounding_box()
            if box and view:
                top, bottom = max(box["y"], view["y"]), min(box["y"] + box["height"], view["y"] + view["height"])
                left, right = max(box["x"], view["x"]), min(box["x"] + box["width"], view["x"] + view["width"])
                if bottom > top and right > left:
                    await page.screenshot(path=f"{base}.png",
                                          clip={"x": left, "y": top, "width": right - left, "height": bottom - top})
            await page.screenshot(path=f"{base}-1280x800.png")  # the whole window, as the learner sees it
            report.shots += [n for n in (f"{base.name}.png", f"{base.name}-1280x800.png") if (ARTEFACTS / n).exists()]
    return scan


def kernel_pid(lab: Lab, name: str) -> int | None:
    """The pid of the kernel the lab runs for notebook ``name`` (its session, then the process
    whose command line names that kernel's connection file), or None."""
    try:
        sessions = lab.api("/api/sessions", timeout=10) or []
    except (urllib.error.URLError, OSError, ValueError):
        return None
    from coursehost.procs import command_lines

    ids = [x["kernel"]["id"] for x in sessions if x.get("path", "").endswith(name) and x.get("kernel")]
    connection_file = f"kernel-{ids[0]}.json" if ids else None
    return next((pid for pid, argv in command_lines().items()
                 if connection_file and any(a.endswith(connection_file) for a in argv)), None)


async def open_lab(page, lab: Lab, workspace: str) -> None:
    """Load JupyterLab in ``page`` (its own workspace), with the file browser open and listing."""
    for attempt in range(3):
        # a server that answers slowly (a loaded machine) can miss JupyterLab's theme deadline,
        # which then says "Error Loading Theme" and draws no notebook: load the page again
        await page.goto(lab.url(workspace))
        await page.wait_for_function("""() => document.querySelectorAll('.jp-DirListing-item').length > 0
                                         || !!document.querySelector('.jp-Dialog')""", timeout=180_000)
        dialog = page.locator(".jp-Dialog")
        if not await dialog.count():
            return
        if attempt == 2:
            raise RuntimeError(f"JupyterLab said: {(await dialog.inner_text())[:200]!r}")


async def run_in_page(page, lab: Lab, nb: Path, client, report: Report) -> None:
    """Open ``nb`` from the file browser of the JupyterLab loaded in ``page``, as a learner does,
    run it all, check what it shows and click its controls, save it, close it and shut its kernel
    down. Fills ``report``; raises what stopped it (the caller reports it)."""
    deadline = time.monotonic() + NOTEBOOK_TIMEOUT
    n_cells = len(json.loads(nb.read_text())["cells"])
    if not await page.is_visible("#filebrowser"):
        await page.click(".jp-SideBar [data-id=filebrowser]")
    await page.wait_for_function(LAUNCHER_JS, polling=200, timeout=120_000)
    name = re.compile(rf"^\s*{re.escape(nb.name)}\s*$")
    await page.locator(".jp-DirListing-itemText", has_text=name).dblclick()
    await page.wait_for_function(f"""() => document.querySelectorAll('{CELLS}').length === {n_cells}
                                     || !!document.querySelector('.jp-Dialog')""", timeout=180_000)
    dialog = page.locator(".jp-Dialog")
    if await dialog.count():
        raise RuntimeError(f"JupyterLab said: {(await dialog.inner_text())[:200]!r}")
    await page.wait_for_function(NOTEBOOK_CURRENT_JS, arg=nb.name, polling=200, timeout=60_000)
    await page.wait_for_function(KERNEL_IDLE_JS, polling=500, timeout=180_000)
    # the course's notebooks open trusted: their saved rich outputs are shown as such
    report.untrusted = untrusted(await page.evaluate(SCAN_JS, WIDGET_MIME))
    await _menu(page, "Edit", "Clear Outputs of All Cells")
    # the notebook's kernel is fresh (it started when the notebook opened): Run All, as a learner does
    cleanup = _cleanup_cell(nb) if any(k in nb.read_text() for k in CONTROL_MAKERS) else None
    if cleanup:
        await _select_cell(page, cleanup)
        await _menu(page, "Run", "Run All Above Selected Cell")
    else:
        await _menu(page, "Run", "Run All Cells")
    await _run_and_wait(page, deadline)
    scan = await _scan(page, report, nb.stem, shots=True)
    if cleanup:
        if not report.errors:
            await _controls(page, client, report, scan)
            report.compared_upto = cleanup   # after the clicks, the clean-up has more to remove
        await _select_cell(page, cleanup)
        # JupyterLab offers "… and All Below" only when there is a cell below
        last = cleanup == n_cells - 1
        await _menu(page, "Run", "Run Selected Cell and Do not Advance" if last else "Run Selected Cell and All Below")
        await _run_and_wait(page, deadline, watch=cleanup)
        after = Report(nb.name)  # the error outputs of the whole notebook, now that all of it ran
        await _scan(page, after, nb.stem, shots=False)
        report.errors = after.errors
    prompts = await page.evaluate(PROMPTS_JS)
    report.not_run = [i for i, p in enumerate(prompts) if p is not None and not re.search(r"\[\d+\]", p)]
    report.kernel_pid = await asyncio.to_thread(kernel_pid, lab, nb.name)
    await _menu(page, "File", "Save Notebook")
    await page.wait_for_function("() => !document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) "
                                 ".jp-mod-dirty')", timeout=60_000)
    report.saved = str(lab.root / nb.name)
    await _menu(page, "File", "Close and Shut Down Notebook…")
    if await page.locator(".jp-Dialog").count():
        await _accept_dialog(page)
    await page.wait_for_function(f"() => document.querySelectorAll('{CELLS}').length === 0", timeout=60_000)


async def tab(browser, lab: Lab, n: int, queue: asyncio.Queue, client, reports: dict) -> None:
    """One browser tab of one learner: JupyterLab loaded once, the notebooks of ``queue`` opened
    in it one after another. A notebook that fails is reported and the page loaded afresh; one
    where the pass itself stumbled (a click that timed out on a loaded machine, a kernel that did
    not start) is run once more in a freshly loaded page, after its kernel is shut down; its report
    says why in ``retried``. One that still ran after :data:`NOTEBOOK_TIMEOUT` is not."""
    context = await browser.new_context(viewport=VIEWPORT, locale="en-US")
    current: dict = {}
    context.on("request", lambda r: current["report"].requests.append(r.url) if current else None)
    page = await context.new_page()
    page.on("websocket", lambda ws: current["report"].requests.append(ws.url) if current else None)
    # leaving a page with a notebook mid-run (to load it afresh after a problem): JupyterLab asks
    # "leave the page?"; the answer is yes (any other native dialog is dismissed)
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept() if d.type == "beforeunload" else d.dismiss()))
    fresh = True
    try:
        while not queue.empty():
            nb = queue.get_nowait()
            retried = ""
            for attempt in range(2):
                report = current["report"] = Report(nb.name, retried=retried)
                started = time.monotonic()
                try:
                    if fresh:
                        await open_lab(page, lab, f"tab{n}-{nb.stem}-{attempt}")
                        fresh = False
                    await run_in_page(page, lab, nb, client, report)
                except Exception as err:  # noqa: BLE001 - reported by the test, with a picture of the page
                    report.problem = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                    state = await page_state(page)
                    report.problem += f" ({state})" if state else ""
                    fresh = True
                    try:
                        await page.screenshot(path=str(ARTEFACTS / f"{nb.stem}-problem.png"))
                    except Exception:  # noqa: BLE001
                        pass
                finally:
                    report.seconds = round(time.monotonic() - started, 1)
                if not report.problem or attempt or report.problem.startswith("NotebookTooSlow"):
                    break
                retried = report.problem
                try:
                    await asyncio.to_thread(lab.start_over, nb)
                except (urllib.error.URLError, OSError, ValueError) as err:
                    report.problem += f"; and it could not be run again: the server did not shut its kernel down ({err})"
                    break
            reports[nb.name] = report
    finally:
        current.clear()
        await context.close()


async def chinese_interface(browser, lab: Lab) -> dict:
    """The interface ``--lang zh`` opens: the menu bar's labels and a screenshot."""
    context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    requests: list[str] = []
    context.on("request", lambda r: requests.append(r.url))
    page = await context.new_page()
    try:
        await page.goto(lab.url("zh"))
        await page.wait_for_selector(".lm-MenuBar-itemLabel", timeout=120_000)
        await page.wait_for_function("() => document.querySelectorAll('.jp-DirListing-item').length > 0", timeout=60_000)
        menus = await page.eval_on_selector_all(".lm-MenuBar-itemLabel", "es => es.map(e => e.textContent)")
        await page.screenshot(path=str(ARTEFACTS / "lab-zh-1280x800.png"))
        return {"menus": menus, "requests": requests}
    except Exception as err:  # noqa: BLE001 - the test says what went wrong
        return {"menus": [], "requests": requests, "problem": f"{type(err).__name__}: {err}"}
    finally:
        await context.close()


async def _pass(chromium_path: Path, lab: Lab, lab_zh: Lab | None, notebooks: list[Path], client) -> dict:
    from playwright.async_api import async_playwright

    queue: asyncio.Queue = asyncio.Queue()
    for nb in notebooks:
        queue.put_nowait(nb)
    reports: dict[str, Report] = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(chromium_path))
        try:
            zh = chinese_interface(browser, lab_zh) if lab_zh else asyncio.sleep(0, result=None)
            *_, zh_result = await asyncio.gather(*(tab(browser, lab, n, queue, client, reports) for n in range(TABS)), zh)
        finally:
            await browser.close()
    return {"reports": reports, "zh": zh_result}


def browser_pass(workdir: Path, notebooks: list[Path], client, zh: bool = True) -> dict:
    """Run every notebook in the browser (two tabs), and the Chinese interface once.

    Returns ``{"reports": {name: Report}, "zh": {...} | None, "seconds": wall time}``; raises
    :class:`Unavailable` when no Chromium can be had here. Writes ``summary.json`` beside the
    screenshots."""
    path = chromium()
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for old in [*ARTEFACTS.glob("[0-9][0-9]_*.png"), *ARTEFACTS.glob("lab-zh*.png"), ARTEFACTS / "summary.json"]:
        old.unlink(missing_ok=True)  # this pass's files only: the folder may hold others'
    started = time.monotonic()
    # the longest first, so the two tabs end together
    order = sorted(notebooks, key=lambda p: -len(json.loads(p.read_text())["cells"]))
    lab = Lab(workdir / "lab", "en", notebooks).start()
    lab_zh = Lab(workdir / "lab-zh", "zh", notebooks).start() if zh else None
    try:
        lab.wait()
        if lab_zh:
            lab_zh.wait()
        result = asyncio.run(_pass(path, lab, lab_zh, order, client))
    finally:
        lab.stop()
        if lab_zh:
            lab_zh.stop()
    result["seconds"] = round(time.monotonic() - started, 1)
    (ARTEFACTS / "summary.json").write_text(json.dumps(
        {"seconds": result["seconds"], "zh": result["zh"],
         "reports": {k: asdict(v) for k, v in result["reports"].items()}}, indent=1, ensure_ascii=False))
    return result
