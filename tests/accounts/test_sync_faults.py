"""Inventory sync under AWS faults, task timeouts and dead workers: nothing a sync
could not read is deleted, no run stays "running" for good, and a run whose
worker died is taken over."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.exceptions import TimeoutException

from accounts import services, tasks
from accounts.models import AwsAccount, CloudResource, IamRole, SyncRun
from iamportal import aws, checks, demo
from iamportal.models import JobStatus
from tests.factories import client_for, sync

pytestmark = pytest.mark.django_db

BUCKET = "acme-prod-payments-data"


@pytest.fixture
def accounts() -> list[AwsAccount]:
    return demo.accounts_onboard(demo.organisation_seed())


@pytest.fixture
def prod(accounts: list[AwsAccount]) -> AwsAccount:
    return accounts[0]


def on_spoke_call(account: AwsAccount, event: str, handler: Callable[..., None]) -> None:
    """Hook the AWS calls a sync of `account` makes (its cached spoke session)."""
    aws.on_session_call(aws.spoke_session(account), event, handler)


def aws_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def fail_for(key: str, value: str, exc: Exception) -> Callable[..., None]:
    def refuse(params: dict[str, Any], **kwargs: Any) -> None:
        if value in str(params.get(key, "")):
            raise exc

    return refuse


def queue_nobody_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker loses the task (a Redis broker popped it, then the worker died)."""
    monkeypatch.setattr("accounts.enqueue.async_task", lambda *a, **k: None)


# --- a resource that cannot be read is not a resource that is gone ------------------


def test_a_bucket_whose_policy_cannot_be_read_keeps_its_row_and_is_marked(
    prod: AwsAccount, admin_user: Any
) -> None:
    sync(prod)
    before = CloudResource.objects.get(name=BUCKET)
    on_spoke_call(
        prod,
        "provide-client-params.s3.GetBucketPolicy",
        fail_for("Bucket", BUCKET, aws_error("SlowDown", "Please reduce your request rate.", "x")),
    )

    run = sync(prod)

    assert run.status == SyncRun.Status.WARNINGS
    assert run.get_status_display() == "Succeeded with warnings"
    assert run.counts["deleted"] == 0
    assert run.counts["unreadable"] == 1
    assert any(BUCKET in w and "SlowDown" in w for w in run.counts["warnings"])
    bucket = CloudResource.objects.get(name=BUCKET)
    assert bucket.pk == before.pk
    assert bucket.policy == before.policy
    assert bucket.tags == before.tags
    assert bucket.read_error == "SlowDown: Please reduce your request rate."
    assert bucket.read_error_at is not None

    client = client_for(admin_user)
    account_page = client.get(reverse("account_detail", args=[prod.account_id])).content.decode()
    assert "1 resource could not be read in the last sync" in account_page
    assert BUCKET in account_page
    assert "Succeeded with warnings" in account_page
    resource_page = client.get(reverse("resource_detail", args=[bucket.pk])).content.decode()
    assert "The last sync could not read this resource" in resource_page
    assert "SlowDown: Please reduce your request rate." in resource_page
    metrics = client.get(reverse("metrics")).content.decode()
    assert (
        f'iamportal_account_sync_unreadable_resources{{account_id="{prod.account_id}"}} 1.0'
        in metrics
    )


def test_a_resource_read_again_is_no_longer_marked(prod: AwsAccount, admin_user: Any) -> None:
    sync(prod)
    failing = {"on": True}

    def throttle(params: dict[str, Any], **kwargs: Any) -> None:
        if failing["on"] and params.get("Bucket") == BUCKET:
            raise aws_error("ServiceUnavailable", "Service is unable to handle the request.", "x")

    on_spoke_call(prod, "provide-client-params.s3.GetBucketTagging", throttle)
    assert sync(prod).status == SyncRun.Status.WARNINGS
    failing["on"] = False

    run = sync(prod)

    assert run.status == SyncRun.Status.SUCCEEDED
    assert CloudResource.objects.get(name=BUCKET).read_error == ""
    account_page = client_for(admin_user).get(reverse("account_detail", args=[prod.account_id]))
    assert "could not be read" not in account_page.content.decode()


def test_unreadable_queues_and_topics_keep_their_rows(prod: AwsAccount) -> None:
    sync(prod)
    queue = CloudResource.objects.get(account=prod, type="sqs", name="payments-events")
    topic = CloudResource.objects.get(account=prod, type="sns", name="payments-alerts")
    on_spoke_call(
        prod,
        "provide-client-params.sqs.GetQueueAttributes",
        fail_for(
            "QueueUrl", "/payments-events", aws_error("AccessDenied", "Access to the queue", "x")
        ),
    )
    on_spoke_call(
        prod,
        "provide-client-params.sns.ListTagsForResource",
        fail_for(
            "ResourceArn",
            ":payments-alerts",
            EndpointConnectionError(endpoint_url="https://sns.us-east-1.amazonaws.com/"),
        ),
    )

    run = sync(prod)

    assert run.status == SyncRun.Status.WARNINGS
    assert run.counts["deleted"] == 0
    assert run.counts["unreadable"] == 3  # the queue, its dead-letter queue, the topic
    kept_queue = CloudResource.objects.get(pk=queue.pk)
    assert kept_queue.policy == queue.policy
    assert kept_queue.read_error.startswith("AccessDenied")
    kept_topic = CloudResource.objects.get(pk=topic.pk)
    assert kept_topic.tags == topic.tags
    assert "Could not connect to the endpoint URL" in kept_topic.read_error


def test_a_new_bucket_that_cannot_be_read_is_recorded_with_what_is_known(
    prod: AwsAccount,
) -> None:
    sync(prod)
    s3 = aws.client("s3", session=demo.account_session(prod.account_id))
    s3.create_bucket(Bucket="acme-prod-new-data")
    on_spoke_call(
        prod,
        "provide-client-params.s3.GetBucketLocation",
        fail_for("Bucket", "acme-prod-new-data", aws_error("AccessDenied", "Access Denied", "x")),
    )

    run = sync(prod)

    assert run.status == SyncRun.Status.WARNINGS
    bucket = CloudResource.objects.get(arn="arn:aws:s3:::acme-prod-new-data")
    assert (bucket.account, bucket.type, bucket.name) == (prod, "s3", "acme-prod-new-data")
    assert bucket.read_error == "AccessDenied: Access Denied"


def test_a_bucket_aws_no_longer_lists_is_still_deleted(prod: AwsAccount) -> None:
    sync(prod)
    s3 = aws.client("s3", session=demo.account_session(prod.account_id))
    s3.delete_bucket(Bucket="acme-prod-audit-logs")
    run = sync(prod)
    assert run.status == SyncRun.Status.SUCCEEDED
    assert not CloudResource.objects.filter(name="acme-prod-audit-logs").exists()


def test_unreadable_role_details_fail_the_account_and_keep_every_role(prod: AwsAccount) -> None:
    sync(prod)
    roles = set(IamRole.objects.filter(account=prod).values_list("arn", "content_hash"))
    on_spoke_call(
        prod,
        "provide-client-params.iam.GetAccountAuthorizationDetails",
        lambda **kwargs: (_ for _ in ()).throw(
            aws_error("Throttling", "Rate exceeded", "GetAccountAuthorizationDetails")
        ),
    )

    run = sync(prod)

    assert run.status == SyncRun.Status.FAILED
    assert "Throttling: Rate exceeded" in run.error
    assert set(IamRole.objects.filter(account=prod).values_list("arn", "content_hash")) == roles


# --- killed by the task timeout ---------------------------------------------------------


def test_a_sync_stopped_by_the_task_timeout_is_failed_and_the_next_schedule_runs_it(
    accounts: list[AwsAccount], monkeypatch: pytest.MonkeyPatch, settings: Any, admin_user: Any
) -> None:
    prod = accounts[0]
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 900}
    timeout = {"armed": True}

    def alarm(**kwargs: Any) -> None:
        # django-q delivers its timeout by raising this SystemExit from SIGALRM.
        if timeout["armed"]:
            timeout["armed"] = False
            raise TimeoutException("Task exceeded maximum timeout value (900 seconds)")

    on_spoke_call(prod, "provide-client-params.s3.ListBuckets", alarm)
    with monkeypatch.context() as patched:
        queue_nobody_runs(patched)
        run = services.account_sync_request(account=prod)

    with pytest.raises(TimeoutException):
        tasks.account_sync_task(run.pk)

    run.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert run.error.startswith("Stopped by the task timeout after 900 s")
    job = JobStatus.objects.get(name=f"accounts.sync.{prod.account_id}")
    assert job.last_failure_at is not None
    assert "task timeout" in job.last_error
    metrics = client_for(admin_user).get(reverse("metrics")).content.decode()
    assert f'iamportal_account_sync_failing{{account_id="{prod.account_id}"}} 1.0' in metrics

    with TestCase.captureOnCommitCallbacks(execute=True):
        tasks.accounts_sync_all_task()
    latest = SyncRun.objects.filter(account=prod).latest("queued_at")
    assert latest.pk != run.pk
    assert latest.status == SyncRun.Status.SUCCEEDED
    assert IamRole.objects.filter(account=prod).exists()


# --- leases: a dead worker's run is taken over -----------------------------------------


def _held_by_a_dead_worker(run: SyncRun, *, expired: bool) -> None:
    now = timezone.now()
    SyncRun.objects.filter(pk=run.pk).update(
        status=SyncRun.Status.RUNNING,
        started_at=now - timedelta(minutes=10),
        enqueued_at=now - timedelta(minutes=11),
        lease_owner="worker-1:4242:0badcafe",
        heartbeat_at=now - timedelta(minutes=6),
        lease_expires_at=now + (timedelta(seconds=-1) if expired else timedelta(minutes=4)),
        progress=50,
        stage="Reading S3 buckets",
    )


def test_a_redelivered_task_takes_over_a_run_whose_lease_expired(
    prod: AwsAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_nobody_runs(monkeypatch)
    run = services.account_sync_request(account=prod)
    _held_by_a_dead_worker(run, expired=True)

    tasks.account_sync_task(run.pk)

    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert run.lease_owner != "worker-1:4242:0badcafe"
    assert IamRole.objects.filter(account=prod).exists()


def test_a_redelivered_task_leaves_a_run_with_a_live_lease_alone(
    prod: AwsAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_nobody_runs(monkeypatch)
    run = services.account_sync_request(account=prod)
    _held_by_a_dead_worker(run, expired=False)

    assert services.account_sync_run(run_id=run.pk) is None

    run.refresh_from_db()
    assert run.status == SyncRun.Status.RUNNING
    assert run.lease_owner == "worker-1:4242:0badcafe"
    assert not IamRole.objects.filter(account=prod).exists()


def test_a_worker_whose_run_was_taken_over_writes_nothing(
    prod: AwsAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first worker stalls in an AWS call past its lease; a second takes the
    run over and syncs after a role was deleted. The first, once it wakes up
    with its older reading, must not put the deleted role back."""
    queue_nobody_runs(monkeypatch)
    run = services.account_sync_request(account=prod)
    stalled = {"once": True}

    def stall(**kwargs: Any) -> None:
        if not stalled["once"]:
            return
        stalled["once"] = False
        iam = aws.client("iam", session=demo.account_session(prod.account_id))
        iam.delete_role_policy(RoleName="web-frontend", PolicyName="static-assets")
        iam.delete_role(RoleName="web-frontend")
        SyncRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now())
        taken_over = services.account_sync_run(run_id=run.pk)
        assert taken_over is not None
        assert taken_over.status == SyncRun.Status.SUCCEEDED

    on_spoke_call(prod, "provide-client-params.sqs.ListQueues", stall)

    assert services.account_sync_run(run_id=run.pk) is None

    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED
    assert IamRole.objects.filter(account=prod).exists()
    assert not IamRole.objects.filter(account=prod, name="web-frontend").exists()


# --- the sweep ----------------------------------------------------------------------------


def _long_ago(run: SyncRun, **fields: Any) -> None:
    SyncRun.objects.filter(pk=run.pk).update(
        enqueued_at=timezone.now() - timedelta(minutes=10), **fields
    )


def sweep() -> dict[str, int]:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return tasks.sync_runs_recover_task()


def test_the_sweep_re_enqueues_a_queued_run_whose_task_was_lost(
    prod: AwsAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        queue_nobody_runs(patched)
        run = services.account_sync_request(account=prod)
    assert sweep() == {"requeued": 0, "failed": 0}  # not lost yet: just queued
    _long_ago(run)

    assert sweep() == {"requeued": 1, "failed": 0}

    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert run.attempts == 2
    assert IamRole.objects.filter(account=prod).exists()


def test_the_sweep_waits_while_the_broker_has_a_backlog(
    prod: AwsAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        queue_nobody_runs(patched)
        run = services.account_sync_request(account=prod)
    _long_ago(run)
    get_broker().enqueue("another task waiting for a worker")

    assert sweep() == {"requeued": 0, "failed": 0}
    run.refresh_from_db()
    assert run.status == SyncRun.Status.QUEUED


def test_the_sweep_re_enqueues_a_running_run_whose_lease_expired(
    prod: AwsAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        queue_nobody_runs(patched)
        run = services.account_sync_request(account=prod)
    _held_by_a_dead_worker(run, expired=False)
    assert sweep() == {"requeued": 0, "failed": 0}  # the worker is alive
    _held_by_a_dead_worker(run, expired=True)
    # Even with other tasks waiting: this run's task was consumed by its dead worker.
    get_broker().enqueue("another task waiting for a worker")

    assert sweep() == {"requeued": 1, "failed": 0}

    run.refresh_from_db()
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert IamRole.objects.filter(account=prod).exists()


def test_the_sweep_gives_up_after_the_attempt_limit_and_the_schedule_starts_afresh(
    prod: AwsAccount, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.IAMPORTAL_SYNC_MAX_ATTEMPTS = 3
    with monkeypatch.context() as patched:
        queue_nobody_runs(patched)
        run = services.account_sync_request(account=prod)
        for attempt in (2, 3):
            _long_ago(run)
            assert sweep() == {"requeued": 1, "failed": 0}
            run.refresh_from_db()
            assert (run.status, run.attempts) == (SyncRun.Status.QUEUED, attempt)
        _long_ago(run)

        assert sweep() == {"requeued": 0, "failed": 1}

    run.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert run.error.startswith("Gave up after 3 attempts: no worker started it")
    job = JobStatus.objects.get(name=f"accounts.sync.{prod.account_id}")
    assert job.last_error.startswith("Gave up after 3 attempts")
    fresh = sync(prod)
    assert fresh.pk != run.pk
    assert fresh.status == SyncRun.Status.SUCCEEDED


def test_the_sweep_gives_up_on_a_run_whose_workers_keep_dying(
    prod: AwsAccount, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.IAMPORTAL_SYNC_MAX_ATTEMPTS = 3
    queue_nobody_runs(monkeypatch)
    run = services.account_sync_request(account=prod)
    SyncRun.objects.filter(pk=run.pk).update(attempts=3)
    _held_by_a_dead_worker(run, expired=True)

    assert sweep() == {"requeued": 0, "failed": 1}

    run.refresh_from_db()
    assert run.status == SyncRun.Status.FAILED
    assert "the worker running it (worker-1:4242:0badcafe) stopped" in run.error


def test_the_sweep_is_on_the_schedule() -> None:
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="accounts.sync_runs_recover")
    assert schedule.func == "accounts.tasks.sync_runs_recover_task"
    assert schedule.minutes == 1


# --- the per-account deadline --------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_hung_account_fails_at_the_deadline_while_the_others_sync(
    accounts: list[AwsAccount], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.IAMPORTAL_SYNC_DEADLINE_SECONDS = 600
    clock = FakeClock()
    monkeypatch.setattr(services, "clock", clock)
    hung = accounts[1]
    calls: list[str] = []

    def hang(**kwargs: Any) -> None:
        # Each call comes back only after botocore's read timeouts and retries.
        calls.append(kwargs["event_name"])
        clock.now += 210

    on_spoke_call(hung, "before-call", hang)

    with TestCase.captureOnCommitCallbacks(execute=True):
        tasks.accounts_sync_all_task()

    runs = {a.pk: SyncRun.objects.filter(account=a).latest("queued_at") for a in accounts}
    assert runs[hung.pk].status == SyncRun.Status.FAILED
    assert runs[hung.pk].error.startswith("Exceeded the sync deadline of 600 s")
    assert len(calls) <= 4  # stopped within one call of the deadline, not after every call
    assert not IamRole.objects.filter(account=hung).exists()
    for account in (accounts[0], accounts[2]):
        assert runs[account.pk].status == SyncRun.Status.SUCCEEDED, runs[account.pk].error
        assert IamRole.objects.filter(account=account).exists()


# --- configuration ---------------------------------------------------------------------------


def test_the_default_timing_configuration_is_consistent() -> None:
    assert checks.sync_timing_check() == []


def test_a_task_timeout_shorter_than_the_sync_deadline_is_refused(settings: Any) -> None:
    settings.IAMPORTAL_SYNC_DEADLINE_SECONDS = 900
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "timeout": 900}
    assert [issue.id for issue in checks.sync_timing_check()] == ["iamportal.E020"]


def test_a_lease_shorter_than_one_slow_aws_call_is_warned_about(settings: Any) -> None:
    settings.IAMPORTAL_SYNC_LEASE_SECONDS = 60
    assert [issue.id for issue in checks.sync_timing_check()] == ["iamportal.W021"]


def test_aws_clients_use_the_timeout_settings(settings: Any) -> None:
    settings.AWS_CONNECT_TIMEOUT = 3
    settings.AWS_READ_TIMEOUT = 20
    config = aws.client("sts").meta.config
    assert (config.connect_timeout, config.read_timeout) == (3, 20)
