"""The database connection's health check: run at most once per interval on a
connection, and a connection the server closed is replaced, not failed on."""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from django.db import connection, connections

from iamportal.wsgi import application

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="iamportal's PostgreSQL backend"),
    pytest.mark.django_db(transaction=True),
]


def _serve() -> dict[str, Any]:
    """GET /healthz as a WSGI server hands it to iamportal: the whole request,
    with the signals that start and end it. The page reads the database."""
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/healthz",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }

    def start_response(
        status: str, headers: list[tuple[str, str]], exc_info: Any = None, /
    ) -> Callable[[bytes], object]:
        return sys.stdout.buffer.write  # WSGI's write(); Django never calls it

    response = application(environ, start_response)
    try:
        return dict(json.loads(b"".join(response)))
    finally:
        response.close()


@pytest.fixture
def checks() -> Any:
    """Counts the health checks Django runs (a SELECT 1 each)."""
    wrapper = connections["default"]
    with mock.patch.object(wrapper, "is_usable", wraps=wrapper.is_usable) as counted:
        yield counted


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _idle_for(seconds: float) -> None:
    connections["default"].checked_at = time.monotonic() - seconds  # type: ignore[attr-defined]


def test_a_connection_checked_within_the_interval_is_not_checked_again(checks: Any) -> None:
    _serve()
    _idle_for(0)
    checks.reset_mock()

    answers = [_serve() for _ in range(3)]

    assert [answer["database"] for answer in answers] == ["ok", "ok", "ok"]
    assert checks.call_count == 0


def test_a_connection_idle_past_the_interval_is_checked_once(checks: Any) -> None:
    _serve()
    _idle_for(1.0)
    checks.reset_mock()

    assert _serve()["database"] == "ok"
    assert _serve()["database"] == "ok"

    assert checks.call_count == 1


def test_an_interval_of_zero_checks_before_every_request(checks: Any, settings: Any) -> None:
    settings.DATABASE_HEALTH_CHECK_INTERVAL = 0
    _serve()
    checks.reset_mock()

    for _ in range(3):
        assert _serve()["database"] == "ok"

    assert checks.call_count == 3


def _terminated_by_the_server() -> int:
    """The server ends this process's connection, as a restart or an idle
    timeout would; returns the connection's backend pid."""
    pid = _backend_pid()
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    return pid


def test_a_connection_the_server_closed_while_idle_is_replaced_unnoticed() -> None:
    _serve()
    old = _terminated_by_the_server()
    _idle_for(1.0)

    assert _serve()["database"] == "ok"
    assert _backend_pid() != old


def test_within_the_interval_a_closed_connection_fails_one_request_only() -> None:
    _serve()
    old = _terminated_by_the_server()
    _idle_for(0)

    # Not checked: this request meets the closed connection; Django closes it
    # at the end of the request, and the next one opens a new connection.
    assert _serve()["database"] == "fail"
    assert _serve()["database"] == "ok"
    assert _backend_pid() != old
