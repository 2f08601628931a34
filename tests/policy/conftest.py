"""The policy package's tests need neither the database nor the embedded AWS.

The autouse fixtures of tests/conftest.py start moto and reset Django's
cache, the access index and the task queue for every test: here they are
replaced by one that refuses any network connection, so a test that reached
for AWS would fail rather than be quietly served by moto. Without the `db`
fixture, pytest-django refuses database access already.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest


def _no_network(*args: Any, **kwargs: Any) -> NoReturn:
    raise RuntimeError("The policy package's tests must not open network connections.")


@pytest.fixture(autouse=True)
def embedded_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    yield


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    """Nothing here uses Django's cache."""


@pytest.fixture(autouse=True)
def fresh_access_index() -> None:
    """Nothing here uses the access index."""


@pytest.fixture(autouse=True)
def run_tasks_inline() -> None:
    """Nothing here enqueues tasks."""
