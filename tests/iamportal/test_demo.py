"""The demo organisation and its logins."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
import requests
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from accounts.denied import denied_call_suggestion, denied_events_poll
from accounts.models import DeniedCall
from iamportal import aws, demo
from tests.factories import make_user, sync

pytestmark = pytest.mark.django_db


def test_the_demo_organisation_has_a_hub_and_three_spokes_with_fifteen_plus_roles() -> None:
    org = demo.organisation_seed()
    assert [a.environment for a in org] == ["prod", "staging", "dev"]
    assert len({a.account_id for a in org}) == 3
    assert demo.HUB_ACCOUNT_ID not in {a.account_id for a in org}
    assert sum(len(a.roles) for a in org) >= 15
    listed = aws.client("organizations").list_accounts()["Accounts"]
    assert {a.account_id for a in org} <= {a["Id"] for a in listed}
    spoke = aws.client("iam", session=demo.account_session(org[0].account_id)).get_role(
        RoleName="iamportal-spoke"
    )["Role"]
    trusted = spoke["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"]
    assert trusted == f"arn:aws:iam::{demo.HUB_ACCOUNT_ID}:root"


def _embedded_aws_reset() -> None:
    """As a new `make demo` run starts: an empty embedded AWS, nothing cached."""
    requests.post("http://motoapi.amazonaws.com/moto-api/reset", timeout=10).raise_for_status()
    aws.forget_sessions()


def test_demo_account_ids_are_the_same_on_every_run_whatever_the_order(monkeypatch: Any) -> None:
    first = {a.name: a.account_id for a in demo.organisation_seed()}
    _embedded_aws_reset()
    monkeypatch.setattr(demo, "ENVIRONMENTS", tuple(reversed(demo.ENVIRONMENTS)))
    second = {a.name: a.account_id for a in demo.organisation_seed()}

    assert second == first
    assert all(len(account_id) == 12 and account_id.isdigit() for account_id in first.values())
    listed = aws.client("organizations").list_accounts()["Accounts"]
    assert {a["Name"]: a["Id"] for a in listed if a["Name"] in first} == first


def test_demo_account_ids_come_from_the_account_name() -> None:
    assert demo.account_id_seed("acme-prod") == demo.account_id_seed("acme-prod")
    assert demo.account_id_seed("acme-prod") != demo.account_id_seed("acme-dev")


def test_the_demo_organisation_has_users_groups_databases_and_an_ou_tree_with_an_scp() -> None:
    org = demo.organisation_seed()
    prod = org[0]
    # The one thing the embedded AWS does differently: every RDS instance's resource id.
    assert [note for note in prod.notes if "same resource id" not in note] == []
    assert len(prod.users) >= 3 and len(prod.groups) >= 2
    rds = aws.client("rds", session=demo.account_session(prod.account_id))
    instances = rds.describe_db_instances()["DBInstances"]
    assert len(instances) == 2
    assert all(db["IAMDatabaseAuthenticationEnabled"] for db in instances)
    organizations = aws.client("organizations")
    root = organizations.list_roots()["Roots"][0]["Id"]
    [workloads] = organizations.list_organizational_units_for_parent(ParentId=root)[
        "OrganizationalUnits"
    ]
    custom = [
        p
        for p in organizations.list_policies(Filter="SERVICE_CONTROL_POLICY")["Policies"]
        if not p["AwsManaged"]
    ]
    assert len(custom) == 1
    targets = organizations.list_targets_for_policy(PolicyId=custom[0]["Id"])["Targets"]
    assert [t["TargetId"] for t in targets] == [workloads["Id"]]


def test_the_demo_says_so_and_carries_on_when_the_embedded_aws_lacks_an_api(
    monkeypatch: Any,
) -> None:
    real = aws.client

    def without_ous(service: str, **kwargs: Any) -> Any:
        client = real(service, **kwargs)
        if service == "organizations":

            def missing(**kw: Any) -> None:
                raise NotImplementedError("CreateOrganizationalUnit")

            client.meta.events.register(
                "before-call.organizations.CreateOrganizationalUnit", missing
            )
        return client

    monkeypatch.setattr(aws, "client", without_ous)
    org = demo.organisation_seed()
    assert all("could not build the OU tree" in " ".join(a.notes) for a in org)
    assert all(a.roles for a in org)


def test_the_demo_refuses_to_seed_anything_but_the_embedded_aws(monkeypatch: Any) -> None:
    monkeypatch.setattr(demo, "HUB_ACCOUNT_ID", "999988887777")
    with pytest.raises(RuntimeError, match="only against the embedded AWS"):
        demo.organisation_seed()


def test_demo_logins_use_the_given_password_or_a_generated_one() -> None:
    assert demo.users_create("given-password-1") == "given-password-1"
    alice = authenticate(username="alice", password="given-password-1")
    assert alice is not None
    assert alice.email == "alice@example.com"
    assert set(alice.groups.values_list("name", flat=True)) == {"team-payments", "engineering"}
    assert not alice.is_staff
    assert authenticate(username="rita", password="given-password-1").is_staff  # type: ignore[union-attr]
    generated = demo.users_create()
    assert len(generated) >= 12
    admin = authenticate(username="admin", password=generated)
    assert admin is not None and admin.is_superuser


def test_the_demo_command_runs_only_against_its_embedded_aws(settings: Any) -> None:
    settings.AWS_ENDPOINT_URL = "https://iam.amazonaws.com"
    with pytest.raises(CommandError, match="make demo"):
        call_command("demo", stdout=StringIO())


def test_the_demo_web_server_serves_static_files_with_debug_off() -> None:
    from iamportal.management.commands.demo import children_commands

    qcluster, runserver = children_commands(8123)
    assert qcluster[-1] == "qcluster"
    assert runserver[-4:] == ["runserver", "127.0.0.1:8123", "--noreload", "--insecure"]


def test_the_demo_shows_iamportals_own_404_page(settings: Any, client: Any) -> None:
    settings.DEBUG = False  # as `make demo` runs it
    client.force_login(make_user("visitor"))

    response = client.get("/acme-prod/bookmark-that-moved/")

    html = response.content.decode()
    assert response.status_code == 404
    assert "404.html" in [template.name for template in response.templates]
    assert "There is nothing here" in html
    assert "URLconf" not in html and "admin/" not in html


def test_the_demo_queue_holds_denied_calls_the_role_page_turns_into_grants(settings: Any) -> None:
    org = demo.organisation_seed()
    staging = next(a for a in demo.accounts_onboard(org) if a.environment == "staging")
    sync(staging)
    settings.IAMPORTAL_DENIED_EVENTS_QUEUE_URL = demo.denied_events_seed(org)

    assert denied_events_poll() == {"recorded": 5}

    calls = DeniedCall.objects.filter(role__account=staging)
    assert {(c.role.name, c.action, c.count) for c in calls} == {
        ("payments-api", "s3:GetObject", 3),
        ("payments-api", "sqs:ReceiveMessage", 1),
        ("ReadOnly", "s3:PutObject", 1),
    }
    assert all(denied_call_suggestion(c).policy is not None for c in calls)


def test_in_the_demo_alice_gets_a_password_for_payments_db_through_payments_api() -> None:
    from django.contrib.auth.models import User
    from django.urls import reverse

    from accounts.models import Database
    from tests.factories import client_for, sync

    org = demo.organisation_seed()
    accounts = demo.accounts_onboard(org)
    demo.users_create("a-demo-password")
    demo.policy_templates_seed()
    sync(accounts[0])
    payments_db = Database.objects.get(account=accounts[0], name="payments-db")
    alice = client_for(User.objects.get(username="alice"))
    page = alice.get(reverse("database_list")).content.decode()
    assert "Get a password" in page and demo.DEMO_DB_USER in page
    role = payments_db.account.roles.get(name="payments-api")
    answer = alice.post(
        reverse("database_password", args=[payments_db.pk]),
        {"role": role.pk, "db_user": demo.DEMO_DB_USER},
    )
    assert answer.status_code == 200
    assert f"DBUser={demo.DEMO_DB_USER}" in answer.content.decode()
    # reporting-db: no role of alice's may connect; the page offers the template
    # The embedded AWS gives every RDS instance the same resource id: the demo says so.
    ids = set(Database.objects.filter(account=accounts[0]).values_list("resource_id", flat=True))
    if len(ids) == 1:
        assert any("same resource id" in note for note in org[0].notes)


def test_in_the_demo_read_only_access_outside_production_is_approved_automatically() -> None:
    from datetime import timedelta

    from django.contrib.auth.models import User
    from django.test import TestCase
    from django.utils import timezone

    from accounts.models import IamRole
    from requests_app import services

    org = demo.organisation_seed()
    accounts = demo.accounts_onboard(org)
    demo.users_create("a-demo-password")
    demo.approval_policies_seed(accounts)
    for account in accounts:
        IamRole.objects.create(
            account=account,
            arn=aws.role_arn(account.account_id, "ReadOnly"),
            name="ReadOnly",
            content_hash="x",
            synced_at=timezone.now(),
        )
    sam = User.objects.get(username="sam")

    def asked(environment: str, hours: int) -> str:
        role = IamRole.objects.get(name="ReadOnly", account__environment=environment)
        with TestCase.captureOnCommitCallbacks(execute=True):
            request = services.access_request_submit(
                requester=sam, role=role, justification="Incident", duration=timedelta(hours=hours)
            )
        request.refresh_from_db()
        if request.status == "applied":
            services.access_grant_revoke(request_id=request.pk, actor=sam)
        return request.status

    assert asked("staging", 4) == "applied"
    assert asked("dev", 8) == "applied"
    assert asked("staging", 9) == "pending"
    assert asked("prod", 1) == "pending"
