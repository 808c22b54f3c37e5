"""Talk to a container's main process the way ``docker attach`` does, from Python.

``container.attach_socket()`` hands back a raw, bidirectional socket: what you write goes to the
main process's STDIN, what it prints comes back. Two details make it awkward in a notebook, and
this module handles both:

* **Framing.** Without a terminal (``tty=False``) the daemon multiplexes STDOUT and STDERR on the
  one socket: each chunk comes with an 8-byte header (stream number 1 or 2, then the length). With
  a terminal (``tty=True``) there is one plain stream, exactly what a terminal would show (echoed
  input, prompts, ``\\r\\n`` line ends).
* **Waiting.** Reading blocks until the process prints; :meth:`Attached.read_until` reads until a
  marker appears, with a deadline, so a cell never hangs and never sleeps.

>>> with attach(container) as session:        # doctest: +SKIP
...     session.send("echo hello")
...     session.read_until("hello")
'hello\\n'
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

from .errors import BadInput, CourseError

#: ctrl-p ctrl-q: the default detach sequence of ``docker attach`` (a terminal's bytes 0x10 0x11).
DETACH_KEYS = b"\x10\x11"


class AttachTimeout(CourseError):
    """What was waited for did not arrive on the attach connection in time."""


class AttachClosed(CourseError):
    """The daemon closed the attach connection (the main process ended, or we detached)."""


class Attached:
    """One open attach connection to a running container's main process.

    ``stdout`` and ``stderr`` accumulate everything read so far (with a terminal, all output is
    ``stdout``); :meth:`read_until` returns the new part up to and including a marker.
    """

    def __init__(self, container: Any, stdin: bool = True, timeout: float = 10.0) -> None:
        if not hasattr(container, "attach_socket"):
            raise BadInput(f"attach() needs a docker-py Container, not {type(container).__name__}: "
                           "get one with client.containers.get(name).")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise BadInput(f"timeout must be a positive number of seconds, not {timeout!r}.")
        container.reload()
        config = container.attrs["Config"]
        if container.status != "running":
            raise BadInput(f"{container.name} is {container.status}: start it first (container.start()), "
                           "since only a running process can be attached to.")
        if stdin and not config.get("OpenStdin"):
            raise BadInput(f"{container.name} was created without -i (stdin_open=True), so its STDIN is "
                           "closed: create it with stdin_open=True, or attach with stdin=False to only read.")
        self.container = container
        self.tty: bool = bool(config.get("Tty"))
        self.timeout = float(timeout)
        params = {"stream": 1, "stdout": 1, "stderr": 1, "stdin": 1 if stdin else 0}
        self._io = container.attach_socket(params=params)
        # docker-py gives a SocketIO wrapping the socket (unix, tcp) or the TLS socket itself (https)
        self._sock: socket.socket = getattr(self._io, "_sock", self._io)
        self._pending = b""  # bytes received but not yet parsed into frames
        self._new = {1: b"", 2: b""}  # parsed, not yet returned by read_until
        self._all = {1: b"", 2: b""}  # everything received, per stream
        self.closed = False

    @property
    def stdout(self) -> str:
        """Everything the main process printed on STDOUT since we attached (all output, with -t)."""
        return self._all[1].decode(errors="replace")

    @property
    def stderr(self) -> str:
        """Everything the main process printed on STDERR since we attached (nothing, with -t)."""
        return self._all[2].decode(errors="replace")

    # -- writing ---------------------------------------------------------------------------------
    def send(self, line: str | bytes, newline: bool = True) -> None:
        """Write to the main process's STDIN (a newline is added, as pressing Enter would)."""
        if not isinstance(line, (str, bytes)):
            raise BadInput(f"send() takes text (str or bytes), not {type(line).__name__}.")
        data = line.encode() if isinstance(line, str) else line
        self._sock.sendall(data + (b"\n" if newline else b""))

    # -- reading ---------------------------------------------------------------------------------
    def _receive(self, deadline: float) -> bool:
        """Read once from the socket; False when the daemon closed it."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout
        self._sock.settimeout(left)
        chunk = self._sock.recv(65536)
        if not chunk:
            self.closed = True
            return False
        if self.tty:
            self._add(1, chunk)
            return True
        self._pending += chunk
        while len(self._pending) >= 8:  # header: stream (1 byte), 3 zero bytes, length (big-endian)
            stream, length = struct.unpack(">BxxxL", self._pending[:8])
            if len(self._pending) < 8 + length:
                break
            self._add(2 if stream == 2 else 1, self._pending[8:8 + length])
            self._pending = self._pending[8 + length:]
        return True

    def _add(self, number: int, data: bytes) -> None:
        self._new[number] += data
        self._all[number] += data

    def read_until(self, marker: str, stream: str = "stdout") -> str:
        """Read until ``marker`` appears on ``stream`` ("stdout" or "stderr"); return the new text
        of that stream up to and including the marker (the rest stays for the next call)."""
        if stream not in ("stdout", "stderr"):
            raise BadInput(f"stream is 'stdout' or 'stderr', not {stream!r}.")
        if stream == "stderr" and self.tty:
            raise BadInput("with a terminal (tty=True) all output arrives on stdout: read stdout instead.")
        if not isinstance(marker, str) or not marker:
            raise BadInput("marker must be a non-empty str that the process will print.")
        number, want = (1 if stream == "stdout" else 2), marker.encode()
        deadline = time.monotonic() + self.timeout
        while want not in self._new[number]:
            try:
                if not self._receive(deadline):
                    raise AttachClosed(f"{self.container.name} closed the connection before printing "
                                       f"{marker!r}: its main process ended or was detached.")
            except socket.timeout:
                raise AttachTimeout(f"{self.container.name} did not print {marker!r} within "
                                    f"{self.timeout:g} s: check the command you sent.") from None
        end = self._new[number].index(want) + len(want)
        text, self._new[number] = self._new[number][:end], self._new[number][end:]
        return text.decode(errors="replace")

    def read_to_end(self) -> str:
        """Read until the daemon closes the connection; return the stdout text that came."""
        deadline = time.monotonic() + self.timeout
        try:
            while self._receive(deadline):
                pass
        except socket.timeout:
            raise AttachTimeout(f"{self.container.name} kept the connection open for {self.timeout:g} s: "
                                "its main process is still running.") from None
        text, self._new[1] = self._new[1].decode(errors="replace"), b""
        return text

    # -- leaving ---------------------------------------------------------------------------------
    def detach(self) -> None:
        """Send the detach keys (ctrl-p ctrl-q) and wait until the daemon lets go of us.

        Only a container with a terminal (``-t``) reads the keys; without one they would be
        ordinary input, so this raises instead."""
        if not self.tty:
            raise BadInput(f"{self.container.name} has no terminal (tty=False): the detach keys only work "
                           "with -t; call close() to hang up instead.")
        self.send(DETACH_KEYS, newline=False)
        try:
            self.read_to_end()
        finally:
            self.close()

    def close(self) -> None:
        """Hang up: close our end of the connection (what closing a terminal does)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the daemon
        self._sock.close()
        self._io.close()
        self.closed = True

    def __enter__(self) -> "Attached":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def attach(container: Any, stdin: bool = True, timeout: float = 10.0) -> Attached:
    """Attach to a running container's main process (``docker attach``); see :class:`Attached`."""
    return Attached(container, stdin=stdin, timeout=timeout)
