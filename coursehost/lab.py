"""``python -m coursehost.lab …``: JupyterLab for ``./course open``, stopped cleanly by one Ctrl-C.

jupyter_server installs a SIGINT handler only when its stdin is a terminal. Started any other
way (a script, a service, a test, ``nohup``), a Ctrl-C is Python's plain ``KeyboardInterrupt``,
and when it lands inside a callback the interpreter prints "Exception ignored" and the server
keeps running. Here SIGINT asks the server to stop the way its own SIGTERM handler does, so one
Ctrl-C always stops it; on a terminal, jupyter_server's handler takes over as usual (the course
passes ``answer_yes``, so it stops without asking).
"""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _stop(signum: int, frame: FrameType | None) -> None:
    from jupyter_server.serverapp import ServerApp

    if not ServerApp.initialized():  # still starting: nothing to stop gracefully yet
        raise KeyboardInterrupt
    ServerApp.instance().stop(from_signal=True)


def main(argv: list[str] | None = None) -> None:
    from jupyterlab.labapp import LabApp

    signal.signal(signal.SIGINT, _stop)
    LabApp.launch_instance(argv=sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
