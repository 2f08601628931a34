"""The demo's supervisor: Ctrl-C or SIGTERM stops everything cleanly; a child that
really dies is reported."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from iamportal import processes

ROOT = Path(__file__).resolve().parents[2]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def child(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])  # noqa: S603


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started = [subprocess.Popen(SLEEPER) for _ in range(2)]  # noqa: S603
    yield started
    processes.processes_stop(started, timeout=1)


def test_a_child_that_exits_on_its_own_is_reported(
    sleepers: list[subprocess.Popen[bytes]],
) -> None:
    failing = child("import sys, time; time.sleep(0.3); sys.exit(3)")
    children = [*sleepers, failing]

    with processes.StopRequest() as stop:
        exited = processes.processes_supervise(children, stop=stop, poll_seconds=0.05)

    assert exited is failing
    assert failing.returncode == 3
    assert all(sleeper.poll() is None for sleeper in sleepers)  # stopping them is the caller's


def test_a_stop_request_ends_the_wait_without_a_failure(
    sleepers: list[subprocess.Popen[bytes]],
) -> None:
    with processes.StopRequest() as stop:
        threading.Timer(0.2, stop.set).start()

        assert processes.processes_supervise(sleepers, stop=stop, poll_seconds=0.05) is None


def test_a_child_stopping_together_with_a_stop_request_is_no_failure() -> None:
    quick = child("import sys; sys.exit(0)")
    quick.wait()
    with processes.StopRequest() as stop:
        threading.Timer(0.05, stop.set).start()  # the signal arrives just after the child exits

        assert processes.processes_supervise([quick], stop=stop, poll_seconds=0.5) is None


def test_a_stop_request_wakes_a_wait_at_once() -> None:
    with processes.StopRequest() as stop:
        threading.Timer(0.05, stop.set).start()
        started = time.monotonic()

        assert stop.wait(30) is True
        assert time.monotonic() - started < 10
        assert stop.is_set()


# Signals keep arriving while the main thread waits on the stop request, as a
# Ctrl-C may land at any moment of the supervisor's wait.
SIGNALLED_WHILE_WAITING = """
import os, signal, threading, time
from iamportal import processes
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # what is left once the block ends
done = threading.Event()
def send():
    while not done.wait(0.003):
        os.kill(os.getpid(), signal.SIGTERM)
with processes.stop_requests() as stop:
    sender = threading.Thread(target=send)
    sender.start()
    try:
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            stop.wait(0)
    finally:
        done.set()
        sender.join()
print("stopped" if stop.is_set() else "not stopped", flush=True)
"""


def test_a_signal_landing_inside_the_wait_never_hangs_the_supervisor() -> None:
    # A handler that took a lock the interrupted wait held would block on it
    # for ever (then, signalled again, fail with RecursionError).
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", SIGNALLED_WHILE_WAITING],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout == "stopped\n"
    assert "Traceback" not in done.stderr


def test_stopping_kills_a_child_that_ignores_sigterm() -> None:
    stubborn = child(
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    time.sleep(0.5)  # let it install its handler
    processes.processes_stop([stubborn], timeout=0.5)
    assert stubborn.returncode == -signal.SIGKILL


# A stand-in for `manage.py demo`: the same supervisor, with sleepers for children.
SUPERVISOR = """
import subprocess, sys
from iamportal import processes
children = []
try:
    with processes.stop_requests() as stop:
        children = [subprocess.Popen([sys.executable, "-c", code]) for code in sys.argv[1:]]
        print(" ".join(str(c.pid) for c in children), flush=True)
        exited = processes.processes_supervise(children, stop=stop, poll_seconds=0.1)
    if exited is not None:
        sys.exit(f"stopped unexpectedly (exit status {exited.returncode})")
    print("stopped", flush=True)
finally:
    processes.processes_stop(children)
"""


def supervisor(*codes: str) -> tuple[subprocess.Popen[str], list[int]]:
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", SUPERVISOR, *codes],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    pids = [int(pid) for pid in proc.stdout.readline().split()]
    return proc, pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_every_child_and_exits_0(signum: int) -> None:
    sleep = "import time; time.sleep(60)"
    proc, pids = supervisor(sleep, sleep)

    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err
    assert not any(alive(pid) for pid in pids)


def test_a_child_dying_ends_the_supervisor_with_a_failure() -> None:
    proc, pids = supervisor("import time; time.sleep(60)", "import sys; sys.exit(4)")

    _out, err = proc.communicate(timeout=30)

    assert proc.returncode != 0
    assert "stopped unexpectedly (exit status 4)" in err
    assert not any(alive(pid) for pid in pids)


UNDER_MAKE = """
import subprocess, sys
from iamportal import processes
with processes.terminal_foreground(), processes.stop_requests() as stop:
    children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])]
    print("ready", flush=True)
    processes.processes_supervise(children, stop=stop, poll_seconds=0.1)
processes.processes_stop(children)
print("stopped", flush=True)
"""


def _read_until(fd: int, marker: bytes, deadline: float) -> bytes:
    """What the terminal printed until `marker`, its end, or `deadline`, whichever
    comes first: a hung child fails the test instead of hanging the suite."""
    seen = b""
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the terminal closed: every process on it has exited
            break
        if not chunk:
            break
        seen += chunk
    return seen


def _exit_status(pid: int, terminal: int, deadline: float) -> int | None:
    """The wait status of `pid`, or None when it has not exited by `deadline`;
    then everything on the terminal is killed, so that nothing is left behind."""
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    for group in (os.tcgetpgrp(terminal), pid):
        with suppress(OSError):
            os.killpg(group, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


@pytest.mark.skipif(not shutil.which("make"), reason="needs make")
def test_ctrl_c_at_the_terminal_ends_make_with_exit_status_0(tmp_path: Path) -> None:
    (tmp_path / "demo.py").write_text(UNDER_MAKE)
    (tmp_path / "Makefile").write_text(f"run:\n\t{sys.executable} demo.py\n")
    pid, terminal = pty.fork()
    if pid == 0:  # the child: make on a terminal of its own, as a person runs it
        os.chdir(tmp_path)
        os.environ["PYTHONPATH"] = str(ROOT)
        os.execvp("make", ["make", "--no-print-directory", "run"])  # noqa: S606, S607
    deadline = time.monotonic() + 30
    try:
        assert b"ready" in _read_until(terminal, b"ready", deadline)
        os.write(terminal, b"\x03")  # Ctrl-C
        output = _read_until(terminal, b"\x00never", deadline)
        status = _exit_status(pid, terminal, deadline)
    finally:
        os.close(terminal)
    assert status is not None, f"make did not exit after Ctrl-C; it printed {output!r}"
    assert b"stopped" in output
    assert b"Interrupt" not in output
    assert os.waitstatus_to_exitcode(status) == 0
