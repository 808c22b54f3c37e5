"""Notebook 03: the attach helper (framing, markers, detaching, bad input), the exercise checks
(fail on wrong answers, pass on the solutions) and every CLI form of the cheat sheet."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from docker.models.containers import ExecResult

from helpers import BASE_IMAGE, BadInput, CourseError
from helpers.attach import AttachClosed, AttachTimeout, attach
from helpers.checks import nb03
from helpers.execs import exec_output
from tests.cheatsheet import docker_cli, run_cli, sheet_commands


@pytest.fixture
def pulled(client):
    client.images.pull("busybox", tag="1.35")


def _sh(client, run, what, **kwargs):
    return client.containers.run(BASE_IMAGE, "sh", name=run.name(what), labels=run.labels, detach=True, **kwargs)


def test_attach_separates_stdout_and_stderr(client, run, pulled):
    c = _sh(client, run, "sep", stdin_open=True)
    with attach(c, timeout=5) as session:
        assert not session.tty
        session.send("echo one; echo two >&2; echo three")
        assert session.read_until("three") == "one\nthree"
        assert session.read_until("two", stream="stderr") == "two"
        assert session.stderr == "two\n"
    c.reload()
    assert c.status == "running"  # -d -i: hanging up leaves STDIN open


def test_attach_with_terminal_and_detach_keys(client, run, pulled):
    c = _sh(client, run, "term", stdin_open=True, tty=True)
    with attach(c, timeout=5) as session:
        assert session.tty
        session.send("echo A''B")
        assert session.read_until("AB\r\n").endswith("AB\r\n")
        with pytest.raises(BadInput):
            session.read_until("x", stream="stderr")
        session.detach()
    c.reload()
    assert c.status == "running"


def test_attach_timeout_and_closed(client, run, pulled):
    c = _sh(client, run, "slow", stdin_open=True)
    with attach(c, timeout=0.5) as session:
        with pytest.raises(AttachTimeout, match="did not print"):
            session.read_until("never")
        session.send("exit 0")
        with pytest.raises(AttachClosed):
            session.read_until("never")
    assert c.wait()["StatusCode"] == 0


def test_attach_bad_input(client, run, pulled):
    created = client.containers.create(BASE_IMAGE, "sh", name=run.name("idle"), labels=run.labels)
    with pytest.raises(BadInput, match="start it first"):
        attach(created)
    with pytest.raises(BadInput, match="Container"):
        attach("not a container")
    no_stdin = client.containers.run(BASE_IMAGE, ["sleep", "60"], name=run.name("nostdin"), labels=run.labels, detach=True)
    with pytest.raises(BadInput, match="stdin_open"):
        attach(no_stdin)
    with pytest.raises(BadInput, match="timeout"):
        attach(no_stdin, stdin=False, timeout=0)
    with attach(no_stdin, stdin=False) as session:
        with pytest.raises(BadInput, match="-t"):
            session.detach()
        with pytest.raises(BadInput):
            session.send(3)  # type: ignore[arg-type]
        with pytest.raises(BadInput):
            session.read_until("")
    assert issubclass(AttachTimeout, CourseError)


def test_check_interactive(client, run, pulled):
    assert "no container" in nb03.check_interactive(client, run).message
    client.containers.create(BASE_IMAGE, "sh", stdin_open=True, name=run.name("mysh"), labels=run.labels)
    assert "-t" in nb03.check_interactive(client, run).message
    client.containers.get(run.name("mysh")).remove()
    client.containers.create(BASE_IMAGE, "sh", tty=True, stdin_open=True, name=run.name("mysh"))
    assert "labels" in nb03.check_interactive(client, run).message
    client.containers.get(run.name("mysh")).remove()
    client.containers.create(BASE_IMAGE, "sh", tty=True, stdin_open=True, name=run.name("mysh"), labels=run.labels)
    assert nb03.check_interactive(client, run)


def test_check_main_pid_file(client, run, pulled):
    mysh = client.containers.create(BASE_IMAGE, "sh", tty=True, stdin_open=True, name=run.name("mysh"), labels=run.labels)
    assert "start it" in nb03.check_main_pid_file(client, run).message
    mysh.start()
    assert "does not exist" in nb03.check_main_pid_file(client, run).message
    mysh.exec_run(["sh", "-c", "echo $$ > /tmp/pid.txt"])               # the wrong way: a new process
    assert "new process" in nb03.check_main_pid_file(client, run).message
    with attach(mysh) as session:                                       # the solution
        session.send("echo $$ > /tmp/pid.txt; echo WRIT''TEN")
        session.read_until("WRITTEN\r\n")
    assert nb03.check_main_pid_file(client, run)


def test_check_exec_result(client, run, pulled):
    box = client.containers.run(BASE_IMAGE, ["sleep", "60"], name=run.name("box"), labels=run.labels, detach=True)
    cmd = ["sh", "-c", "id -un; pwd; echo $COLOR"]
    assert not nb03.check_exec_result(None)
    assert "user" in nb03.check_exec_result(exec_output(box, cmd)).message
    assert "workdir" in nb03.check_exec_result(exec_output(box, cmd, user="nobody")).message
    assert "environment" in nb03.check_exec_result(exec_output(box, cmd, user="nobody", workdir="/tmp")).message
    assert "exit code" in nb03.check_exec_result(box.exec_run(["false"])).message
    assert "demux" in nb03.check_exec_result(exec_output(box, cmd, demux=True)).message
    assert "printed nothing" in nb03.check_exec_result(box.exec_run(["true"])).message   # prints nothing, truly
    lost = ExecResult(0, b"")  # what a busy dockerd can hand back for a short exec (moby#27289)
    assert "lost its output" in nb03.check_exec_result(lost).message
    assert nb03.check_exec_result(exec_output(box, cmd, user="nobody", workdir="/tmp", environment={"COLOR": "blue"}))


def test_check_ended_by_exit(client, run, pulled):
    mysh = _sh(client, run, "mysh", stdin_open=True, tty=True)
    assert "still running" in nb03.check_ended_by_exit(client, run).message
    mysh.kill()
    mysh.wait()
    assert "signal" in nb03.check_ended_by_exit(client, run).message
    mysh.remove()
    for code, ok in ((3, False), (7, True)):
        mysh = _sh(client, run, "mysh", stdin_open=True, tty=True)
        with attach(mysh) as session:
            session.send(f"exit {code}")
            mysh.wait()
        assert bool(nb03.check_ended_by_exit(client, run)) is ok
        if not ok:
            mysh.remove()


def test_cheat_sheet_runs(client, run, pulled):
    commands = sheet_commands("03_inside_containers.ipynb")
    assert len(commands) >= 10
    subs = {"NAME": run.name("sheet"), "TALK": run.name("talk")}
    label = f"--label org.dockercourse.run={run.id}"
    outputs = {}
    commands.sort(key=lambda c: c.startswith("docker attach"))  # attach last: it ends TALK
    for command in commands:
        for verb in ("docker create", "docker run -d", "docker run --rm"):
            if command.startswith(verb):
                command = command.replace(verb, f"{verb} {label}", 1)
        if command.startswith("docker attach"):  # type to the main shell, read its answer, then exit
            argv = shlex.split(command.replace("TALK", subs["TALK"]))
            with subprocess.Popen([docker_cli(), *argv[1:]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True) as attached:
                attached.stdin.write("echo attached to pid $$\n")
                attached.stdin.flush()
                assert attached.stdout.readline() == "attached to pid 1\n"   # blocks until the answer
                attached.stdin.write("exit 5\n")
                attached.stdin.close()
                assert attached.wait(timeout=30) == 5
            continue
        outputs[command.split(" ", 2)[1] + " " + command.split()[-1]] = run_cli(command, subs).stdout
    assert any(out.strip() == "/dev/pts/0" for out in outputs.values())
    assert any(out.split() == ["true", "true"] for out in outputs.values())
    assert any(out.split() == ["nobody", "/tmp", "blue"] for out in outputs.values())
    assert client.containers.get(run.name("talk")).wait()["StatusCode"] == 5


def test_wait_for_process_sees_a_detached_exec_and_says_when_there_is_none(client, run, pulled):
    from helpers.lifecycle import wait_for_process

    box = client.containers.run(BASE_IMAGE, ["sleep", "600"], name=run.name("box"), labels=run.labels, detach=True)
    box.exec_run(["sleep", "301"], detach=True)
    wait_for_process(box, "sleep 301")
    assert any(p[-1] == "sleep 301" for p in box.top()["Processes"])
    with pytest.raises(CourseError, match="no process 'sleep 302'"):
        wait_for_process(box, "sleep 302", timeout=0.5)


# --- helpers.execs ----------------------------------------------------------------------------

class _Losing:
    """A container whose daemon loses the output of the first ``losses`` execs (moby#27289)."""

    name = "losing"

    def __init__(self, losses: int, output=b"hello\n") -> None:
        self.losses, self.output, self.calls = losses, output, 0

    def exec_run(self, cmd, **kwargs):
        self.calls += 1
        if self.calls <= self.losses:
            return ExecResult(0, (None, None) if kwargs.get("demux") else b"")
        return ExecResult(0, self.output)


def test_exec_output_asks_again_only_while_the_output_is_empty(client, run, pulled):
    box = client.containers.run(BASE_IMAGE, ["sleep", "60"], name=run.name("box"), labels=run.labels, detach=True)
    done = exec_output(box, ["sh", "-c", "id -un; echo $COLOR"], user="nobody", environment={"COLOR": "blue"})
    assert (done.exit_code, done.output) == (0, b"nobody\nblue\n")              # exec_run's kwargs pass through
    assert exec_output(box, ["sh", "-c", "echo err >&2"], demux=True).output == (None, b"err\n")
    assert exec_output(box, ["no-such-program"]).exit_code in (126, 127)      # the daemon's message is output
    lost = _Losing(losses=2)
    assert exec_output(lost, ["echo", "hello"]).output == b"hello\n" and lost.calls == 3
    lost = _Losing(losses=1, output=(b"x\n", None))
    assert exec_output(lost, ["echo", "x"], demux=True).output == (b"x\n", None) and lost.calls == 2
    lost = _Losing(losses=5)
    with pytest.raises(CourseError, match="printed nothing .* 3 times"):
        exec_output(lost, ["echo", "hello"])
    assert lost.calls == 3
    with pytest.raises(CourseError, match="printed nothing"):
        exec_output(box, ["true"], attempts=2)                               # a command that prints nothing
    with pytest.raises(BadInput, match="docker-py Container"):
        exec_output("box", ["true"])
    with pytest.raises(BadInput, match="detach"):
        exec_output(box, ["sleep", "1"], detach=True)
    with pytest.raises(BadInput, match="attempts"):
        exec_output(box, ["true"], attempts=0)
