"""Run a few child processes together until one of them stops or we are told to stop.

Used by `manage.py demo` for its workers and web server. Knows nothing of Django,
so it can be tested with any child processes.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """A request to stop that a signal handler may make.

    Python runs a signal handler in the main thread, between two steps of
    whatever it was doing, so the handler must take no lock the main thread
    may hold. `threading.Event` does: a Ctrl-C that lands while the main thread
    is inside `Event.wait` (re-taking the event's lock after a timeout) blocks
    the handler's `Event.set` on that lock forever, and the demo hangs. Here
    `set` only records the request and writes a byte to a pipe, which wakes a
    `wait` at once; it may be called from any thread."""

    def __init__(self) -> None:
        self._requested = False
        self._wake_read, self._wake_write = os.pipe()
        for fd in (self._wake_read, self._wake_write):
            os.set_blocking(fd, False)

    def set(self) -> None:
        self._requested = True
        with suppress(OSError):  # the pipe is full (woken already) or closed
            os.write(self._wake_write, b"\0")

    def is_set(self) -> bool:
        return self._requested

    def wait(self, timeout: float) -> bool:
        """Whether a stop was requested, waiting up to `timeout` seconds for one."""
        if not self._requested:
            select.select([self._wake_read], [], [], timeout)
        return self._requested

    def close(self) -> None:
        for fd in (self._wake_read, self._wake_write):
            with suppress(OSError):
                os.close(fd)

    def __enter__(self) -> StopRequest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """A stop requested by Ctrl-C (SIGINT) or SIGTERM while the block runs, instead
    of the KeyboardInterrupt or the sudden death those would cause."""
    with StopRequest() as stop:

        def request_stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = {signum: signal.signal(signum, request_stop) for signum in STOP_SIGNALS}
        try:
            yield stop
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


@contextmanager
def terminal_foreground() -> Iterator[None]:
    """Take the terminal in a process group of our own (children included) while
    the block runs, and give it back after.

    Ctrl-C signals the terminal's whole foreground process group, `make` included,
    which reports an interruption of its own ("*** Interrupt") and fails whatever
    the demo does about it. Moved to its own group, as a shell's job control would,
    the demo alone hears Ctrl-C and its exit status is make's. Without a terminal,
    or started in the background, nothing changes."""
    try:
        tty = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        yield
        return
    try:
        previous = os.getpgrp()
        if os.tcgetpgrp(tty) != previous:
            yield
            return
        os.setpgid(0, 0)
        _foreground(tty, os.getpgrp())
        try:
            yield
        finally:
            with suppress(OSError):  # make's group gone: the shell takes the terminal back
                _foreground(tty, previous)
    finally:
        os.close(tty)


def _foreground(tty: int, group: int) -> None:
    # A process group that is not in the foreground gets SIGTTOU (stopped) when it
    # changes the foreground group: ignored for the moment of the change.
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(tty, group)
    finally:
        signal.signal(signal.SIGTTOU, previous)


def processes_supervise(
    children: Sequence[subprocess.Popen[bytes]],
    *,
    stop: StopRequest,
    poll_seconds: float = 0.5,
) -> subprocess.Popen[bytes] | None:
    """Wait until a child exits (returned) or a stop is requested (None). Stopping
    the others is left to the caller (`processes_stop`)."""
    while not stop.is_set():
        exited = next((child for child in children if child.poll() is not None), None)
        if exited is not None:
            # Ctrl-C reaches the whole process group at once: a child that stops
            # because of it is not a failure, even when it is quicker than we are.
            return None if stop.wait(poll_seconds) else exited
        stop.wait(poll_seconds)
    return None


def processes_stop(children: Sequence[subprocess.Popen[bytes]], *, timeout: float = 10) -> None:
    """Ask every child to stop (SIGTERM), then kill those still running after `timeout`."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
