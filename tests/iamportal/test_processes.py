"""The demo's supervisor: Ctrl-C or SIGTERM stops everything cleanly; a child that
really dies is reported."""

from __future__ import annotations

import os
import pty
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
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

    exited = processes.processes_supervise(children, stop=threading.Event(), poll_seconds=0.05)

    assert exited is failing
    assert failing.returncode == 3
    assert all(sleeper.poll() is None for sleeper in sleepers)  # stopping them is the caller's


def test_a_stop_request_ends_the_wait_without_a_failure(
    sleepers: list[subprocess.Popen[bytes]],
) -> None:
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()

    assert processes.processes_supervise(sleepers, stop=stop, poll_seconds=0.05) is None


def test_a_child_stopping_together_with_a_stop_request_is_no_failure() -> None:
    stop = threading.Event()
    quick = child("import sys; sys.exit(0)")
    quick.wait()
    threading.Timer(0.05, stop.set).start()  # the signal arrives just after the child exits

    assert processes.processes_supervise([quick], stop=stop, poll_seconds=0.5) is None


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
    seen = b""
    while marker not in seen and time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the terminal closed: every process on it has exited
            break
        if not chunk:
            break
        seen += chunk
    return seen


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
        _pid, status = os.waitpid(pid, 0)
    finally:
        os.close(terminal)
    assert b"stopped" in output
    assert b"Interrupt" not in output
    assert os.waitstatus_to_exitcode(status) == 0
