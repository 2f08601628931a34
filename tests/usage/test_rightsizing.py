"""Right-sizing: exemptions, the notice and its timing, the removal requests of
each mode, and stale data never acted on."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.utils import timezone

from accounts.models import AwsAccount, IamRole, RoleVersion
from accounts.usage import rightsizing
from accounts.usage.models import AdvisorRun, RemovalNotice, RightsizingPolicy
from iamportal import embedded_advisor
from requests_app.models import Change, PolicyRequest
from requests_app.services import role_version_restore_submit
from tests.factories import advisor_pass, approve, days_ago, inline_names, policy_in_aws, sync

pytestmark = pytest.mark.django_db


@pytest.fixture
def unused(role: IamRole) -> IamRole:
    """payments-api uses S3 reads, never wrote an object, never sent to SQS."""
    embedded_advisor.usage_set(
        role.arn,
        {"s3": days_ago(3), "s3:GetObject": days_ago(3), "s3:PutObject": None, "sqs": None},
    )
    return role


def policy(mode: str = "request", **fields: Any) -> RightsizingPolicy:
    return RightsizingPolicy.objects.create(mode=mode, **fields)


def notice_of(role: IamRole) -> RemovalNotice | None:
    return RemovalNotice.objects.filter(role=role, status=RemovalNotice.Status.PENDING).first()


def notice_runs_out(role: IamRole) -> None:
    RemovalNotice.objects.filter(role=role).update(
        remove_after=timezone.now() - timedelta(minutes=1)
    )


def removal_request(role: IamRole) -> PolicyRequest | None:
    return PolicyRequest.objects.filter(
        role=role, requester__username="iamportal-rightsizing"
    ).first()


def test_a_notice_lists_what_will_be_removed_and_when(account: AwsAccount, unused: IamRole) -> None:
    policy(notice_days=14)
    advisor_pass(account)
    notice = notice_of(unused)
    assert notice is not None
    assert {(r["key"], tuple(r["services"]), tuple(r["actions"])) for r in notice.removals} == {
        ("payments-data", (), ("s3:putobject",)),
        ("payments-events", ("sqs",), ()),
    }
    assert timedelta(days=13, hours=23) < notice.remove_after - timezone.now() <= timedelta(days=14)


def test_nothing_is_filed_before_the_notice_runs_out(account: AwsAccount, unused: IamRole) -> None:
    policy()
    advisor_pass(account)
    advisor_pass(account)
    assert removal_request(unused) is None
    assert notice_of(unused) is not None


def test_request_mode_files_an_ordinary_request_when_the_notice_runs_out(
    account: AwsAccount, unused: IamRole
) -> None:
    policy("request")
    advisor_pass(account)
    notice_runs_out(unused)
    advisor_pass(account)
    request = removal_request(unused)
    assert request is not None
    assert request.status == PolicyRequest.Status.PENDING
    changes = {(c.type, c.payload["policy_name"]): c.payload for c in request.changes.all()}
    assert set(changes) == {
        (Change.Type.INLINE_POLICY_PUT, "payments-data"),
        (Change.Type.INLINE_POLICY_DELETE, "payments-events"),
    }
    put = changes[(Change.Type.INLINE_POLICY_PUT, "payments-data")]
    assert put["document"]["Statement"][0]["Action"] == "s3:GetObject"
    notice = RemovalNotice.objects.get(role=unused)
    assert (notice.status, notice.request_number) == (RemovalNotice.Status.FILED, request.pk)


def test_a_filed_request_is_reviewed_and_applied_like_any_other(
    account: AwsAccount, unused: IamRole, reviewer: User
) -> None:
    policy("request")
    advisor_pass(account)
    notice_runs_out(unused)
    advisor_pass(account)
    request = approve(removal_request(unused), reviewer)  # type: ignore[arg-type]
    assert request.status == PolicyRequest.Status.APPLIED
    assert inline_names(unused) == ["payments-data"]
    assert policy_in_aws(unused, "payments-data")["Statement"][0]["Action"] == "s3:GetObject"


def test_auto_mode_applies_after_the_notice_without_a_reviewer(
    account: AwsAccount, unused: IamRole
) -> None:
    policy("auto")
    advisor_pass(account)
    assert removal_request(unused) is None
    notice_runs_out(unused)
    advisor_pass(account)
    request = removal_request(unused)
    assert request is not None
    assert request.status == PolicyRequest.Status.APPLIED
    assert inline_names(unused) == ["payments-data"]


def test_report_mode_gives_no_notice_and_files_nothing(
    account: AwsAccount, unused: IamRole
) -> None:
    policy("report")
    advisor_pass(account)
    assert notice_of(unused) is None
    assert removal_request(unused) is None


def test_without_any_policy_iamportal_only_reports(account: AwsAccount, unused: IamRole) -> None:
    advisor_pass(account)
    assert notice_of(unused) is None


def test_an_account_policy_overrides_the_default(account: AwsAccount, unused: IamRole) -> None:
    policy("request")
    RightsizingPolicy.objects.create(account=account, mode="report")
    advisor_pass(account)
    assert notice_of(unused) is None


def test_using_the_service_cancels_the_notice(account: AwsAccount, unused: IamRole) -> None:
    policy()
    advisor_pass(account)
    embedded_advisor.usage_set(
        unused.arn,
        {
            "s3": days_ago(1),
            "s3:GetObject": days_ago(1),
            "s3:PutObject": days_ago(1),
            "sqs": days_ago(1),
        },
    )
    notice_runs_out(unused)
    advisor_pass(account)
    notice = RemovalNotice.objects.get(role=unused)
    assert notice.status == RemovalNotice.Status.CANCELLED
    assert "used again" in notice.reason
    assert removal_request(unused) is None


def test_using_part_of_it_narrows_the_notice(account: AwsAccount, unused: IamRole) -> None:
    policy()
    advisor_pass(account)
    embedded_advisor.usage_set(
        unused.arn,
        {"s3": days_ago(1), "s3:GetObject": days_ago(1), "s3:PutObject": days_ago(1), "sqs": None},
    )
    notice_runs_out(unused)
    advisor_pass(account)
    request = removal_request(unused)
    assert request is not None
    assert [c.type for c in request.changes.all()] == [Change.Type.INLINE_POLICY_DELETE]


def test_an_exemption_tag_cancels_the_notice(account: AwsAccount, unused: IamRole) -> None:
    policy()
    advisor_pass(account)
    IamRole.objects.filter(pk=unused.pk).update(tags={"IAMPORTAL-RightSizing": "OFF"})
    notice_runs_out(unused)
    advisor_pass(account)
    notice = RemovalNotice.objects.get(role=unused)
    assert notice.status == RemovalNotice.Status.CANCELLED
    assert "tagged" in notice.reason
    assert removal_request(unused) is None


def test_a_role_younger_than_the_window_is_exempt(account: AwsAccount, unused: IamRole) -> None:
    policy(window_days=90)
    IamRole.objects.filter(pk=unused.pk).update(created_in_aws_at=days_ago(60))
    advisor_pass(account)
    assert notice_of(unused) is None


def test_a_permission_granted_within_the_grace_period_is_kept(
    account: AwsAccount, unused: IamRole
) -> None:
    policy(grant_grace_days=14)
    RoleVersion.objects.create(
        role=unused,
        account=unused.account,
        role_arn=unused.arn,
        role_name=unused.name,
        part=RoleVersion.Part.INLINE,
        key="payments-events",
        document=None,
        recorded_at=days_ago(30),
        source=RoleVersion.Source.OUTSIDE,
    )
    RoleVersion.objects.create(
        role=unused,
        account=unused.account,
        role_arn=unused.arn,
        role_name=unused.name,
        part=RoleVersion.Part.INLINE,
        key="payments-events",
        document=unused.inline_policies["payments-events"],
        recorded_at=days_ago(5),
        source=RoleVersion.Source.REQUEST,
        request_number=1,
    )
    advisor_pass(account)
    notice = notice_of(unused)
    assert notice is not None
    assert [r["key"] for r in notice.removals] == ["payments-data"]


def test_service_linked_roles_are_exempt(account: AwsAccount, unused: IamRole) -> None:
    policy()
    IamRole.objects.filter(pk=unused.pk).update(path="/aws-service-role/")
    advisor_pass(account)
    assert notice_of(unused) is None


def test_iamportals_own_roles_are_exempt(
    account: AwsAccount, unused: IamRole, settings: Any
) -> None:
    settings.IAMPORTAL_PROTECTED_ROLES = ["payments-*"]
    policy()
    advisor_pass(account)
    assert notice_of(unused) is None


def test_stale_data_is_never_acted_on(account: AwsAccount, unused: IamRole) -> None:
    policy()
    advisor_pass(account)
    notice_runs_out(unused)
    AdvisorRun.objects.update(finished_at=timezone.now() - timedelta(hours=30))
    outcome = rightsizing.rightsizing_evaluate(account=account)
    assert outcome["filed"] == 0
    assert outcome["stale"] >= 1
    assert removal_request(unused) is None
    assert notice_of(unused) is not None


def test_a_role_the_pass_could_not_read_is_not_acted_on(
    account: AwsAccount, unused: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy()
    advisor_pass(account)
    notice_runs_out(unused)

    def failing(iam: Any, params: dict[str, Any], **kwargs: Any) -> Any:
        return embedded_advisor._error("AccessDenied", "not allowed")

    monkeypatch.setattr(embedded_advisor, "_generate", failing)
    advisor_pass(account)
    assert removal_request(unused) is None
    assert notice_of(unused) is not None


def test_the_notice_is_emailed_to_the_roles_users_and_owners(
    account: AwsAccount, unused: IamRole, requester: User, reviewer: User, outsider: User
) -> None:
    IamRole.objects.filter(pk=unused.pk).update(
        tags={"iamportal-authorized": "team-payments", "owner": reviewer.email}
    )
    policy()
    mail.outbox.clear()
    advisor_pass(account)
    told = sorted(address for m in mail.outbox for address in m.to)
    assert told == sorted([requester.email, reviewer.email])
    assert "payments-events" in mail.outbox[0].body
    assert "sqs" in mail.outbox[0].body


def test_the_notice_email_is_sent_once(
    account: AwsAccount, unused: IamRole, requester: User
) -> None:
    IamRole.objects.filter(pk=unused.pk).update(tags={"iamportal-authorized": "team-payments"})
    policy()
    advisor_pass(account)
    notice = notice_of(unused)
    assert notice is not None
    mail.outbox.clear()
    assert rightsizing.removal_notice_email_send(notice_id=notice.pk) == 0
    assert rightsizing.removal_notice_emails_recover() == 0
    assert mail.outbox == []


def test_a_managed_policy_of_this_role_alone_gets_a_new_version(
    account: AwsAccount, role: IamRole, iam: Any
) -> None:
    arn = iam.create_policy(
        PolicyName="events",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["sns:Publish", "s3:ListBucket"], "Resource": "*"}
                ],
            }
        ),
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=role.name, PolicyArn=arn)
    sync(account)
    IamRole.objects.filter(pk=role.pk).update(created_in_aws_at=days_ago(365))
    RoleVersion.objects.filter(role=role).update(recorded_at=days_ago(365))
    embedded_advisor.usage_set(
        role.arn,
        {
            "s3": days_ago(1),
            "s3:GetObject": days_ago(1),
            "s3:PutObject": days_ago(1),
            "s3:ListBucket": days_ago(1),
            "sqs": days_ago(1),
            "sns": None,
        },
    )
    policy()
    advisor_pass(account)
    notice_runs_out(role)
    advisor_pass(account)
    request = removal_request(role)
    assert request is not None
    (change,) = request.changes.all()
    assert (change.type, change.target_arn) == (Change.Type.MANAGED_POLICY_VERSION, arn)
    assert change.payload["document"]["Statement"][0]["Action"] == "s3:ListBucket"


def test_a_shared_managed_policy_is_detached_and_what_is_used_kept_inline(
    account: AwsAccount, role: IamRole, iam: Any
) -> None:
    arn = iam.create_policy(
        PolicyName="shared",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": ["sns:Publish", "s3:ListBucket"], "Resource": "*"}
                ],
            }
        ),
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=role.name, PolicyArn=arn)
    iam.create_role(
        RoleName="other",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )
    iam.attach_role_policy(RoleName="other", PolicyArn=arn)
    sync(account)
    IamRole.objects.filter(pk=role.pk).update(created_in_aws_at=days_ago(365))
    RoleVersion.objects.filter(role=role).update(recorded_at=days_ago(365))
    embedded_advisor.usage_set(
        role.arn,
        {
            "s3": days_ago(1),
            "s3:GetObject": days_ago(1),
            "s3:PutObject": days_ago(1),
            "s3:ListBucket": days_ago(1),
            "sqs": days_ago(1),
            "sns": None,
        },
    )
    policy()
    advisor_pass(account)
    notice_runs_out(role)
    advisor_pass(account)
    request = removal_request(role)
    assert request is not None
    changes = [(c.type, c.payload) for c in request.changes.order_by("position")]
    assert changes[0] == (Change.Type.MANAGED_POLICY_DETACH, {"policy_arn": arn})
    assert changes[1][0] == Change.Type.INLINE_POLICY_PUT
    assert changes[1][1]["policy_name"] == "rightsized-shared"
    assert changes[1][1]["document"]["Statement"][0]["Action"] == "s3:ListBucket"


def test_a_removal_is_rolled_back_from_history(
    account: AwsAccount, unused: IamRole, reviewer: User, requester: User
) -> None:
    policy("request")
    advisor_pass(account)
    notice_runs_out(unused)
    advisor_pass(account)
    approve(removal_request(unused), reviewer)  # type: ignore[arg-type]
    assert inline_names(unused) == ["payments-data"]
    sync(account)
    unused.refresh_from_db()
    before = (
        RoleVersion.objects.filter(role=unused, part="inline", key="payments-events")
        .exclude(document=None)
        .latest("id")
    )
    restore = role_version_restore_submit(
        requester=requester, role=unused, version=before, justification="We send again."
    )
    approve(restore, reviewer)
    assert sorted(inline_names(unused)) == ["payments-data", "payments-events"]
