"""The shared cast, the embedded AWS a test gets when it touches AWS, and the
fixtures several test packages share.

No test may reach a real network: fake AWS credentials, no AWS config files,
and every boto3 call answered by moto. moto starts at a test's first AWS call
(and stops when the test ends), so the many tests that never touch AWS do not
pay for it. Builders the tests share are in tests/factories.py.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import logging.config
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any
from urllib.parse import parse_qs

import pytest
from botocore.client import BaseClient
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from moto import mock_aws
from moto.kms import models as moto_kms

from brokering import federation_demo
from iamportal import aws
from tests.factories import Federation, Inventory, forget_admin_sessions, inventory, make_user

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_DEFAULT_REGION": "us-east-1",
        # iamportal reads no EC2 images, but moto builds its catalogue of them
        # (thousands of images, volumes and snapshots) for every account and region
        # whose EC2 it touches, as the Redshift read does: seconds per test.
        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    }
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)


class _EmbeddedAws:
    """moto, started by the first AWS call of a test (from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mock: Any = None

    def start(self) -> None:
        with self._lock:
            if self._mock is None:
                mock = mock_aws()
                mock.start()
                self._mock = mock

    def stop(self) -> None:
        with self._lock:
            if self._mock is not None:
                self._mock.stop()
                self._mock = None


_embedded_aws = _EmbeddedAws()

# moto makes an RSA key pair (tens of milliseconds) for every KMS key, even a
# symmetric one, as the demo organisation creates; iamportal never uses a key's
# material, so one pair per key spec serves the whole run.
moto_kms.generate_private_key = functools.cache(moto_kms.generate_private_key)
_make_api_call = BaseClient._make_api_call


def _call_the_embedded_aws(self: BaseClient, operation_name: str, api_params: Any) -> Any:
    _embedded_aws.start()
    return _make_api_call(self, operation_name, api_params)


# Every boto3 call of the test run, whoever makes it, goes to moto.
BaseClient._make_api_call = _call_the_embedded_aws


# The longest tests (a browser's, the API fuzzer's) start first: run last, as the
# database tests' ordering would put the browser's, each keeps one worker busy
# while the others have nothing left to do.
_LONG = (
    "tests/e2e/test_tour.py",
    "tests/e2e/",
    "tests/test_api_fuzz.py",
    "tests/accounts/test_policies_page.py::test_an_export_of_50000",
)


def _start_rank(item: pytest.Item) -> int:
    return next((i for i, prefix in enumerate(_LONG) if item.nodeid.startswith(prefix)), len(_LONG))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_start_rank)


@pytest.fixture(autouse=True, scope="session")
def suite_settings() -> Iterator[None]:
    """Test passwords need no protection against guessing: hashing each with the
    production work factor would dominate the suite's run time. AWS is the
    embedded one, in one region, whatever the environment says."""
    from django.test import override_settings

    with override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        AWS_ENDPOINT_URL=None,
        AWS_REGION="us-east-1",
        IAMPORTAL_REGIONS=["us-east-1"],
        IAMPORTAL_EMBEDDED_AWS=True,
    ):
        yield


@pytest.fixture(autouse=True, scope="session")
def no_connection_left_behind(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """A connection a test's thread (a loopback server's, a race's) left open would
    keep PostgreSQL from dropping the test database at the end: closed first."""
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def embedded_aws() -> Iterator[None]:
    """Each test starts with no cached sessions; if it touched AWS, the embedded
    AWS it got is thrown away after it."""
    aws.forget_sessions()
    yield
    _embedded_aws.stop()
    aws.forget_sessions()
    forget_admin_sessions()


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    """Rate-limit counters live in the cache: each test starts with none."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def fresh_access_index() -> Iterator[None]:
    """The access index lives in process memory; each test has its own database."""
    from brokering.eligibility import forget_index

    forget_index()
    yield
    forget_index()


@pytest.fixture(autouse=True)
def run_tasks_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Enqueued tasks run in-process at commit, as a worker would run them."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def requester(db: None) -> User:
    return make_user("alice", "team-payments")


@pytest.fixture
def reviewer(db: None) -> User:
    return make_user("rita", "security-reviewers")


@pytest.fixture
def admin_user(db: None) -> User:
    return make_user("admin", "iamportal-admins")


@pytest.fixture
def superuser(db: None) -> User:
    return make_user("root", is_staff=True, is_superuser=True)


@pytest.fixture
def outsider(db: None) -> User:
    return make_user("oscar", "contractors")


@pytest.fixture
def anonymous() -> Client:
    return Client()


# --- shared data -------------------------------------------------------------------------


@pytest.fixture
def inv(db: None) -> Inventory:
    """The wizard's small inventory (database only): see tests.factories.inventory."""
    return inventory()


@pytest.fixture
def assume_calls() -> list[dict[str, Any]]:
    """The parameters of every AssumeRole the hub makes during the test."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **kwargs: Any) -> None:
        calls.append(dict(params))

    aws.on_hub_call("provide-client-params.sts.AssumeRole", record)
    return calls


# --- stand-ins on loopback -----------------------------------------------------------------


@pytest.fixture
def federation(settings: Any) -> Iterator[Federation]:
    """The AWS federation endpoint, played on loopback: it answers getSigninToken
    with a token from the demo stand-in, which checks the session credentials
    against the embedded AWS."""
    state = Federation(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(("GET", self.path))
            self._answer(405, {"error": "getSigninToken is a POST"})

        def do_POST(self) -> None:
            state.requests.append(("POST", self.path))
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            if state.fail or form.get("Action") != ["getSigninToken"]:
                self._answer(500, {"error": "unavailable"})
                return
            session = form["Session"][0]
            state.sessions.append(json.loads(session))
            try:
                self._answer(200, {"SigninToken": federation_demo.signin_token(session)})
            except federation_demo.InvalidSession as exc:
                self._answer(400, {"error": str(exc)})

        def _answer(self, status: int, body: dict[str, str]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # Stopping waits for the loop's next look at the shutdown flag: look often.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/federation"
    settings.IAMPORTAL_FEDERATION_URL = state.url
    settings.IAMPORTAL_DEMO_FEDERATION = True
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


# --- the log ----------------------------------------------------------------------------------


@pytest.fixture
def log_output(settings: Any, request: pytest.FixtureRequest) -> Iterator[StringIO]:
    """Everything the configured handlers write at LOG_LEVEL=DEBUG with DEBUG on
    (the root console handler, and runserver's request lines through
    django.server), in one buffer. Parametrized indirectly with True, the
    libraries iamportal keeps quiet log at DEBUG too."""
    settings.DEBUG = True
    config = copy.deepcopy(settings.LOGGING)
    config["root"]["level"] = "DEBUG"
    config["loggers"]["django"]["level"] = "DEBUG"
    if getattr(request, "param", False):
        for name in ("botocore", "urllib3"):
            config["loggers"][name]["level"] = "DEBUG"
    logging.config.dictConfig(config)
    stream = StringIO()
    for handler in logging.getLogger().handlers + logging.getLogger("django.server").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)
    yield stream
    logging.config.dictConfig(settings.LOGGING)
