"""The statements one Weep credential request runs. Every credential request pays
for each of them, so a new one in this path should be a decision: this test
names them, and fails when one is added."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from brokering import eligibility
from brokering.cli_auth import cli_token_issue
from brokering.models import CredentialIssuance
from tests.factories import Org

pytestmark = pytest.mark.django_db


def _statement(sql: str) -> tuple[str, str]:
    """(verb, first table) of a statement: ("SELECT", "auth_user")."""
    verb = sql.split(None, 1)[0].upper()
    table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?([\w]+)', sql, re.IGNORECASE)
    return verb, table.group(1) if table else ""


def test_a_credential_request_reads_the_user_and_the_role_and_writes_the_slot_and_audit(
    requester: User, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    # However slow the machine, the index is not checked against the database
    # between the two requests (a read that happens at most every two seconds).
    monkeypatch.setattr(eligibility, "FRESHNESS_SECONDS", 3600.0)
    client = Client(REMOTE_ADDR="203.0.113.7")
    client.cookies["iamportal_auth"] = cli_token_issue(user=requester).encoded
    body = json.dumps({"requested_role": org.arn("prod/payments-api")})

    def ask() -> int:
        response = client.post("/api/v1/get_credentials", body, content_type="application/json")
        return response.status_code

    # The first request builds the access index and opens the user's rate window.
    assert ask() == 200
    with CaptureQueriesContext(connection) as queries:
        assert ask() == 200

    assert [_statement(query["sql"]) for query in queries.captured_queries] == [
        # the CLI token's user, with its groups (one join)
        ("SELECT", "auth_user"),
        # the role by its ARN, with its account
        ("SELECT", "accounts_iamrole"),
        # a slot of the per-user rate limit
        ("UPDATE", "brokering_credentialratewindow"),
        # the audit row, before the credentials are returned
        ("INSERT", "brokering_credentialissuance"),
    ]
    assert (
        CredentialIssuance.objects.filter(
            user=requester, outcome=CredentialIssuance.Outcome.ISSUED
        ).count()
        == 2
    )
