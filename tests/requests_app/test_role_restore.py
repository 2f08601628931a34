"""Restoring a recorded version of a role: the request it files, its review and
its apply, and who may file it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from accounts.models import AwsAccount, IamRole, RoleVersion
from requests_app.models import PolicyRequest
from tests.factories import (
    OTHER_DOCUMENT,
    READ_INVOICES,
    admin_iam,
    approve,
    client_for,
    inline_names,
    policy_in_aws,
    submitted,
    sync,
)

pytestmark = pytest.mark.django_db

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


def _iam(role: IamRole) -> Any:
    return admin_iam(role.account.account_id)


def _latest(role: IamRole, part: str, key: str = "") -> RoleVersion:
    version = RoleVersion.objects.filter(role__arn=role.arn, part=part, key=key).order_by("-pk")
    found = version.first()
    assert found is not None
    return found


def _restore_url(role: IamRole, version: RoleVersion) -> str:
    return reverse("role_version_restore", args=[role.account.account_id, role.name, version.pk])


def _restore(user: User, role: IamRole, version: RoleVersion) -> PolicyRequest:
    """File the restore from its page, as `user`."""
    response = client_for(user).post(
        _restore_url(role, version), {"justification": "The last change broke the exports."}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    request = PolicyRequest.objects.order_by("-pk").first()
    assert request is not None
    assert response["Location"] == reverse("request_detail", args=[request.pk])
    return request


def test_a_change_applied_by_a_request_is_recorded_with_its_number(
    role: IamRole, requester: User, reviewer: User
) -> None:
    sync(role.account)
    request = approve(submitted(requester, role), reviewer)
    assert request.status == PolicyRequest.Status.APPLIED
    version = _latest(role, "inline", "invoices-read")
    assert version.source == RoleVersion.Source.REQUEST
    assert version.request_number == request.pk
    assert version.document == READ_INVOICES
    page = client_for(requester).get(
        reverse("role_history", args=[role.account.account_id, role.name])
    )
    assert f"iamportal request #{request.pk}" in page.content.decode()
    # The sync after the apply sees nothing new.
    count = RoleVersion.objects.count()
    sync(role.account)
    assert RoleVersion.objects.count() == count


def test_restoring_an_inline_policy_puts_the_old_document_back(
    role: IamRole, requester: User, reviewer: User
) -> None:
    sync(role.account)
    approve(submitted(requester, role), reviewer)
    good = _latest(role, "inline", "invoices-read")
    _iam(role).put_role_policy(
        RoleName=role.name, PolicyName="invoices-read", PolicyDocument=json.dumps(OTHER_DOCUMENT)
    )
    sync(role.account)
    assert _latest(role, "inline", "invoices-read").source == RoleVersion.Source.OUTSIDE

    page = client_for(requester).get(_restore_url(role, good))
    assert page.status_code == 200
    html = page.content.decode()
    assert "invoices-read (restored)" in html
    assert "s3:GetObject" in html

    restore = _restore(requester, role, good)
    assert restore.status == PolicyRequest.Status.PENDING
    assert list(restore.changes.values_list("type", flat=True)) == ["inline_policy_put"]
    assert "Restore the inline policy invoices-read" in restore.justification
    assert policy_in_aws(role, "invoices-read") == OTHER_DOCUMENT  # nothing before review
    applied = approve(restore, reviewer)
    assert applied.status == PolicyRequest.Status.APPLIED
    assert policy_in_aws(role, "invoices-read") == READ_INVOICES
    latest = _latest(role, "inline", "invoices-read")
    assert (latest.document, latest.request_number) == (READ_INVOICES, restore.pk)


def test_restoring_a_deleted_inline_policy_puts_it_back(
    role: IamRole, requester: User, reviewer: User
) -> None:
    _iam(role).put_role_policy(
        RoleName=role.name, PolicyName="exports", PolicyDocument=json.dumps(READ_INVOICES)
    )
    sync(role.account)
    before = _latest(role, "inline", "exports")
    _iam(role).delete_role_policy(RoleName=role.name, PolicyName="exports")
    sync(role.account)
    deleted = _latest(role, "inline", "exports")
    assert deleted.document is None

    approve(_restore(requester, role, before), reviewer)
    assert policy_in_aws(role, "exports") == READ_INVOICES

    # Restoring the deleted version deletes the policy again.
    restore = _restore(requester, role, deleted)
    assert list(restore.changes.values_list("type", flat=True)) == ["inline_policy_delete"]
    approve(restore, reviewer)
    assert "exports" not in inline_names(role)
    assert _latest(role, "inline", "exports").document is None


def test_restoring_the_trust_policy_puts_the_old_one_back(
    role: IamRole, requester: User, reviewer: User
) -> None:
    sync(role.account)
    baseline = _latest(role, "trust")
    _iam(role).update_assume_role_policy(
        RoleName=role.name, PolicyDocument=json.dumps(LAMBDA_TRUST)
    )
    sync(role.account)
    assert _latest(role, "trust").document == LAMBDA_TRUST

    restore = _restore(requester, role, baseline)
    assert list(restore.changes.values_list("type", flat=True)) == ["trust_policy_update"]
    approve(restore, reviewer)
    trust = _iam(role).get_role(RoleName=role.name)["Role"]["AssumeRolePolicyDocument"]
    assert trust == baseline.document
    assert trust["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}


def test_restoring_tags_puts_back_changed_values_and_removes_new_keys(
    role: IamRole, requester: User, reviewer: User
) -> None:
    iam = _iam(role)
    iam.tag_role(RoleName=role.name, Tags=[{"Key": "team", "Value": "payments"}])
    sync(role.account)
    old = _latest(role, "tags")
    iam.tag_role(
        RoleName=role.name,
        Tags=[{"Key": "team", "Value": "growth"}, {"Key": "owner", "Value": "oscar"}],
    )
    sync(role.account)

    restore = _restore(requester, role, old)
    assert sorted(restore.changes.values_list("type", "payload")) == [
        ("tags_delete", {"keys": ["owner"]}),
        ("tags_put", {"tags": {"team": "payments"}}),
    ]
    approve(restore, reviewer)
    tags = iam.list_role_tags(RoleName=role.name)["Tags"]
    assert tags == [{"Key": "team", "Value": "payments"}]


def test_restoring_attached_managed_policies_reaches_the_old_set(
    role: IamRole, requester: User, reviewer: User
) -> None:
    iam = _iam(role)
    first = iam.create_policy(PolicyName="first", PolicyDocument=json.dumps(READ_INVOICES))
    second = iam.create_policy(PolicyName="second", PolicyDocument=json.dumps(OTHER_DOCUMENT))
    first_arn, second_arn = first["Policy"]["Arn"], second["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=role.name, PolicyArn=first_arn)
    sync(role.account)
    old = _latest(role, "managed")
    iam.detach_role_policy(RoleName=role.name, PolicyArn=first_arn)
    iam.attach_role_policy(RoleName=role.name, PolicyArn=second_arn)
    sync(role.account)

    restore = _restore(requester, role, old)
    assert sorted(restore.changes.values_list("type", flat=True)) == [
        "managed_policy_attach",
        "managed_policy_detach",
    ]
    approve(restore, reviewer)
    attached = iam.list_attached_role_policies(RoleName=role.name)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [first_arn]


def test_a_restore_needs_a_justification(role: IamRole, requester: User) -> None:
    sync(role.account)
    _iam(role).update_assume_role_policy(
        RoleName=role.name, PolicyDocument=json.dumps(LAMBDA_TRUST)
    )
    sync(role.account)
    baseline = RoleVersion.objects.filter(role__arn=role.arn, part="trust").order_by("pk").first()
    assert baseline is not None
    response = client_for(requester).post(_restore_url(role, baseline), {"justification": " "})
    assert response.status_code == 400
    assert "Say why" in response.content.decode()
    assert not PolicyRequest.objects.exists()


def test_restoring_the_version_the_role_has_files_nothing(role: IamRole, requester: User) -> None:
    sync(role.account)
    current = _latest(role, "trust")
    client = client_for(requester)
    page = client.get(_restore_url(role, current))
    assert page.status_code == 200
    assert "nothing to restore" in page.content.decode()
    response = client.post(_restore_url(role, current), {"justification": "Just in case."})
    assert response.status_code == 400
    assert not PolicyRequest.objects.exists()


# --- who may restore ---------------------------------------------------------------------


@pytest.mark.parametrize("who", ["requester", "reviewer", "admin_user", "outsider"])
def test_every_signed_in_user_may_ask_for_a_restore_as_for_any_change(
    role: IamRole, who: str, request: pytest.FixtureRequest
) -> None:
    sync(role.account)
    _iam(role).update_assume_role_policy(
        RoleName=role.name, PolicyDocument=json.dumps(LAMBDA_TRUST)
    )
    sync(role.account)
    baseline = RoleVersion.objects.filter(role__arn=role.arn, part="trust").order_by("pk").first()
    assert baseline is not None
    user = request.getfixturevalue(who)
    assert client_for(user).get(_restore_url(role, baseline)).status_code == 200
    restore = _restore(user, role, baseline)
    assert restore.requester == user
    assert restore.status == PolicyRequest.Status.PENDING


def test_anonymous_visitors_of_a_restore_go_to_the_login_page(
    role: IamRole, anonymous: Client
) -> None:
    sync(role.account)
    version = _latest(role, "trust")
    for response in (
        anonymous.get(_restore_url(role, version)),
        anonymous.post(_restore_url(role, version), {"justification": "x"}),
    ):
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert not PolicyRequest.objects.exists()


def test_a_version_of_another_role_or_of_a_disabled_account_is_not_found(
    role: IamRole, account: AwsAccount, requester: User
) -> None:
    sync(role.account)
    version = _latest(role, "trust")
    client = client_for(requester)
    other = reverse(
        "role_version_restore",
        args=[account.account_id, "OrganizationAccountAccessRole", version.pk],
    )
    assert client.get(other).status_code == 404
    assert (
        client.get(_restore_url(role, version).replace(f"/{version.pk}/", "/999999/")).status_code
        == 404
    )
    AwsAccount.objects.filter(pk=account.pk).update(enabled=False)
    history = reverse("role_history", args=[account.account_id, role.name])
    assert client.get(history).status_code == 200
    assert client.get(_restore_url(role, version)).status_code == 404
    response = client.post(_restore_url(role, version), {"justification": "Please."})
    assert response.status_code == 404
    assert not PolicyRequest.objects.exists()
