"""Several approvals per account, editing a pending change, temporary access
(expiry, extension) and cross-account grants. (A crashed worker: test_work_recovery.)"""

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

from accounts.models import AwsAccount, CloudResource, IamRole
from iamportal import aws, demo
from requests_app import services, tasks
from requests_app.models import Change, PolicyRequest
from tests.factories import (
    READ_INVOICES,
    account_create,
    approve,
    client_for,
    flashed,
    inline_names,
    kinds,
    policy_in_aws,
    requiring_two,
    submitted,
)

pytestmark = pytest.mark.django_db


def sweep() -> int:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return tasks.policy_requests_expiry_sweep_task()


# --- several approvals ----------------------------------------------------------------


def test_a_prod_account_needs_two_distinct_reviewers(
    requester: User, reviewer: User, second_reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, requiring_two(role))
    assert request.approvals_required == 2
    request = approve(request, reviewer)
    assert request.status == PolicyRequest.Status.PENDING
    assert "invoices-read" not in inline_names(role)
    with pytest.raises(services.RequestActionRefused, match="already approved"):
        approve(request, reviewer)
    assert request.approvals.count() == 1
    request = approve(request, second_reviewer)
    assert request.status == PolicyRequest.Status.APPLIED
    assert policy_in_aws(role, "invoices-read") == READ_INVOICES
    assert kinds(request).count("approved") == 2


def test_the_request_page_says_how_many_approvals_are_missing(
    requester: User, reviewer: User, second_reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, requiring_two(role))
    client = client_for(reviewer)
    revision = client.get(reverse("request_detail", args=[request.pk])).context["revision"]
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(
            reverse("request_approve", args=[request.pk]), {"revision": revision}
        )
    assert "Your approval is recorded (1 of 2); another reviewer must approve too." in flashed(
        response
    )
    page = client.get(reverse("request_detail", args=[request.pk])).content.decode()
    assert "1 of 2" in page
    assert reverse("request_approve", args=[request.pk]) not in page
    other = client_for(second_reviewer).get(reverse("request_detail", args=[request.pk]))
    assert reverse("request_approve", args=[request.pk]) in other.content.decode()


def test_an_admin_self_approval_counts_once_and_another_reviewer_is_still_needed(
    admin_user: User, reviewer: User, role: IamRole, settings: Any
) -> None:
    settings.IAMPORTAL_ALLOW_ADMIN_SELF_APPROVAL = True
    request = approve(submitted(admin_user, requiring_two(role)), admin_user)
    assert request.status == PolicyRequest.Status.PENDING
    assert request.approvals.get().self_approval
    assert approve(request, reviewer).status == PolicyRequest.Status.APPLIED


def test_a_cross_account_request_needs_the_highest_requirement_of_its_accounts(
    requester: User, role: IamRole
) -> None:
    data = account_create("acme-data", approvals=3)
    bucket_in(data, "acme-exports")
    request = submitted_reading(requester, role, "acme-exports")
    assert request.approvals_required == 3


# --- editing a pending change ---------------------------------------------------------


def test_the_requester_edits_a_pending_change_and_approvals_are_withdrawn(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = approve(submitted(requester, requiring_two(role)), reviewer)
    change = request.changes.get()
    narrower = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::acme-invoices/2026/*",
            }
        ],
    }
    response = client_for(requester).post(
        reverse("change_edit", args=[request.pk, change.pk]),
        {"payload": json.dumps({"policy_name": "invoices-read", "document": narrower})},
    )
    assert response.status_code == 302
    change.refresh_from_db()
    assert change.payload["document"] == narrower
    assert request.approvals.count() == 0
    edited = request.events.get(kind="edited")
    assert "1 approval(s) withdrawn" in edited.message
    assert edited.data["before"]["document"] == READ_INVOICES


def test_a_bad_edit_is_shown_with_the_text_kept_and_nothing_changes(
    requester: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    change = request.changes.get()
    typed = '{"policy_name": "invoices-read", "document": {"Statement": "nope"}}'
    response = client_for(requester).post(
        reverse("change_edit", args=[request.pk, change.pk]), {"payload": typed}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "payload.document" in page
    assert "&quot;nope&quot;" in page
    change.refresh_from_db()
    assert change.payload["document"] == READ_INVOICES
    response = client_for(requester).post(
        reverse("change_edit", args=[request.pk, change.pk]), {"payload": "{not json"}
    )
    assert response.status_code == 400
    assert "This is not valid JSON" in response.content.decode()


def test_only_the_requester_edits_and_only_while_pending(
    requester: User, reviewer: User, outsider: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    change = request.changes.get()
    url = reverse("change_edit", args=[request.pk, change.pk])
    body = {"payload": json.dumps({"policy_name": "x", "document": READ_INVOICES})}
    assert client_for(outsider).post(url, body).status_code == 404
    response = client_for(reviewer).post(url, body)
    assert "Only the requester edits" in " ".join(flashed(response))
    approve(request, reviewer)
    response = client_for(requester).post(url, body)
    assert "only pending requests can be edited" in " ".join(flashed(response))
    change.refresh_from_db()
    assert change.payload["policy_name"] == "invoices-read"
    other = submitted(requester, role, policy_name="second")
    wrong = reverse("change_edit", args=[other.pk, change.pk])
    assert client_for(requester).post(wrong, body).status_code == 404


# --- temporary access -----------------------------------------------------------------


def temporary(requester: User, role: IamRole, hours: int = 8) -> PolicyRequest:
    preview = services.policy_request_preview(
        role=role,
        document=READ_INVOICES,
        justification="Incident 4711.",
        policy_name="invoices-read",
        expires_at=timezone.now() + timedelta(hours=hours),
    )
    return services.policy_request_submit(requester=requester, preview=preview)


def expire_now(request: PolicyRequest) -> None:
    PolicyRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now())


def test_expired_access_is_removed_from_aws_and_the_request_shows_expired(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = approve(temporary(requester, role), reviewer)
    assert policy_in_aws(role, "invoices-read") == READ_INVOICES
    assert sweep() == 0
    expire_now(request)
    assert sweep() == 1
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.EXPIRED
    assert inline_names(role) == []
    role.refresh_from_db()
    assert "invoices-read" not in role.inline_policies
    page = client_for(requester).get(reverse("request_detail", args=[request.pk]))
    assert "Expired" in page.content.decode()
    assert sweep() == 0


def test_when_aws_refuses_the_removal_the_request_stays_applied_and_is_tried_again(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = approve(temporary(requester, role), reviewer)
    expire_now(request)

    # The spoke role cannot be assumed (its trust policy was broken, say).
    def refuse(**kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "trust"}}, "AssumeRole")

    aws.forget_sessions()
    aws.on_hub_call("provide-client-params.sts.AssumeRole", refuse)
    sweep()
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert kinds(request)[-1] == "expiry_failed"
    assert "AccessDenied" in request.events.get(kind="expiry_failed").message
    aws.forget_sessions()  # the trust is fixed
    assert policy_in_aws(role, "invoices-read") == READ_INVOICES
    sweep()
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.EXPIRED


def test_the_requester_extends_before_expiry_and_the_extension_takes_over(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = approve(temporary(requester, role), reviewer)
    old_expiry = request.expires_at
    assert old_expiry is not None
    response = client_for(requester).post(
        reverse("request_extend", args=[request.pk]),
        {"extend_by": "7d", "justification": "The incident is still open."},
    )
    extension = PolicyRequest.objects.get(extends=request)
    assert response["Location"] == reverse("request_detail", args=[extension.pk])
    assert extension.status == PolicyRequest.Status.PENDING
    assert extension.expires_at == old_expiry + timedelta(days=7)
    assert extension.changes.get().payload == request.changes.get().payload
    approve(extension, reviewer)
    request.refresh_from_db()
    extension.refresh_from_db()
    assert extension.status == PolicyRequest.Status.APPLIED
    assert request.status == PolicyRequest.Status.EXPIRED
    assert "Extended by request" in request.events.get(kind="extended").message
    # The old expiry passes: the access stays, the extension holds it.
    expire_now(request)
    sweep()
    assert policy_in_aws(role, "invoices-read") == READ_INVOICES
    expire_now(extension)
    sweep()
    extension.refresh_from_db()
    assert extension.status == PolicyRequest.Status.EXPIRED
    assert "invoices-read" not in inline_names(role)


def test_only_the_requester_extends_and_only_applied_temporary_access(
    requester: User, reviewer: User, outsider: User, role: IamRole
) -> None:
    permanent = approve(submitted(requester, role), reviewer)
    body = {"extend_by": "7d", "justification": "Longer."}
    response = client_for(requester).post(reverse("request_extend", args=[permanent.pk]), body)
    assert "Only applied temporary access can be extended" in " ".join(flashed(response))
    assert not PolicyRequest.objects.filter(extends=permanent).exists()
    request = approve(temporary(requester, role), reviewer)
    url = reverse("request_extend", args=[request.pk])
    assert client_for(outsider).post(url, body).status_code == 404
    response = client_for(reviewer).post(url, body)
    assert "Only the requester" in " ".join(flashed(response))
    response = client_for(requester).post(url, {"extend_by": "7d", "justification": ""})
    assert response.status_code == 400
    assert "Say why you need this access" in response.content.decode()
    client_for(requester).post(url, body)
    response = client_for(requester).post(url, body)
    assert "already waiting for review" in " ".join(flashed(response))
    assert PolicyRequest.objects.filter(extends=request).count() == 1


# --- cross-account --------------------------------------------------------------------


def bucket_in(account: AwsAccount, name: str) -> None:
    aws.client("s3", session=demo.account_session(account.account_id)).create_bucket(Bucket=name)
    CloudResource.objects.create(
        account=account,
        arn=f"arn:aws:s3:::{name}",
        name=name,
        type=CloudResource.Type.S3,
        region="us-east-1",
        content_hash="x",
        synced_at=timezone.now(),
    )


def submitted_reading(requester: User, role: IamRole, bucket: str, **extra: Any) -> PolicyRequest:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadExports",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }
    preview = services.policy_request_preview(
        role=role,
        document=document,
        justification="Read the exports.",
        policy_name="exports-read",
        **extra,
    )
    return services.policy_request_submit(requester=requester, preview=preview)


def bucket_policy(account: AwsAccount, name: str) -> dict[str, Any] | None:
    s3 = aws.client("s3", session=demo.account_session(account.account_id))
    try:
        return dict(json.loads(s3.get_bucket_policy(Bucket=name)["Policy"]))
    except s3.exceptions.ClientError:
        return None


def test_a_cross_account_read_applies_the_role_policy_and_the_bucket_policy(
    requester: User, reviewer: User, role: IamRole
) -> None:
    data = account_create("acme-data")
    bucket_in(data, "acme-exports")
    request = submitted_reading(
        requester, role, "acme-exports", expires_at=timezone.now() + timedelta(days=1)
    )
    inline, automatic = request.changes.order_by("position")
    assert (inline.type, inline.account_id, inline.automatic) == (
        Change.Type.INLINE_POLICY_PUT,
        role.account.account_id,
        False,
    )
    assert (automatic.type, automatic.account_id, automatic.automatic) == (
        Change.Type.RESOURCE_POLICY_PUT,
        data.account_id,
        True,
    )
    assert "acme-exports" in automatic.note
    page = client_for(reviewer).get(reverse("request_detail", args=[request.pk])).content
    assert b"Added for cross-account access" in page
    assert b"arn:aws:s3:::acme-exports (none yet)" in page  # no bucket policy so far

    request = approve(request, reviewer)
    assert request.status == PolicyRequest.Status.APPLIED
    assert policy_in_aws(role, "exports-read")["Statement"][0]["Sid"] == "ReadExports"
    policy = bucket_policy(data, "acme-exports")
    assert policy is not None
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"AWS": role.arn}
    assert statement["Action"] in ("s3:GetObject", ["s3:GetObject"])
    assert statement["Sid"].endswith(f"R{request.pk}")

    expire_now(request)
    sweep()
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.EXPIRED
    assert bucket_policy(data, "acme-exports") is None


def test_the_requester_cannot_edit_an_automatic_change(requester: User, role: IamRole) -> None:
    data = account_create("acme-data")
    bucket_in(data, "acme-exports")
    request = submitted_reading(requester, role, "acme-exports")
    automatic = request.changes.get(automatic=True)
    with pytest.raises(services.RequestActionRefused, match="cross-account grant"):
        services.change_edit(change_id=automatic.pk, editor=requester, payload=automatic.payload)


def test_an_extension_cannot_be_edited(requester: User, reviewer: User, role: IamRole) -> None:
    request = approve(temporary(requester, role), reviewer)
    assert request.expires_at is not None
    extension = services.policy_request_extend(
        request_id=request.pk,
        requester=requester,
        expires_at=request.expires_at + timedelta(days=1),
        justification="Still needed.",
    )
    change = extension.changes.get()
    with pytest.raises(services.RequestActionRefused, match="An extension keeps the access"):
        services.change_edit(change_id=change.pk, editor=requester, payload=change.payload)


def test_a_request_changes_only_its_role_s_account(requester: User, role: IamRole) -> None:
    data = account_create("acme-data")
    bucket_in(data, "acme-exports")
    statement = {
        "Sid": "Mine",
        "Effect": "Allow",
        "Principal": {"AWS": role.arn},
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::acme-exports/*",
    }
    with pytest.raises(services.RequestInvalid) as caught:
        services.policy_request_changes_submit(
            requester=requester,
            role=role,
            changes=[
                {
                    "type": "resource_policy_put",
                    "target_arn": "arn:aws:s3:::acme-exports",
                    "payload": {"statements": [statement]},
                }
            ],
            justification="Exports.",
        )
    assert (
        "a request changes only its role's account" in caught.value.errors["changes[0].target_arn"]
    )
    assert not PolicyRequest.objects.exists()


def test_iamportal_s_spoke_role_cannot_be_requested(requester: User, role: IamRole) -> None:
    spoke = IamRole.objects.create(
        account=role.account,
        arn=role.account.spoke_role_arn,
        name=role.account.spoke_role_arn.rsplit("/", 1)[-1],
        content_hash="x",
        synced_at=timezone.now(),
    )
    with pytest.raises(services.RequestInvalid) as caught:
        services.policy_request_preview(
            role=spoke, document=READ_INVOICES, justification="More power."
        )
    assert "iamportal's own roles" in caught.value.errors["role"]


def test_temporary_access_of_a_failed_request_is_removed_at_expiry(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = temporary(requester, role)
    # A second change that AWS refuses: the first is applied, the request fails.
    Change.objects.create(
        request=request,
        position=1,
        type=Change.Type.MANAGED_POLICY_ATTACH,
        target_arn=role.arn,
        account_id=role.account.account_id,
        payload={"policy_arn": f"arn:aws:iam::{role.account.account_id}:policy/not-there"},
    )
    request = approve(request, reviewer)
    assert request.status == PolicyRequest.Status.FAILED
    assert policy_in_aws(role, "invoices-read") == READ_INVOICES
    expire_now(request)
    sweep()
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.EXPIRED
    assert inline_names(role) == []


def test_nothing_is_applied_in_a_disabled_account(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    AwsAccount.objects.filter(pk=role.account_id).update(enabled=False)
    request = approve(request, reviewer)
    assert request.status == PolicyRequest.Status.FAILED
    assert "disabled" in request.changes.get().error
    assert inline_names(role) == []


def test_a_spoke_role_that_cannot_be_assumed_fails_the_request_until_fixed_and_retried(
    requester: User, reviewer: User, role: IamRole
) -> None:
    def refuse(**kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "trust"}}, "AssumeRole")

    request = submitted(requester, role)
    aws.forget_sessions()
    aws.on_hub_call("provide-client-params.sts.AssumeRole", refuse)
    request = approve(request, reviewer)
    assert request.status == PolicyRequest.Status.FAILED
    error = request.changes.get().error
    assert error.startswith(f"Could not assume the spoke role {role.account.spoke_role_arn}")
    assert "AccessDenied" in error
    page = client_for(reviewer).get(reverse("request_detail", args=[request.pk])).content.decode()
    assert "Could not assume the spoke role" in page
    aws.forget_sessions()  # the trust is fixed
    with TestCase.captureOnCommitCallbacks(execute=True):
        services.policy_request_retry(request_id=request.pk, reviewer=reviewer)
    request.refresh_from_db()
    assert request.status == PolicyRequest.Status.APPLIED
    assert policy_in_aws(role, "invoices-read") == READ_INVOICES


def test_two_requests_of_the_same_day_get_different_policy_names(
    requester: User, role: IamRole
) -> None:
    names = []
    for _ in range(2):
        preview = services.policy_request_preview(
            role=role, document=READ_INVOICES, justification="Invoices."
        )
        services.policy_request_submit(requester=requester, preview=preview)
        names.append(preview.policy_name)
    assert names[0] != names[1]


def test_the_review_queue_shows_how_far_each_request_is_approved(
    requester: User, reviewer: User, second_reviewer: User, role: IamRole
) -> None:
    approve(submitted(requester, requiring_two(role)), reviewer)
    page = client_for(second_reviewer).get(reverse("request_queue"))
    assert [(r.approvals_given, r.approvals_required) for r in page.context["page"]] == [(1, 2)]
    assert "1 of 2" in page.content.decode()


def test_a_reviewer_on_someone_else_s_request_is_in_the_review_section(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = submitted(requester, role)
    url = reverse("request_detail", args=[request.pk])
    review = client_for(reviewer).get(url).content.decode()
    assert 'href="/requests/review/" class="active"' in review
    mine = client_for(requester).get(url).content.decode()
    assert 'href="/requests/" class="active"' in mine


def test_temporary_access_never_overlaps_another_live_request_on_the_same_thing(
    requester: User, reviewer: User, role: IamRole
) -> None:
    request = approve(temporary(requester, role), reviewer)
    # A permanent request for the same inline policy would be undone at expiry.
    with pytest.raises(services.RequestInvalid) as caught:
        submitted(requester, role)
    message = caught.value.errors["policy_name"]
    assert f"Request #{request.pk} (applied) changes the same inline policy until" in message
    # Another policy name is another thing.
    submitted(requester, role, policy_name="other-name")
    # Once it has expired, the name is free again.
    expire_now(request)
    sweep()
    assert submitted(requester, role).status == PolicyRequest.Status.PENDING


def test_a_temporary_request_waits_for_a_pending_permanent_one_on_the_same_tag(
    requester: User, role: IamRole
) -> None:
    tag = {"type": "tags_put", "payload": {"tags": {"Team": "payments"}}}
    services.policy_request_changes_submit(
        requester=requester, role=role, changes=[tag], justification="Ownership."
    )
    with pytest.raises(services.RequestInvalid) as caught:
        services.policy_request_changes_submit(
            requester=requester,
            role=role,
            changes=[{"type": "tags_put", "payload": {"tags": {"team": "incident"}}}],
            justification="Briefly.",
            expires_at=timezone.now() + timedelta(hours=1),
        )
    assert "changes the same tag" in caught.value.errors["changes"]


def test_an_edit_may_not_move_onto_what_temporary_access_holds(
    requester: User, reviewer: User, role: IamRole
) -> None:
    held = approve(temporary(requester, role), reviewer)
    other = submitted(requester, role, policy_name="other-name")
    change = other.changes.get()
    with pytest.raises(services.RequestInvalid) as caught:
        services.change_edit(
            change_id=change.pk,
            editor=requester,
            payload={"policy_name": "invoices-read", "document": READ_INVOICES},
        )
    assert f"Request #{held.pk}" in caught.value.errors["payload"]


def test_the_queue_filtered_by_account_includes_requests_that_change_it(
    requester: User, reviewer: User, role: IamRole
) -> None:
    data = account_create("acme-data")
    bucket_in(data, "acme-exports")
    request = submitted_reading(requester, role, "acme-exports")
    page = client_for(reviewer).get(reverse("request_queue"), {"account": data.account_id})
    assert [r.pk for r in page.context["page"]] == [request.pk]
    api = client_for(reviewer).get("/api/v1/requests", {"scope": "all", "account": data.account_id})
    assert [r["id"] for r in api.json()] == [request.pk]
