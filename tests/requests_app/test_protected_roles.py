"""iamportal's own roles (every account's spoke role and IAMPORTAL_PROTECTED_ROLES)
cannot be reached by a request: not directly, not through a managed policy they
use (attached or as their permissions boundary), not with another spelling of
their name; and the pages say which roles they are."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import TestCase
from django.urls import reverse

from accounts.models import AwsAccount, IamRole
from accounts.selectors import role_protected
from accounts.services import account_add
from requests_app import services
from requests_app.models import Change, PolicyRequest
from tests.factories import ECS_TRUST, admin_iam, client_for, synced

pytestmark = pytest.mark.django_db

SPOKE = "iamportal-spoke"
SEND_JOBS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "sqs:SendMessage",
            "Resource": "arn:aws:sqs:us-east-1:111111111111:jobs",
        }
    ],
}
# What an attacker would put in a policy the spoke role uses.
EVERYTHING = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}],
}
READ_INVOICES = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acme-invoices/*"}
    ],
}


def iam(account: AwsAccount) -> Any:
    return admin_iam(account.account_id)


def role_named(account: AwsAccount, name: str) -> IamRole:
    return IamRole.objects.get(account=account, name=name)


@pytest.fixture
def payments(account: AwsAccount) -> IamRole:
    """payments-api, a role anyone may ask changes for, synced with the spoke role."""
    iam(account).create_role(RoleName="payments-api", AssumeRolePolicyDocument=ECS_TRUST)
    synced(account)
    return role_named(account, "payments-api")


def customer_policy(account: AwsAccount, name: str) -> str:
    created = iam(account).create_policy(PolicyName=name, PolicyDocument=json.dumps(SEND_JOBS))
    return str(created["Policy"]["Arn"])


def new_version(policy_arn: str, document: dict[str, Any] = EVERYTHING) -> dict[str, Any]:
    return {
        "type": "managed_policy_version",
        "target_arn": policy_arn,
        "payload": {"document": document},
    }


def submit(requester: User, role: IamRole, *changes: dict[str, Any]) -> PolicyRequest:
    created = services.policy_request_changes_submit(
        requester=requester, role=role, changes=list(changes), justification="Rotate jobs."
    )
    assert isinstance(created, PolicyRequest)
    return created


def refused_at_submit(requester: User, role: IamRole, *changes: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(services.RequestInvalid) as caught:
        submit(requester, role, *changes)
    assert not PolicyRequest.objects.exists()
    return caught.value.errors


def approve(request: PolicyRequest, reviewer: User) -> PolicyRequest:
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_approve(
            request_id=request.pk, reviewer=reviewer, revision=request.revision
        )
    request.refresh_from_db()
    return request


def versions(account: AwsAccount, policy_arn: str) -> list[tuple[str, bool]]:
    listed = iam(account).list_policy_versions(PolicyArn=policy_arn)["Versions"]
    return sorted((v["VersionId"], v["IsDefaultVersion"]) for v in listed)


def inline_policies(account: AwsAccount, name: str) -> list[str]:
    return list(iam(account).list_role_policies(RoleName=name)["PolicyNames"])


# --- a managed policy the spoke role uses ---------------------------------------------


def test_a_new_version_of_a_policy_attached_to_the_spoke_role_is_refused_at_submit(
    requester: User, account: AwsAccount
) -> None:
    arn = customer_policy(account, "jobs-send")
    iam(account).attach_role_policy(RoleName=SPOKE, PolicyArn=arn)
    iam(account).create_role(RoleName="payments-api", AssumeRolePolicyDocument=ECS_TRUST)
    synced(account)
    # Filed "about" another role, as the attack was.
    errors = refused_at_submit(requester, role_named(account, "payments-api"), new_version(arn))
    message = errors["changes[0].target_arn"]
    assert "attached to role iamportal-spoke" in message
    assert "iamportal's own roles" in message


def test_a_new_version_of_a_policy_that_is_the_spoke_role_s_boundary_is_refused_at_submit(
    requester: User, account: AwsAccount
) -> None:
    arn = customer_policy(account, "spoke-boundary")
    iam(account).put_role_permissions_boundary(RoleName=SPOKE, PermissionsBoundary=arn)
    iam(account).create_role(RoleName="payments-api", AssumeRolePolicyDocument=ECS_TRUST)
    synced(account)
    errors = refused_at_submit(requester, role_named(account, "payments-api"), new_version(arn))
    assert "the permissions boundary of role iamportal-spoke" in errors["changes[0].target_arn"]


def test_a_policy_attached_to_the_spoke_role_after_submission_is_refused_at_apply(
    requester: User, reviewer: User, payments: IamRole
) -> None:
    account = payments.account
    arn = customer_policy(account, "jobs-send")
    synced(account)
    request = submit(
        requester,
        payments,
        {
            "type": "inline_policy_put",
            "payload": {"policy_name": "invoices", "document": READ_INVOICES},
        },
        new_version(arn),
    )
    # Attached by hand since: the inventory does not know.
    iam(account).attach_role_policy(RoleName=SPOKE, PolicyArn=arn)
    request = approve(request, reviewer)
    assert request.status == PolicyRequest.Status.FAILED
    version = request.changes.get(type=Change.Type.MANAGED_POLICY_VERSION)
    assert version.status == Change.Status.FAILED
    assert "now, in AWS, attached to role iamportal-spoke" in version.error
    assert "Nothing was changed" in version.error
    # Nothing of the request was written, not even the change before it.
    assert versions(account, arn) == [("v1", True)]
    assert inline_policies(account, "payments-api") == []
    assert request.changes.get(type=Change.Type.INLINE_POLICY_PUT).status == Change.Status.PENDING


def test_a_policy_made_the_spoke_role_s_boundary_after_submission_is_refused_at_apply(
    requester: User, reviewer: User, payments: IamRole
) -> None:
    account = payments.account
    arn = customer_policy(account, "jobs-send")
    synced(account)
    request = submit(requester, payments, new_version(arn))
    iam(account).put_role_permissions_boundary(RoleName=SPOKE, PermissionsBoundary=arn)
    request = approve(request, reviewer)
    assert request.status == PolicyRequest.Status.FAILED
    error = request.changes.get().error
    assert "the permissions boundary of role iamportal-spoke" in error
    assert versions(account, arn) == [("v1", True)]


def test_a_policy_only_other_roles_use_gets_its_new_version(
    requester: User, reviewer: User, payments: IamRole
) -> None:
    account = payments.account
    arn = customer_policy(account, "jobs-send")
    iam(account).attach_role_policy(RoleName="payments-api", PolicyArn=arn)
    synced(account)
    request = approve(
        submit(requester, role_named(account, "payments-api"), new_version(arn)), reviewer
    )
    assert request.status == PolicyRequest.Status.APPLIED
    assert versions(account, arn) == [("v1", False), ("v2", True)]


def test_a_policy_used_by_a_protected_role_in_aws_only_under_another_case_is_refused_at_apply(
    requester: User, reviewer: User, payments: IamRole
) -> None:
    account = payments.account
    arn = customer_policy(account, "jobs-send")
    synced(account)
    request = submit(requester, payments, new_version(arn))
    # Neither in the inventory nor spelled as IAMPORTAL_PROTECTED_ROLES spells it.
    iam(account).create_role(RoleName="IAMPORTAL-Deployer", AssumeRolePolicyDocument=ECS_TRUST)
    iam(account).attach_role_policy(RoleName="IAMPORTAL-Deployer", PolicyArn=arn)
    request = approve(request, reviewer)
    assert request.status == PolicyRequest.Status.FAILED
    assert "attached to role IAMPORTAL-Deployer" in request.changes.get().error
    assert versions(account, arn) == [("v1", True)]


# --- names in any case ----------------------------------------------------------------


def test_protected_names_ignore_case(account: AwsAccount, settings: Any) -> None:
    base = f"arn:aws:iam::{account.account_id}:role"
    assert role_protected(f"{base}/IAMPORTAL-Spoke")
    assert role_protected(f"{base}/some/path/Iamportal-Hub")
    assert not role_protected(f"{base}/payments-api")
    settings.IAMPORTAL_PROTECTED_ROLES = ["Platform-*", "/IAMPORTAL/*"]
    assert role_protected(f"{base}/platform-admin")
    assert role_protected(f"{base}/iamportal/deployer")
    assert not role_protected(f"{base}/teams/deployer")
    # The spoke role stays protected whatever the setting says, in any case.
    assert role_protected(f"{base}/IAMPORTAL-SPOKE")
    other = account_add(account_id="222233334444", name="acme-dev", spoke_role_name="Portal-Spoke")
    assert role_protected(f"arn:aws:iam::{other.account_id}:role/portal-spoke")
    assert not role_protected(f"arn:aws:iam::{other.account_id}:role/iamportal-spoke-x")


@pytest.mark.parametrize(
    "change",
    [
        {
            "type": "managed_policy_attach",
            "payload": {"policy_arn": "arn:aws:iam::aws:policy/AdministratorAccess"},
        },
        {
            "type": "managed_policy_detach",
            "payload": {"policy_arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
        },
        {"type": "tags_put", "payload": {"tags": {"iamportal-authorized": "everyone"}}},
        {"type": "permissions_boundary_delete", "payload": {}},
        {"type": "inline_policy_put", "payload": {"policy_name": "more", "document": EVERYTHING}},
    ],
)
def test_a_mixed_case_protected_role_is_refused_as_the_target_of_any_change(
    requester: User, payments: IamRole, change: dict[str, Any]
) -> None:
    account = payments.account
    iam(account).create_role(RoleName="IAMPORTAL-Deployer", AssumeRolePolicyDocument=ECS_TRUST)
    synced(account)
    deployer = role_named(account, "IAMPORTAL-Deployer")
    # About the role itself, or about another role and naming it.
    errors = refused_at_submit(requester, deployer, change)
    assert "iamportal's own roles" in errors["role"]
    errors = refused_at_submit(requester, payments, {**change, "target_arn": deployer.arn})
    assert "iamportal's own roles" in errors["changes[0].target_arn"]


def test_a_change_to_a_role_protected_since_submission_is_refused_at_apply(
    requester: User, reviewer: User, payments: IamRole, settings: Any
) -> None:
    request = submit(
        requester,
        payments,
        {"type": "tags_put", "payload": {"tags": {"team": "payments"}}},
    )
    settings.IAMPORTAL_PROTECTED_ROLES = ["iamportal-*", "PAYMENTS-*"]
    request = approve(request, reviewer)
    assert request.status == PolicyRequest.Status.FAILED
    assert "Role payments-api is one of iamportal's own roles" in request.changes.get().error
    assert iam(payments.account).list_role_tags(RoleName="payments-api")["Tags"] == []


def test_the_api_refuses_a_request_about_a_protected_role_with_a_400(
    requester: User, payments: IamRole
) -> None:
    spoke = role_named(payments.account, SPOKE)
    client = client_for(requester)
    # Named in another case, and asking for nothing about the role itself.
    response = client.post(
        reverse("api_request_changes_create"),
        {
            "role": spoke.arn.replace(SPOKE, SPOKE.upper()),
            "changes": [new_version(customer_policy(payments.account, "jobs-send"))],
            "justification": "Rotate.",
        },
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "iamportal's own roles" in response.json()["detail"]
    response = client.post(
        reverse("api_requests"),
        {
            "role": str(spoke.pk),
            "document": READ_INVOICES,
            "justification": "More.",
            "dry_run": True,
        },
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith("role: Role iamportal-spoke is one of iamportal's")
    assert not PolicyRequest.objects.exists()


# --- the pages ------------------------------------------------------------------------


def test_step_one_does_not_offer_protected_roles_and_says_why(
    requester: User, payments: IamRole
) -> None:
    client = client_for(requester)
    response = client.get(reverse("request_new"), {"q": "i"})
    page = response.content.decode()
    spoke = role_named(payments.account, SPOKE)
    assert reverse("request_permissions", args=[payments.pk]) in page
    assert reverse("request_permissions", args=[spoke.pk]) not in page
    assert "Not offered" in page and "managed by iamportal" in page


@pytest.mark.parametrize(
    ("method", "name", "extra"),
    [
        ("get", "request_permissions", []),
        ("post", "request_permission_add", []),
        ("get", "request_editor", []),
        ("post", "request_review", []),
        ("post", "request_permission_remove", [0]),
    ],
)
def test_a_protected_role_posted_to_the_wizard_anyway_gets_a_form_error(
    requester: User, payments: IamRole, method: str, name: str, extra: list[int]
) -> None:
    spoke = role_named(payments.account, SPOKE)
    client = client_for(requester)
    url = reverse(name, args=[spoke.pk, *extra])
    response = getattr(client, method)(url, {"service": "s3", "justification": "More."})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Role iamportal-spoke is one of iamportal&#x27;s own roles" in page
    assert "Choose another role" in page
    assert not PolicyRequest.objects.exists()


def test_role_pages_mark_protected_roles(requester: User, payments: IamRole) -> None:
    client = client_for(requester)
    spoke_page = client.get(
        reverse("role_detail", args=[payments.account.account_id, SPOKE])
    ).content.decode()
    assert "managed by iamportal" in spoke_page
    assert "Request permissions" not in spoke_page
    payments_page = client.get(
        reverse("role_detail", args=[payments.account.account_id, "payments-api"])
    ).content.decode()
    assert "managed by iamportal" not in payments_page
    listing = client.get(reverse("role_list"), {"q": "-"}).content.decode()
    assert listing.count("managed by iamportal</span>") == 1


def test_the_review_page_names_every_role_a_new_policy_version_reaches(
    requester: User, reviewer: User, payments: IamRole
) -> None:
    account = payments.account
    arn = customer_policy(account, "jobs-send")
    iam(account).create_role(RoleName="orders-api", AssumeRolePolicyDocument=ECS_TRUST)
    iam(account).create_role(RoleName="batch", AssumeRolePolicyDocument=ECS_TRUST)
    iam(account).attach_role_policy(RoleName="orders-api", PolicyArn=arn)
    iam(account).attach_role_policy(RoleName="payments-api", PolicyArn=arn)
    iam(account).put_role_permissions_boundary(RoleName="batch", PermissionsBoundary=arn)
    iam(account).create_group(GroupName="ops")
    iam(account).attach_group_policy(GroupName="ops", PolicyArn=arn)
    synced(account)
    request = submit(
        requester, role_named(account, "payments-api"), new_version(arn, READ_INVOICES)
    )
    page = client_for(reviewer).get(reverse("request_detail", args=[request.pk])).content.decode()
    text = " ".join(page.split())
    assert "This policy is attached to:" in text
    assert "orders-api</a> (acme-prod), role <a" in text
    assert "payments-api</a> (acme-prod), and 1 more user or group" in text
    assert "It is the permissions boundary of:" in text
    assert "batch</a> (acme-prod)." in text
