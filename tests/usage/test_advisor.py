"""Access Advisor passes: what they read and write, throttling, leases and the
sweep, and when each account's pass is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from django.test import TestCase
from django.utils import timezone

from accounts.models import AwsAccount, IamRole
from accounts.usage import services
from accounts.usage.models import AdvisorRun, ServiceUsage
from iamportal import aws, embedded_advisor
from tests.factories import advisor_pass, days_ago

pytestmark = pytest.mark.django_db


def test_a_pass_stores_each_service_and_action_with_its_last_use(
    account: AwsAccount, role: IamRole
) -> None:
    used = days_ago(3).replace(microsecond=0)
    embedded_advisor.usage_set(role.arn, {"s3": used, "s3:GetObject": used, "sqs": None})
    run = advisor_pass(account)
    assert run.status == AdvisorRun.Status.SUCCEEDED
    rows = {row.namespace: row for row in ServiceUsage.objects.filter(role=role)}
    assert set(rows) == {"s3", "sqs"}
    assert rows["s3"].last_accessed_at == used
    assert rows["s3"].last_entity == role.arn
    assert rows["s3"].last_region == "us-east-1"
    assert rows["sqs"].last_accessed_at is None
    actions = {a["action"]: a["last_accessed_at"] for a in rows["s3"].actions}
    assert actions == {"s3:getobject": used.isoformat(), "s3:putobject": None}
    assert run.counts["failed"] == 0


def test_a_second_pass_over_unchanged_data_writes_no_row(
    account: AwsAccount, role: IamRole
) -> None:
    embedded_advisor.usage_set(role.arn, {"s3": days_ago(3), "sqs": None})
    advisor_pass(account)
    before = list(ServiceUsage.objects.order_by("pk").values_list("pk", "content_hash"))
    second = advisor_pass(account)
    assert (second.counts["created"], second.counts["updated"], second.counts["deleted"]) == (
        0,
        0,
        0,
    )
    assert list(ServiceUsage.objects.order_by("pk").values_list("pk", "content_hash")) == before


def test_a_change_in_use_rewrites_only_that_service(account: AwsAccount, role: IamRole) -> None:
    s3_used = days_ago(3)
    embedded_advisor.usage_set(role.arn, {"s3": s3_used, "sqs": None})
    advisor_pass(account)
    embedded_advisor.usage_set(role.arn, {"s3": s3_used, "sqs": days_ago(1)})
    run = advisor_pass(account)
    assert (run.counts["created"], run.counts["updated"], run.counts["deleted"]) == (0, 1, 0)


def test_a_service_no_longer_granted_is_deleted(
    account: AwsAccount, role: IamRole, iam: Any
) -> None:
    advisor_pass(account)
    iam.delete_role_policy(RoleName=role.name, PolicyName="payments-events")
    run = advisor_pass(account)
    assert run.counts["deleted"] == 1
    assert list(ServiceUsage.objects.filter(role=role).values_list("namespace", flat=True)) == [
        "s3"
    ]


def test_it_asks_for_action_level_details_and_polls_each_job(
    account: AwsAccount, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = BaseClient._make_api_call
    operations: list[tuple[str, dict[str, Any]]] = []

    def spy(self: Any, operation: str, params: Any) -> Any:
        operations.append((operation, dict(params)))
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", spy)
    advisor_pass(account)
    generate = [p for op, p in operations if op == "GenerateServiceLastAccessedDetails"]
    assert role.arn in {p["Arn"] for p in generate}
    assert {p["Granularity"] for p in generate} == {"ACTION_LEVEL"}
    polled = [p["JobId"] for op, p in operations if op == "GetServiceLastAccessedDetails"]
    assert len(polled) == len(set(polled)) == len(generate)


def test_throttling_is_waited_out_with_growing_pauses(
    account: AwsAccount, role: IamRole, no_waiting: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = embedded_advisor._generate
    throttled = {"left": 3}

    def throttling(iam: Any, params: dict[str, Any], **kwargs: Any) -> Any:
        if throttled["left"]:
            throttled["left"] -= 1
            return embedded_advisor._error("Throttling", "Rate exceeded")
        return real(iam, params)

    monkeypatch.setattr(embedded_advisor, "_generate", throttling)
    monkeypatch.setattr("django.conf.settings.AWS_MAX_ATTEMPTS", 1)
    aws.forget_sessions()
    run = advisor_pass(account)
    assert run.status == AdvisorRun.Status.SUCCEEDED
    assert no_waiting[:3] == [1.0, 2.0, 4.0]
    assert ServiceUsage.objects.filter(role=role).exists()


def test_a_job_that_keeps_running_is_polled_with_back_off(
    account: AwsAccount, role: IamRole, no_waiting: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = embedded_advisor._get
    polls: dict[str, int] = {}

    def slow(iam: Any, params: dict[str, Any], **kwargs: Any) -> Any:
        # Every job runs for three polls.
        polls[params["JobId"]] = polls.get(params["JobId"], 0) + 1
        if polls[params["JobId"]] <= 3:
            return embedded_advisor._answer({"JobStatus": "IN_PROGRESS", "JobType": "ACTION_LEVEL"})
        return real(iam, params)

    monkeypatch.setattr(embedded_advisor, "_get", slow)
    advisor_pass(account)
    assert no_waiting == [2.0, 4.0, 8.0]
    assert ServiceUsage.objects.filter(role=role).count() == 2


def test_a_role_that_cannot_be_read_keeps_its_data_and_is_listed(
    account: AwsAccount, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    advisor_pass(account)
    before = list(ServiceUsage.objects.order_by("pk").values_list("pk", "content_hash"))

    def failing(iam: Any, params: dict[str, Any], **kwargs: Any) -> Any:
        return embedded_advisor._error("AccessDenied", "not allowed")

    monkeypatch.setattr(embedded_advisor, "_generate", failing)
    run = advisor_pass(account)
    assert run.status == AdvisorRun.Status.WARNINGS
    assert role.arn in run.failed_roles
    assert list(ServiceUsage.objects.order_by("pk").values_list("pk", "content_hash")) == before


def test_an_account_whose_spoke_role_cannot_be_assumed_fails_alone(
    account: AwsAccount, role: IamRole, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(account: AwsAccount) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AssumeRole")

    monkeypatch.setattr(aws, "spoke_session", refused)
    run = advisor_pass(account)
    assert run.status == AdvisorRun.Status.FAILED
    assert run.error
    assert not ServiceUsage.objects.exists()


def test_a_redelivered_task_does_nothing(account: AwsAccount, role: IamRole) -> None:
    run = advisor_pass(account)
    assert services.advisor_run(run_id=run.pk) is None
    run.refresh_from_db()
    assert run.status == AdvisorRun.Status.SUCCEEDED


def test_the_sweep_finishes_a_pass_whose_worker_died(account: AwsAccount, role: IamRole) -> None:
    past = timezone.now() - timedelta(hours=1)
    run = AdvisorRun.objects.create(
        account=account,
        status=AdvisorRun.Status.RUNNING,
        lease_owner="dead:1:x",
        lease_expires_at=past,
        enqueued_at=past - timedelta(minutes=1),
        attempts=1,
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        outcome = services.advisor_runs_recover()
    assert outcome["requeued"] == 1
    run.refresh_from_db()
    assert run.status == AdvisorRun.Status.SUCCEEDED
    assert ServiceUsage.objects.filter(role=role).count() == 2


def test_the_sweep_gives_up_after_the_attempts(account: AwsAccount, settings: Any) -> None:
    past = timezone.now() - timedelta(hours=1)
    run = AdvisorRun.objects.create(
        account=account,
        status=AdvisorRun.Status.QUEUED,
        enqueued_at=past,
        attempts=settings.IAMPORTAL_USAGE_MAX_ATTEMPTS,
    )
    assert services.advisor_runs_recover()["failed"] == 1
    run.refresh_from_db()
    assert run.status == AdvisorRun.Status.FAILED


def test_a_live_pass_is_left_alone_by_the_sweep(account: AwsAccount) -> None:
    AdvisorRun.objects.create(
        account=account,
        status=AdvisorRun.Status.RUNNING,
        lease_owner="alive:1:x",
        lease_expires_at=timezone.now() + timedelta(minutes=5),
        enqueued_at=timezone.now(),
        attempts=1,
    )
    assert services.advisor_runs_recover() == {"requeued": 0, "failed": 0}


def test_passes_are_spread_over_the_day_by_account() -> None:
    offsets = {services.account_slot_offset(f"{n:012d}") for n in range(1, 40)}
    assert len(offsets) > 30
    assert all(timedelta(0) <= o < timedelta(hours=24) for o in offsets)


def test_an_account_is_queued_once_per_slot(account: AwsAccount, role: IamRole) -> None:
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    slot = services.account_slot_latest(account.account_id, now)
    assert now - timedelta(hours=24) < slot <= now
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert services.advisor_runs_schedule() == 1
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert services.advisor_runs_schedule() == 0


def test_a_disabled_account_is_not_read(account: AwsAccount) -> None:
    AwsAccount.objects.filter(pk=account.pk).update(enabled=False)
    assert services.advisor_runs_schedule() == 0


def test_the_embedded_advisor_refuses_an_unknown_job(account: AwsAccount) -> None:
    iam = aws.client("iam")
    with pytest.raises(ClientError) as caught:
        iam.get_service_last_accessed_details(JobId="00000000-0000-0000-0000-000000000000")
    assert caught.value.response["Error"]["Code"] == "NoSuchEntity"
