"""The README's first command: `./course open` serves JupyterLab on 127.0.0.1 with a token,
prints its URL, answers /lab with 200, and stops cleanly on Ctrl-C; set up for a class (no news,
no update check, the course's notebooks trusted), and in Chinese with `--lang zh`
(tests/test_browser.py looks at the same in a browser)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(url: str, path: str) -> dict:
    """GET ``path`` of the server of ``url`` (which carries the token), as JSON."""
    base, token = url.split("/lab?token=")
    request = urllib.request.Request(base + path, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.load(resp)


def setting_defaults(url: str, plugin: str) -> dict:
    """The defaults a plugin's settings have on that server (the course's overrides applied)."""
    schema = api(url, f"/lab/api/settings/{plugin}")["schema"]
    return {name: prop.get("default") for name, prop in schema["properties"].items()}


def check_class_settings(url: str) -> None:
    news = setting_defaults(url, "@jupyterlab/apputils-extension:notification")
    assert news["fetchNews"] == "false" and news["checkForUpdates"] is False, news
    for name in ("01_images.ipynb", "02_lifecycle.ipynb"):
        cells = api(url, f"/api/contents/{name}")["content"]["cells"]
        trusted = {c["metadata"].get("trusted") for c in cells if c["cell_type"] == "code"}
        assert trusted == {True}, f"{name} is not trusted when ./course open serves it: {trusted}"


def test_course_open_lang_zh_opens_the_chinese_interface(tmp_path):
    test_course_open_serves_lab_with_a_token_and_stops_on_ctrl_c(tmp_path, ["--lang", "zh"])


def test_course_open_refuses_a_language_it_has_not_in_one_sentence():
    done = subprocess.run([sys.executable, "-m", "coursehost.lab", "--lang", "xx"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "--lang xx is not a language of the course" in done.stderr


def test_course_open_serves_lab_with_a_token_and_stops_on_ctrl_c(tmp_path, args=()):
    port = free_port()
    env = dict(os.environ, COURSE_PORT=str(port), JUPYTER_RUNTIME_DIR=str(tmp_path), JUPYTER_CONFIG_DIR=str(tmp_path))
    proc = subprocess.Popen([str(ROOT / "course"), "open", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url, deadline, seen = None, time.monotonic() + 60, []
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(rf"(http://127\.0\.0\.1:{port}/lab\?token=[0-9a-f]+)", line)
            url = found.group(1) if found else None
        assert url, "no URL with a token printed:\n" + "".join(seen[-20:])
        # the URL is printed a moment before the socket listens: poll it, as a browser would retry
        while True:
            try:
                with urllib.request.urlopen(url, timeout=10) as resp:
                    assert resp.status == 200 and b"JupyterLab" in resp.read()
                break
            except urllib.error.URLError as err:
                if isinstance(err, urllib.error.HTTPError) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        check_class_settings(url)
        locale = setting_defaults(url, "@jupyterlab/translation-extension:plugin")["locale"]
        assert locale == ("zh_CN" if "zh" in args else "default"), locale
        if "zh" in args:  # the language pack is installed, and the server serves it
            assert "zh_CN" in api(url, "/lab/api/translations")["data"]
            assert api(url, "/lab/api/translations/zh_CN")["data"], "no Chinese strings"
        try:  # without the token: refused or sent to login
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=10)
            raise AssertionError("the server answered without a token")
        except urllib.error.HTTPError as err:
            assert err.code in (401, 403)
        proc.send_signal(signal.SIGINT)  # Ctrl-C, once
        try:  # read what it says meanwhile: a full pipe would stall its shutdown
            said, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            said, _ = proc.communicate()
            raise AssertionError("still running 30 s after Ctrl-C; it said:\n" + said[-3000:]) from None
        assert proc.returncode == 0, f"exit {proc.returncode} after Ctrl-C; it said:\n{said[-3000:]}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
