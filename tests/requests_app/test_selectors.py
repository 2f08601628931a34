"""The requests' access gates, for every member of the cast: which roles a user
may ask changes for (the wizard and the API share it), and which requests a
user may see or review. What a user may not have is 404."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.http import Http404
from django.test import TestCase
from django.urls import reverse

from accounts.models import AwsAccount, IamRole
from requests_app import services
from requests_app.models import PolicyRequest
from requests_app.selectors import request_for_user, requestable_role_for_user
from tests.factories import client_for

pytestmark = pytest.mark.django_db

CAST = ["requester", "reviewer", "admin_user", "outsider"]
DOCUMENT = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}],
}


@pytest.mark.parametrize("member", CAST)
def test_every_signed_in_member_may_ask_for_changes_to_a_role(
    request: pytest.FixtureRequest, member: str, role: IamRole
) -> None:
    user = request.getfixturevalue(member)
    assert requestable_role_for_user(user=user, role_id=role.pk) == role
    assert requestable_role_for_user(user=user, arn=role.arn) == role
    assert requestable_role_for_user(user=user, arn=role.arn.upper()) == role


def test_an_anonymous_visitor_may_ask_for_nothing(role: IamRole) -> None:
    with pytest.raises(Http404):
        requestable_role_for_user(user=AnonymousUser(), role_id=role.pk)
    with pytest.raises(Http404):
        requestable_role_for_user(user=AnonymousUser(), arn=role.arn)


def test_a_role_of_a_disabled_account_or_none_at_all_is_not_found(
    requester: User, role: IamRole, account: AwsAccount
) -> None:
    for missing in ({"role_id": 999_999}, {"arn": ""}, {}, {"arn": role.arn + "-gone"}):
        with pytest.raises(Http404):
            requestable_role_for_user(user=requester, **missing)
    account.enabled = False
    account.save(update_fields=["enabled"])
    with pytest.raises(Http404):
        requestable_role_for_user(user=requester, role_id=role.pk)


def test_the_wizard_and_the_api_answer_a_disabled_accounts_role_alike(
    requester: User, role: IamRole, account: AwsAccount
) -> None:
    account.enabled = False
    account.save(update_fields=["enabled"])
    client = client_for(requester)
    page = client.get(reverse("request_permissions", args=[role.pk]))
    api = client.post(
        "/api/v1/requests",
        {"role": role.arn, "document": DOCUMENT, "justification": "x", "dry_run": True},
        content_type="application/json",
    )
    assert page.status_code == 404
    assert api.status_code == 404
    assert api.json() == {"detail": "No role in the inventory has this id or ARN."}


@pytest.fixture
def submitted(requester: User, role: IamRole) -> PolicyRequest:
    preview = services.policy_request_preview(
        role=role, document=DOCUMENT, justification="Reports.", policy_name="reports"
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        return services.policy_request_submit(requester=requester, preview=preview)


@pytest.mark.parametrize(
    ("member", "sees", "reviews"),
    [
        ("requester", True, False),
        ("reviewer", True, True),
        ("admin_user", True, True),
        ("outsider", False, False),
    ],
)
def test_who_may_see_and_review_a_request(
    request: pytest.FixtureRequest,
    member: str,
    sees: bool,
    reviews: bool,
    submitted: PolicyRequest,
) -> None:
    user = request.getfixturevalue(member)
    for for_review, allowed in ((False, sees), (True, reviews)):
        if allowed:
            found = request_for_user(user=user, pk=submitted.pk, for_review=for_review)
            assert found == submitted
        else:
            with pytest.raises(Http404):
                request_for_user(user=user, pk=submitted.pk, for_review=for_review)


def test_an_anonymous_visitor_sees_no_request(submitted: PolicyRequest) -> None:
    for for_review in (False, True):
        with pytest.raises(Http404):
            request_for_user(user=AnonymousUser(), pk=submitted.pk, for_review=for_review)


def test_a_request_that_does_not_exist_is_not_found(reviewer: User) -> None:
    with pytest.raises(Http404):
        request_for_user(user=reviewer, pk=999_999)
