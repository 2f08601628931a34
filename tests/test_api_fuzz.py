"""The whole REST API, fuzzed from the OpenAPI schema it serves.

Every operation of /api/schema/ is called with generated input (valid and
invalid) as an engineer and as a reviewer, through the WSGI application, with
personal API tokens. Each answer must be a documented status code with a body
that matches its documented schema, and never a server error. The data behind
the API is a small inventory and a few requests in several states, so the
fuzzer reaches past the 404s; AWS is the embedded one, and the federation
endpoint a stand-in on loopback: anything else that tries to reach the network
fails the test.

The run is bounded and reproducible: a fixed number of examples per operation
(IAMPORTAL_FUZZ_EXAMPLES: a few in `make test`, more in CI), derandomized,
without Hypothesis' example database.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core import signals
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.core.failures import FailureGroup

from accounts.models import IamRole
from iamportal.services import api_token_create
from iamportal.wsgi import application
from requests_app.models import Change, PolicyRequest
from tests.factories import EVENTS_POLICY, inventory, submitted

SCHEMA_URL = "/api/schema/?format=json"
MAX_EXAMPLES = int(os.environ.get("IAMPORTAL_FUZZ_EXAMPLES", "5"))

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            # The callers authenticate with their tokens; the fuzzer does not invent credentials.
            "with-security-parameters": False,
        },
        "checks": {
            "not_a_server_error": {"enabled": True},
            "status_code_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
            "response_headers_conformance": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
            # Invalid input is rejected with any 4xx that says why; a body past the size limit
            # gets the documented 413 before its content is looked at.
            "negative_data_rejection": {
                "enabled": True,
                "expected-statuses": [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429],
            },
            "ignored_auth": {"enabled": True},
            # The schema cannot say everything the services check (a justification that is
            # only blanks, a date range that ends before it starts): a 400 for such input is right.
            "positive_data_acceptance": {"enabled": False},
        },
    }
)
schema = schemathesis.openapi.from_wsgi(SCHEMA_URL, application, config=CONFIG)


@dataclass
class World:
    tokens: dict[str, str]
    request_ids: list[int]
    role_arns: list[str]
    network: list[str] = field(default_factory=list)


def _submitted(user: User, role: IamRole) -> PolicyRequest:
    return submitted(
        user, role, policy_name=None, document=EVENTS_POLICY, justification="Settlement events."
    )


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Refuse, and record, every attempt to resolve or connect to anything but loopback."""
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def loopback(host: Any) -> bool:
        if host in ("localhost", "testserver"):
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not loopback(address[0]):
            attempts.append(f"connect {address!r}")
            raise ConnectionRefusedError(f"tests never reach the network ({address!r})")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not loopback(host):
            attempts.append(f"resolve {host!r}")
            raise socket.gaierror(f"tests never reach the network ({host!r})")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield attempts


@pytest.fixture
def in_one_transaction() -> Iterator[None]:
    """Django closes the database connection when a request ends; inside a test,
    that would end the test's transaction. Its test client holds this back the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(
    requester: User, reviewer: User, loopback_only: list[str], in_one_transaction: None
) -> World:
    inv = inventory()
    inv.readonly.tags = {"iamportal-authorized": "security-reviewers"}
    inv.readonly.save(update_fields=["tags"])
    batch = IamRole.objects.create(
        account=inv.account,
        arn=f"arn:aws:iam::{inv.account.account_id}:role/payments-batch",
        name="payments-batch",
        tags={"iamportal-authorized-cli-only": "team-payments"},
        content_hash="x",
        synced_at=timezone.now(),
    )
    pending = _submitted(requester, inv.api)
    reviewers_own = _submitted(reviewer, inv.readonly)
    failed = _submitted(requester, inv.api)
    PolicyRequest.objects.filter(pk=failed.pk).update(status=PolicyRequest.Status.FAILED)
    Change.objects.filter(request=failed).update(status=Change.Status.FAILED, error="Denied")
    tokens = {
        who: api_token_create(user=user, name="fuzz", expires_in_days=1)[1]
        for who, user in (("requester", requester), ("reviewer", reviewer))
    }
    return World(
        tokens=tokens,
        request_ids=[pending.pk, reviewers_own.pk, failed.pk],
        role_arns=[inv.api.arn, batch.arn, inv.readonly.arn],
        network=loopback_only,
    )


def _positive(case: schemathesis.Case) -> bool:
    """Whether the case is meant to be valid (a negative one must stay invalid)."""
    return case.meta is not None and case.meta.generation.mode.is_positive


def _aim(case: schemathesis.Case, world: World) -> None:
    """Point most generated request ids and role names at ones that exist: random
    ones are all 404s, which the unit tests already cover, and the fuzzer would
    never reach credentials, console sign-in or a submitted request."""
    given = (case.path_parameters or {}).get("id")
    if isinstance(given, int) and not isinstance(given, bool):
        ids = [*world.request_ids, given]
        case.path_parameters["id"] = ids[given % len(ids)]
    body = case.body
    if not isinstance(body, dict) or not _positive(case):
        return
    for key in ("role", "requested_role"):
        named = body.get(key)
        if isinstance(named, str):
            arns = [*world.role_arns, named]
            body[key] = arns[len(named) % len(arns)]


@dataclass(frozen=True)
class KnownIssue:
    """A failure the fuzzer finds outside the requests API, written down with the
    fix it needs, so the rest of that operation is still fuzzed meanwhile. Delete
    the entry once the fix is in."""

    operations: frozenset[str]
    codes: frozenset[str]  # schemathesis' failure codes, e.g. ST108 "Response violates schema"
    seen_in: Callable[[schemathesis.Case, schemathesis.Response], bool]


_WEEP = frozenset(
    {
        "POST /api/v1/get_credentials",
        "GET /api/v1/get_roles",
        "GET /api/v2/get_roles",
        "GET /api/v2/get_resource_url",
        "GET /api/v1/policies/typeahead",
        "GET /noauth/v1/challenge_generator/{user}",
        "GET /noauth/v1/challenge_poller/{token}",
    }
)
# Failures already understood and waiting for a fix: (operations, check codes, a
# predicate on the case and response). Empty: every check holds everywhere.
KNOWN_ISSUES: list[KnownIssue] = []


def _known(case: schemathesis.Case, response: schemathesis.Response, failure: Any) -> bool:
    return any(
        case.operation.label in issue.operations
        and failure.code in issue.codes
        and issue.seen_in(case, response)
        for issue in KNOWN_ISSUES
    )


def _fuzz(case: schemathesis.Case, world: World, who: str) -> None:
    _aim(case, world)
    headers = {"Authorization": f"Bearer {world.tokens[who]}"}
    # What a WSGI server always sets, and the test client does not.
    environ = {"REMOTE_ADDR": "127.0.0.1"}
    response = case.call(headers=headers, environ_overrides=environ)
    transport = {"headers": headers, "environ_overrides": environ}
    try:
        case.validate_response(response, headers=headers, transport_kwargs=transport)
    except FailureGroup as found:
        if not all(_known(case, response, failure) for failure in found.exceptions):
            raise
    assert world.network == [], "the API tried to reach the network"


FUZZ_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


@pytest.mark.usefixtures("federation")
@schema.parametrize()
@FUZZ_SETTINGS
def test_the_api_keeps_its_schema_for_an_engineer(case: schemathesis.Case, world: World) -> None:
    _fuzz(case, world, "requester")


@pytest.mark.usefixtures("federation")
@schema.parametrize()
@FUZZ_SETTINGS
def test_the_api_keeps_its_schema_for_a_reviewer(case: schemathesis.Case, world: World) -> None:
    _fuzz(case, world, "reviewer")
