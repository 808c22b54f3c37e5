"""``python -m coursehost.lab [--lang zh|en] […]``: JupyterLab for ``./course open``, set up for a class.

What the course changes, all of it in folders of its own under ``.state/lab/`` (the machine's and
the learner's Jupyter configuration are left alone):

- **Nothing from the internet at start-up.** JupyterLab's news feed and its update check are
  off (``@jupyterlab/apputils-extension:notification``: ``fetchNews`` ``"false"``,
  ``checkForUpdates`` false, so no "Would you like to get notified about official Jupyter news?"
  prompt either), and the extension manager is the read-only one (the PyPI one asks PyPI about
  the installed extensions). These are *defaults* (an ``overrides.json`` in a settings folder of
  the course's, ``LabApp.app_settings_dir``): a learner's own choice in the Settings menu still wins.
  jupyterlab/jupyterlab#13721 and the schema of the notification plugin say what each one fetches.
- **The course's notebooks open trusted.** Each ``notebooks/*.ipynb`` is signed at start into
  the course's own notary database (``NotebookNotary.db_file``/``secret_file``), so their saved
  outputs (HTML tables, pictures, widgets) show as they were made, as for a notebook one ran.
- **The learner's language.** ``--lang zh`` opens the Simplified Chinese interface (the
  ``jupyterlab-language-pack-zh-cn`` of requirements.txt), ``--lang en`` English. Without it,
  JupyterLab's own default holds: the server's locale (``LANG=zh_CN.UTF-8`` gives Chinese).
  JupyterLab does not follow the browser's language (jupyterlab/jupyterlab#13835, open): the
  server translates the settings, so the language is the server's choice.

Ctrl-C: jupyter_server installs a SIGINT handler only when its stdin is a terminal. Started any
other way (a script, a service, a test, ``nohup``), a Ctrl-C is Python's plain
``KeyboardInterrupt``, and when it lands inside a callback the interpreter prints "Exception
ignored" and the server keeps running. Here SIGINT asks the server to stop the way its own SIGTERM
handler does, so one Ctrl-C always stops it; on a terminal, jupyter_server's handler takes over as
usual (the course passes ``answer_yes``, so it stops without asking).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("COURSE_STATE_DIR", ROOT / ".state"))
NOTEBOOKS = ROOT / "notebooks"

#: ``--lang`` values and the JupyterLab locale each one selects ("default": the server's locale).
LOCALES = {"zh": "zh_CN", "zh_CN": "zh_CN", "zh-CN": "zh_CN", "zh-cn": "zh_CN", "en": "en", "default": "default"}

#: The settings a class needs, as defaults of JupyterLab's plugins (see the module docstring).
CLASS_SETTINGS: dict[str, dict] = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}

#: How ``./course open`` serves JupyterLab: loopback only, a token, the notebooks folder, no
#: browser started on the server's machine, and a Ctrl-C that stops without asking.
SERVER_ARGS = ["--no-browser", "--ip=127.0.0.1", f"--ServerApp.root_dir={NOTEBOOKS}", "--allow-root",
               "--ServerApp.answer_yes=True", "--LabApp.extension_manager=readonly"]


class BadLang(ValueError):
    """``--lang`` named a language the course has no JupyterLab interface for."""


def lab_dir() -> Path:
    return STATE_DIR / "lab"


def locale_of(lang: str) -> str:
    """The JupyterLab locale of a ``--lang`` value; :class:`BadLang` (one sentence) if none."""
    try:
        return LOCALES[lang]
    except KeyError:
        raise BadLang(f"--lang {lang} is not a language of the course: use --lang zh (简体中文) or --lang en") from None


def _write(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (another ``./course open`` may be reading it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(text)
    os.replace(f.name, path)


def settings_dir(locale: str = "default") -> Path:
    """The settings folder (``LabApp.app_settings_dir``) for ``locale``, its ``overrides.json``
    written: :data:`CLASS_SETTINGS`, plus the interface language unless ``locale`` is "default".
    One folder per locale, so two servers in two languages never share one file."""
    overrides = {plugin: dict(values) for plugin, values in CLASS_SETTINGS.items()}
    if locale != "default":
        overrides["@jupyterlab/translation-extension:plugin"] = {"locale": locale}
    folder = lab_dir() / f"settings-{locale}"
    _write(folder / "overrides.json", json.dumps(overrides, indent=1, sort_keys=True) + "\n")
    return folder


def notary_files() -> tuple[Path, Path]:
    """The course's notary database and its secret (made once, atomically: two servers starting
    together must not sign with two different secrets)."""
    folder = lab_dir()
    folder.mkdir(parents=True, exist_ok=True)
    secret = folder / "notebook_secret"
    if not secret.exists():
        with tempfile.NamedTemporaryFile("wb", dir=folder, prefix=".secret.", delete=False) as f:
            f.write(new_secret())
        os.chmod(f.name, 0o600)
        try:
            os.link(f.name, secret)  # fails if another one got there first: theirs is kept
        except FileExistsError:
            pass
        finally:
            os.unlink(f.name)
    return folder / "nbsignatures.db", secret


def new_secret() -> bytes:
    """A new notary secret: 1024 random bytes, hex-encoded."""
    return os.urandom(1024).hex().encode()


def sign(notary, paths: list[Path]) -> list[Path]:
    """Sign each notebook of ``paths`` into ``notary`` (an ``nbformat.sign.NotebookNotary``) unless
    it is signed already; returns those now trusted (one that cannot be read is left out)."""
    import nbformat

    signed = []
    for path in paths:
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001 - a notebook being written by its author right now
            continue
        if not notary.check_signature(nb):
            notary.sign(nb)
        signed.append(path)
    return signed


def notary_args() -> list[str]:
    db, secret = notary_files()
    return [f"--NotebookNotary.db_file={db}", f"--NotebookNotary.secret_file={secret}"]


def trust_notebooks(folder: Path = NOTEBOOKS) -> list[Path]:
    """Sign every notebook in ``folder`` into the course's notary database; returns those signed.

    A notebook is trusted when its signature (an HMAC of its content with the secret) is in the
    database, as ``jupyter trust`` records it (nbformat.sign). A copy with the same content is
    trusted too; a learner's edited and saved notebook is signed again by the server on save.
    """
    from nbformat.sign import NotebookNotary

    db, secret = notary_files()
    return sign(NotebookNotary(db_file=str(db), secret_file=str(secret)), sorted(folder.glob("*.ipynb")))


def server_argv(argv: list[str]) -> tuple[list[str], str]:
    """LabApp's argv for ``argv`` (the course's ``--lang`` taken out, the class settings put in)
    and the locale chosen; :class:`BadLang` for an unknown ``--lang``. The caller's own Jupyter
    options win: one of ours that the caller gives too is left out."""
    lang, rest, args = "default", [], iter(argv)
    for arg in args:
        if arg == "--lang":
            lang = next(args, "")
        elif arg.startswith("--lang="):
            lang = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    locale = locale_of(lang)
    ours = [*SERVER_ARGS, f"--LabApp.app_settings_dir={settings_dir(locale)}", *notary_args()]
    given = {arg.split("=", 1)[0] for arg in rest}  # traitlets refuses an option given twice
    return [*(arg for arg in ours if arg.split("=", 1)[0] not in given), *rest], locale


def _stop(signum: int, frame: FrameType | None) -> None:
    from jupyter_server.serverapp import ServerApp

    if not ServerApp.initialized():  # still starting: nothing to stop gracefully yet
        raise KeyboardInterrupt
    ServerApp.instance().stop(from_signal=True)


def main(argv: list[str] | None = None) -> None:
    try:
        lab_argv, _locale = server_argv(sys.argv[1:] if argv is None else argv)
    except BadLang as err:
        print(f"[course] {err}", file=sys.stderr)
        raise SystemExit(2) from None
    trust_notebooks()
    from jupyterlab.labapp import LabApp

    signal.signal(signal.SIGINT, _stop)
    LabApp.launch_instance(argv=lab_argv)


if __name__ == "__main__":
    main()
