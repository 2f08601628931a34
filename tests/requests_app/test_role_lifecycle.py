"""Creating, copying, deleting and re-describing roles through requests, against
the embedded AWS: validation at submit, apply through the spoke role, the
inventory after it, a retry after a failure half way, expiry, and iamportal's
own roles refused."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.contrib.auth.models import User
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from accounts.models import AwsAccount, IamRole, RoleVersion
from accounts.services import role_refresh
from brokering.selectors import eligible_role_ids
from brokering.services import REVOKED_SESSIONS_POLICY
from requests_app import services, tasks
from requests_app.changes import ChangeSpec, change_document, change_summary, lifecycle
from requests_app.models import Change, PolicyRequest
from requests_app.revision import revision_of_request
from tests.factories import (
    ECS_TRUST,
    account_create,
    admin_iam,
    api_client,
    approve,
    client_for,
    html_of,
    role_in,
)

pytestmark = pytest.mark.django_db

# The embedded AWS has no AWS-managed policies: the tests attach one of the account's own.
SHARED = "shared-read"
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
READ_REPORTS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::acme-reports/*",
        }
    ],
}


@pytest.fixture(autouse=True)
def shared_policy(account: AwsAccount) -> str:
    admin_iam(account.account_id).create_policy(
        PolicyName=SHARED, PolicyDocument=json.dumps(READ_REPORTS)
    )
    return shared(account)


def shared(account: AwsAccount) -> str:
    return f"arn:aws:iam::{account.account_id}:policy/{SHARED}"


def create_payload(account: AwsAccount, **overrides: Any) -> dict[str, Any]:
    return {
        "description": "Builds the monthly reports",
        "max_session_duration": 7200,
        "trust_policy": LAMBDA_TRUST,
        "inline_policies": {"reports-read": READ_REPORTS},
        "managed_policy_arns": [shared(account)],
        "tags": {"team": "payments"},
        **overrides,
    }


def create(
    requester: User, account: AwsAccount, name: str = "reports-builder", **kwargs: Any
) -> PolicyRequest:
    payload = kwargs.pop("payload", None) or create_payload(account)
    with TestCase.captureOnCommitCallbacks(execute=True):
        request = services.role_create_submit(
            requester=requester,
            target_arn=f"arn:aws:iam::{account.account_id}:role/{name}",
            payload=payload,
            justification="The reports job moves to Lambda.",
            **kwargs,
        )
    assert isinstance(request, PolicyRequest)
    return request


def live(account: AwsAccount, name: str) -> dict[str, Any] | None:
    iam = admin_iam(account.account_id)
    try:
        role = iam.get_role(RoleName=name)["Role"]
    except ClientError:
        return None
    inline = iam.list_role_policies(RoleName=name)["PolicyNames"]
    attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
    return {
        "trust": role["AssumeRolePolicyDocument"],
        "description": role.get("Description", ""),
        "duration": role["MaxSessionDuration"],
        "boundary": role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn"),
        "tags": {t["Key"]: t["Value"] for t in role.get("Tags", [])},
        "inline": inline,
        "attached": [p["PolicyArn"] for p in attached],
    }


def invalid(call: Any) -> dict[str, str]:
    with pytest.raises(services.RequestInvalid) as caught:
        call()
    return caught.value.errors


# --- create ----------------------------------------------------------------------------


def test_a_role_is_created_with_every_part_and_joins_the_inventory(
    requester: User, reviewer: User, account: AwsAccount
) -> None:
    tags = {"team": "payments", **services.access_tags_for(requester)}
    request = create(requester, account, payload=create_payload(account, tags=tags))
    assert request.role is None
    assert request.role_arn == f"arn:aws:iam::{account.account_id}:role/reports-builder"
    assert live(account, "reports-builder") is None  # nothing before approval

    request = approve(request, reviewer)
    assert request.status == PolicyRequest.Status.APPLIED
    assert live(account, "reports-builder") == {
        "trust": LAMBDA_TRUST,
        "description": "Builds the monthly reports",
        "duration": 7200,
        "boundary": None,
        "tags": {"team": "payments", "iamportal-authorized": "alice@example.com"},
        "inline": ["reports-read"],
        "attached": [shared(account)],
    }
    role = IamRole.objects.get(arn=request.role_arn)
    assert request.role == role
    assert role.inline_policies == {"reports-read": READ_REPORTS}
    assert role.max_session_duration == 7200
    # The access tag lets the requester use the role once it exists.
    assert role.pk in eligible_role_ids(requester)


def test_a_creation_shows_the_reviewer_everything_it_creates(
    requester: User, account: AwsAccount
) -> None:
    request = create(
        requester, account, payload=create_payload(account, tags={"iamportal-authorized": "x"})
    )
    change = request.changes.get()
    shown = change_document(change)
    assert shown is not None
    before, after = shown
    assert before is None
    assert after["trust_policy"] == LAMBDA_TRUST
    assert after["inline_policies"] == {"reports-read": READ_REPORTS}
    assert "Create role reports-builder" in change_summary(change)
    assert "lambda.amazonaws.com" in change_summary(change)
    assert "access-tags" in {f["code"] for f in request.findings}


def test_a_creation_with_a_public_trust_policy_is_an_error_finding(
    requester: User, account: AwsAccount
) -> None:
    public = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}],
    }
    errors = invalid(
        lambda: create(requester, account, payload=create_payload(account, trust_policy=public))
    )
    assert "findings_acknowledgement" in errors
    request = create(
        requester,
        account,
        payload=create_payload(account, trust_policy=public),
        findings_acknowledgement="A test role for the public demo.",
    )
    assert request.risk == "error"
    [finding] = [f for f in request.findings if f["code"] == "trust-public"]
    assert finding["location"].startswith("/trust_policy/Statement/0")


@pytest.mark.parametrize(
    ("name", "overrides", "key", "message"),
    [
        ("bad name!", {}, "target_arn", "Name the new role by its ARN"),
        ("x" * 65, {}, "target_arn", "Name the new role by its ARN"),
        ("ok", {"max_session_duration": 60}, "payload.max_session_duration", "3600"),
        ("ok", {"max_session_duration": True}, "payload.max_session_duration", "3600"),
        ("ok", {"description": "x" * 1001}, "payload.description", "1000"),
        ("ok", {"trust_policy": "lambda"}, "payload.trust_policy", "JSON object"),
        ("ok", {"trust_policy": {"Statement": []}}, "payload.trust_policy", ""),
        ("ok", {"managed_policy_arns": ["nope"]}, "payload.managed_policy_arns", "ARN"),
        (
            "ok",
            {"managed_policy_arns": ["arn:aws:iam::999999999999:policy/x"]},
            "payload.managed_policy_arns",
            "its own account",
        ),
        ("ok", {"tags": {"aws:x": "y"}}, "payload.tags", "aws:"),
        ("ok", {"inline_policies": {"bad name": READ_REPORTS}}, "payload.inline_policies", ""),
        ("ok", {"inline_policies": {"a": "x"}}, "payload.inline_policies.a", "JSON object"),
        ("ok", {"colour": "red"}, "payload", "Unknown keys: colour"),
        ("iamportal-spoke", {}, "target_arn", "one of iamportal's own roles"),
    ],
)
def test_a_creation_is_validated_at_submit(
    requester: User,
    account: AwsAccount,
    name: str,
    overrides: dict[str, Any],
    key: str,
    message: str,
) -> None:
    errors = invalid(
        lambda: create(requester, account, name, payload=create_payload(account, **overrides))
    )
    assert key in errors, errors
    assert message in errors[key]
    assert not PolicyRequest.objects.exists()


def test_a_creation_refuses_a_name_the_account_or_an_open_request_has(
    requester: User, account: AwsAccount
) -> None:
    role_in(account, "payments-api")
    errors = invalid(lambda: create(requester, account, "Payments-API"))
    assert "already has a role named Payments-API" in errors["target_arn"]
    first = create(requester, account, "reports-builder")
    errors = invalid(lambda: create(requester, account, "REPORTS-builder"))
    assert errors["target_arn"] == f"Request #{first.pk} already creates this role."


def test_an_account_can_require_a_boundary_on_new_roles(
    requester: User, reviewer: User, account: AwsAccount
) -> None:
    AwsAccount.objects.filter(pk=account.pk).update(new_roles_require_boundary=True)
    errors = invalid(lambda: create(requester, account))
    assert "need a permissions boundary" in errors["payload.permissions_boundary_arn"]
    request = create(
        requester,
        account,
        payload=create_payload(account, permissions_boundary_arn=shared(account)),
    )
    approve(request, reviewer)
    assert (live(account, "reports-builder") or {})["boundary"] == shared(account)


def test_a_dry_run_creates_nothing(requester: User, account: AwsAccount) -> None:
    spec = services.role_create_submit(
        requester=requester,
        target_arn=f"arn:aws:iam::{account.account_id}:role/team/reports-builder",
        payload={"trust_policy": LAMBDA_TRUST},
        justification="Trying.",
        dry_run=True,
    )
    assert not isinstance(spec, PolicyRequest)
    assert spec.payload["max_session_duration"] == 3600
    assert not PolicyRequest.objects.exists()


def test_applying_a_creation_again_finishes_a_role_a_failed_attempt_began(
    requester: User, reviewer: User, account: AwsAccount
) -> None:
    request = create(requester, account)
    # An earlier attempt created the role with its trust policy, then stopped.
    admin_iam(account.account_id).create_role(
        RoleName="reports-builder", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST)
    )
    request = approve(request, reviewer)
    assert request.status == PolicyRequest.Status.APPLIED
    found = live(account, "reports-builder") or {}
    assert (found["inline"], found["attached"], found["duration"]) == (
        ["reports-read"],
        [shared(account)],
        7200,
    )
    assert request.changes.get().outcome == {"adopted": True}


def test_a_role_of_that_name_with_another_trust_policy_is_not_taken_over(
    requester: User, reviewer: User, account: AwsAccount
) -> None:
    request = create(requester, account)
    admin_iam(account.account_id).create_role(
        RoleName="reports-builder", AssumeRolePolicyDocument=ECS_TRUST
    )
    request = approve(request, reviewer)
    assert request.status == PolicyRequest.Status.FAILED
    assert "another trust policy" in request.changes.get().error
    assert (live(account, "reports-builder") or {})["inline"] == []


def test_a_temporary_role_is_deleted_at_expiry(
    requester: User, reviewer: User, account: AwsAccount
) -> None:
    request = create(requester, account, expires_at=timezone.now() + timedelta(hours=8))
    request = approve(request, reviewer)
    assert IamRole.objects.filter(arn=request.role_arn).exists()
    PolicyRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now())
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert tasks.policy_requests_expiry_sweep_task() == 1
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.EXPIRED
    assert live(account, "reports-builder") is None
    assert not IamRole.objects.filter(arn=request.role_arn).exists()


# --- clone -----------------------------------------------------------------------------


def source_role(account: AwsAccount) -> IamRole:
    iam = admin_iam(account.account_id)
    own = account.account_id
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{own}:role/deployer"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    iam.create_role(
        RoleName="payments-api",
        AssumeRolePolicyDocument=json.dumps(trust),
        Description="Payments API",
        MaxSessionDuration=14400,
        Tags=[{"Key": "team", "Value": "payments"}],
    )
    queue = f"arn:aws:sqs:us-east-1:{own}:payments-events"
    iam.put_role_policy(
        RoleName="payments-api",
        PolicyName="events-send",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue}],
            }
        ),
    )
    iam.attach_role_policy(RoleName="payments-api", PolicyArn=shared(account))
    role = role_in(account, "payments-api", in_aws=False)
    role_refresh(role=role)
    role.refresh_from_db()
    return role


def test_a_clone_into_another_account_rewrites_the_source_accounts_arns(
    requester: User, reviewer: User, account: AwsAccount
) -> None:
    source = source_role(account)
    other = account_create("acme-dev")
    # Its own policy of the same name: the copy attaches that one.
    admin_iam(other.account_id).create_policy(
        PolicyName=SHARED, PolicyDocument=json.dumps(READ_REPORTS)
    )
    request = services.role_clone_submit(
        requester=requester,
        source=source,
        account=other,
        name="payments-api",
        path="/copies/",
        parts={"trust", "inline", "managed", "tags", "description"},
        justification="A copy for development.",
    )
    assert isinstance(request, PolicyRequest)
    assert request.role_arn == f"arn:aws:iam::{other.account_id}:role/copies/payments-api"
    payload = request.changes.get().payload
    text = json.dumps(payload)
    assert account.account_id not in text
    assert f"arn:aws:iam::{other.account_id}:role/deployer" in text
    assert f"arn:aws:sqs:us-east-1:{other.account_id}:payments-events" in text
    assert payload["max_session_duration"] == 3600  # not chosen: the default
    assert request.justification.startswith(f"Copy of {source.arn}.")

    approve(request, reviewer)
    found = live(other, "payments-api") or {}
    assert (found["description"], found["inline"], found["tags"], found["attached"]) == (
        "Payments API",
        ["events-send"],
        {"team": "payments"},
        [shared(other)],
    )


def test_a_clone_leaves_out_the_sources_revoked_sessions_policy(
    requester: User, account: AwsAccount
) -> None:
    source = source_role(account)
    IamRole.objects.filter(pk=source.pk).update(
        inline_policies={**source.inline_policies, REVOKED_SESSIONS_POLICY: {"Statement": []}}
    )
    source.refresh_from_db()

    request = _copied(requester, source, account)

    assert isinstance(request, PolicyRequest)
    assert list(request.changes.get().payload["inline_policies"]) == ["events-send"]


def _copied(requester: User, source: IamRole, account: AwsAccount) -> PolicyRequest | ChangeSpec:
    """A clone of `source`'s trust and inline policies, filed."""
    return services.role_clone_submit(
        requester=requester,
        source=source,
        account=account,
        name="payments-api-copy",
        path="/",
        parts={"trust", "inline"},
        justification="A copy.",
    )


def test_a_creation_filed_with_the_revoked_sessions_policy_is_refused_at_apply(
    requester: User, reviewer: User, account: AwsAccount
) -> None:
    source = source_role(account)
    request = _copied(requester, source, account)
    assert isinstance(request, PolicyRequest)
    # As filed before the name was refused: the reviewer sees and approves it.
    change = request.changes.get()
    policies = {**change.payload["inline_policies"], REVOKED_SESSIONS_POLICY: {"Statement": []}}
    Change.objects.filter(pk=change.pk).update(
        payload={**change.payload, "inline_policies": policies}
    )
    PolicyRequest.objects.filter(pk=request.pk).update(revision=revision_of_request(request.pk))

    request = approve(request, reviewer)

    assert request.status == "failed"
    assert "iamportal's own" in request.changes.get().error
    assert live(account, "payments-api-copy") is None


def test_a_clone_of_only_the_trust_policy(requester: User, account: AwsAccount) -> None:
    source = source_role(account)
    payload = services.role_clone_payload(source=source, account=account, parts={"trust"})
    assert payload == {"trust_policy": source.trust_policy}


def test_a_clone_without_the_trust_policy_is_trusted_as_asked(
    requester: User, account: AwsAccount
) -> None:
    source = source_role(account)
    arguments: dict[str, Any] = {
        "requester": requester,
        "source": source,
        "account": account,
        "name": "payments-lambda",
        "path": "/",
        "parts": {"inline"},
        "justification": "The same permissions for a Lambda function.",
    }
    errors = invalid(lambda: services.role_clone_submit(**arguments))
    assert "A role needs a trust policy" in errors["trust_preset"]
    request = services.role_clone_submit(**arguments, trust_policy=LAMBDA_TRUST)
    assert isinstance(request, PolicyRequest)
    payload = request.changes.get().payload
    assert payload["trust_policy"] == LAMBDA_TRUST
    assert list(payload["inline_policies"]) == ["events-send"]


# --- delete ----------------------------------------------------------------------------


def doomed(account: AwsAccount) -> IamRole:
    iam = admin_iam(account.account_id)
    role = source_role(account)
    iam.create_instance_profile(InstanceProfileName="payments-api")
    iam.add_role_to_instance_profile(InstanceProfileName="payments-api", RoleName=role.name)
    return role


def delete(requester: User, role: IamRole, confirmation: str | None = None) -> PolicyRequest:
    with TestCase.captureOnCommitCallbacks(execute=True):
        request = services.role_delete_submit(
            requester=requester,
            role=role,
            confirmation=role.name if confirmation is None else confirmation,
            reason="Replaced by payments-api-v2.",
        )
    assert isinstance(request, PolicyRequest)
    return request


def test_a_deletion_needs_the_roles_name_typed_and_a_reason(
    requester: User, account: AwsAccount
) -> None:
    role = doomed(account)
    errors = invalid(lambda: delete(requester, role, confirmation="payments"))
    assert "Type the name of the role, payments-api" in errors["changes[0].payload.confirmation"]
    errors = invalid(
        lambda: services.role_delete_submit(
            requester=requester, role=role, confirmation=role.name, reason=" "
        )
    )
    assert "justification" in errors


def test_a_role_is_deleted_with_everything_on_it_and_its_parts_are_kept(
    requester: User, reviewer: User, account: AwsAccount
) -> None:
    role = doomed(account)
    request = delete(requester, role)
    assert request.risk == "error"
    assert "role-delete" in {f["code"] for f in request.findings}
    change = request.changes.get()
    kept = change.previous
    assert isinstance(kept, dict)
    assert kept["inline_policies"].keys() == {"events-send"}
    assert kept["managed_policy_arns"] == [shared(account)]

    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_approve(
            request_id=request.pk,
            reviewer=reviewer,
            revision=request.revision,
            findings_acknowledged=True,
        )
    request.refresh_from_db()
    change.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert live(account, "payments-api") is None
    assert change.outcome == {
        "instance_profiles": ["payments-api"],
        "managed_policy_arns": [shared(account)],
        "inline_policy_names": ["events-send"],
    }
    # The inventory drops the role as a sync would; the request keeps its parts.
    assert not IamRole.objects.filter(arn=role.arn).exists()
    assert request.role is None and request.role_arn == role.arn
    assert change.previous == kept
    assert kept["trust_policy"]["Statement"][0]["Action"] == "sts:AssumeRole"


def test_a_deleted_role_s_documents_stay_in_its_history(
    requester: User, reviewer: User, account: AwsAccount
) -> None:
    role = doomed(account)
    recorded = RoleVersion.objects.filter(role=role).count()
    assert recorded
    request = delete(requester, role)
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_approve(
            request_id=request.pk,
            reviewer=reviewer,
            revision=request.revision,
            findings_acknowledged=True,
        )
    assert not IamRole.objects.filter(arn=role.arn).exists()

    kept = RoleVersion.objects.filter(account=account, role_name="payments-api")
    assert kept.count() == recorded
    assert {version.role_id for version in kept} == {None}
    assert {version.role_arn for version in kept} == {role.arn}
    html = (
        client_for(requester)
        .get(reverse("role_history", args=[account.account_id, "payments-api"]))
        .content.decode()
    )
    assert "This role was deleted" in html
    assert "Inline policy events-send" in html
    assert "sqs:SendMessage" in html
    assert "Restore this version" not in html


class _FailingOnce:
    """An IAM client that fails the first delete_role, as a throttle or a lost
    connection would, after the steps before it were done."""

    def __init__(self, client: Any, failures: list[str]) -> None:
        self._client = client
        self._failures = failures

    def __getattr__(self, name: str) -> Any:
        if name == "delete_role" and not self._failures:
            self._failures.append(name)

            def fail(**kwargs: Any) -> None:
                raise ClientError(
                    {"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "DeleteRole"
                )

            return fail
        return getattr(self._client, name)


def test_a_deletion_that_failed_half_way_finishes_on_retry(
    requester: User, reviewer: User, account: AwsAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = doomed(account)
    request = delete(requester, role)
    failures: list[str] = []
    real = lifecycle.iam_client
    monkeypatch.setattr(lifecycle, "iam_client", lambda s: _FailingOnce(real(s), failures))
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_approve(
            request_id=request.pk,
            reviewer=reviewer,
            revision=request.revision,
            findings_acknowledged=True,
        )
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.FAILED
    assert "Rate exceeded" in request.changes.get().error
    half = live(account, "payments-api") or {}
    assert (half["inline"], half["attached"]) == ([], [])  # the steps before it were done

    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_retry(request_id=request.pk, reviewer=reviewer)
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert live(account, "payments-api") is None
    assert not IamRole.objects.filter(arn=role.arn).exists()


def test_a_role_already_deleted_in_aws_counts_as_deleted(
    requester: User, reviewer: User, account: AwsAccount
) -> None:
    role = role_in(account, "old-job")
    role_refresh(role=role)
    request = delete(requester, role)
    admin_iam(account.account_id).delete_role(RoleName="old-job")
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_approve(
            request_id=request.pk,
            reviewer=reviewer,
            revision=request.revision,
            findings_acknowledged=True,
        )
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert request.changes.get().outcome == {"already_deleted": True}


# --- update ----------------------------------------------------------------------------


def test_description_and_session_duration_are_updated(
    requester: User, reviewer: User, account: AwsAccount
) -> None:
    role = source_role(account)
    request = services.role_update_submit(
        requester=requester,
        role=role,
        description="Payments API (v2)",
        max_session_duration=3600,
        justification="Shorter sessions.",
    )
    assert isinstance(request, PolicyRequest)
    assert request.changes.get().previous == {
        "description": "Payments API",
        "max_session_duration": 14400,
    }
    approve(request, reviewer)
    found = live(account, "payments-api") or {}
    assert (found["description"], found["duration"]) == ("Payments API (v2)", 3600)
    role.refresh_from_db()
    assert role.description == "Payments API (v2)"


def test_an_update_that_changes_nothing_is_refused(requester: User, account: AwsAccount) -> None:
    role = source_role(account)
    errors = invalid(
        lambda: services.role_update_submit(
            requester=requester,
            role=role,
            description="Payments API",
            max_session_duration=14400,
            justification="Nothing.",
        )
    )
    assert "already has this description" in errors["payload"]


# --- iamportal's own roles ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["delete", "update"])
def test_iamportals_own_roles_cannot_be_deleted_or_changed(
    requester: User, account: AwsAccount, kind: str
) -> None:
    spoke = role_in(account, "iamportal-spoke", in_aws=False)
    if kind == "delete":
        errors = invalid(lambda: delete(requester, spoke))
    else:
        errors = invalid(
            lambda: services.role_update_submit(
                requester=requester,
                role=spoke,
                description="Mine now",
                max_session_duration=None,
                justification="x",
            )
        )
    assert any("one of iamportal's own roles" in message for message in errors.values())
    assert not PolicyRequest.objects.exists()


def test_iamportals_own_roles_are_not_cloned(requester: User, account: AwsAccount) -> None:
    spoke = role_in(account, "iamportal-spoke", in_aws=False)
    errors = invalid(
        lambda: services.role_clone_submit(
            requester=requester,
            source=spoke,
            account=account,
            name="spoke-copy",
            path="/",
            parts=set(),
            justification="A copy.",
        )
    )
    assert "one of iamportal's own roles" in errors["role"]


def test_the_reviewers_are_told_of_a_creation(
    requester: User, reviewer: User, account: AwsAccount, mailoutbox: list[Any]
) -> None:
    create(requester, account)
    [email] = [m for m in mailoutbox if reviewer.email in m.to]
    assert "alice asks to create the role reports-builder in acme-prod" in email.body
    assert f"arn:aws:iam::{account.account_id}:role/reports-builder" in html_of(email)


def test_a_protected_role_is_refused_again_at_apply(
    requester: User, reviewer: User, account: AwsAccount, settings: Any
) -> None:
    role = role_in(account, "platform-admin")
    request = delete(requester, role)
    settings.IAMPORTAL_PROTECTED_ROLES = ["platform-*"]
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_approve(
            request_id=request.pk,
            reviewer=reviewer,
            revision=request.revision,
            findings_acknowledged=True,
        )
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.FAILED
    assert "one of iamportal's own roles" in request.changes.get().error
    assert live(account, "platform-admin") is not None


def test_the_revision_covers_a_creations_payload(requester: User, account: AwsAccount) -> None:
    request = create(requester, account)
    before = revision_of_request(request.pk)
    change = request.changes.get()
    Change.objects.filter(pk=change.pk).update(
        payload={
            **change.payload,
            "managed_policy_arns": ["arn:aws:iam::aws:policy/AdministratorAccess"],
        }
    )
    assert revision_of_request(request.pk) != before


# --- the requests API --------------------------------------------------------------------


def test_the_requests_api_creates_a_role_with_a_dry_run_first(
    requester: User, account: AwsAccount
) -> None:
    arn = f"arn:aws:iam::{account.account_id}:role/reports-builder"
    body = {
        "role": arn,
        "changes": [{"type": "role_create", "payload": create_payload(account)}],
        "justification": "The reports job moves to Lambda.",
        "dry_run": True,
    }
    client = api_client(requester)
    dry = client.post(reverse("api_request_changes_create"), body, content_type="application/json")
    assert dry.status_code == 200, dry.content
    assert dry.json()["role_arn"] == arn
    assert dry.json()["changes"][0]["payload"]["trust_policy"] == LAMBDA_TRUST
    assert not PolicyRequest.objects.exists()

    made = client.post(
        reverse("api_request_changes_create"),
        {**body, "dry_run": False},
        content_type="application/json",
    )
    assert made.status_code == 201, made.content
    assert PolicyRequest.objects.get().role_arn == arn


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ([{"type": "role_create", "payload": {}}], "payload"),
        ([{"type": "role_create", "payload": "x"}], "payload"),
        ([{"type": "role_create", "payload": {"trust_policy": LAMBDA_TRUST}}] * 2, "changes"),
        (
            [
                {
                    "type": "role_create",
                    "target_arn": "arn:aws:iam::111111111111:role/other",
                    "payload": {"trust_policy": LAMBDA_TRUST},
                }
            ],
            "changes",
        ),
    ],
)
def test_the_requests_api_answers_a_bad_creation_with_a_400(
    requester: User, account: AwsAccount, changes: list[Any], key: str
) -> None:
    body = {
        "role": f"arn:aws:iam::{account.account_id}:role/reports-builder",
        "changes": changes,
        "justification": "x",
    }
    response = api_client(requester).post(
        reverse("api_request_changes_create"), body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert key in json.dumps(response.json())
    assert not PolicyRequest.objects.exists()


def test_the_requests_api_deletes_a_role_like_any_change(
    requester: User, account: AwsAccount
) -> None:
    role = source_role(account)
    body = {
        "role": role.arn,
        "changes": [{"type": "role_delete", "payload": {"confirmation": role.name}}],
        "justification": "Unused.",
        "findings_acknowledgement": "Unused since May.",
    }
    response = api_client(requester).post(
        reverse("api_request_changes_create"), body, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["risk"] == "error"
