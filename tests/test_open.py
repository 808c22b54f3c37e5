"""The README's first command: `./course open` serves JupyterLab on 127.0.0.1 with a token,
prints its URL, answers /lab with 200, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_course_open_serves_lab_with_a_token_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = dict(os.environ, COURSE_PORT=str(port), JUPYTER_RUNTIME_DIR=str(tmp_path), JUPYTER_CONFIG_DIR=str(tmp_path))
    proc = subprocess.Popen([str(ROOT / "course"), "open"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
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
