"""Denied calls: CloudTrail's AccessDenied events, read from the queue an
EventBridge rule feeds, become per-role groups with the grant that would allow
them, shown on the role page and on My roles, and requested in one click."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import denied
from accounts.models import DeniedCall, DeniedEventSeen
from iamportal import aws
from requests_app.wizard import draft_load, draft_policy
from tests.factories import BUCKET, BUCKET_ARN, PROD, Inventory, client_for, flashed

pytestmark = pytest.mark.django_db

OBJECT_ARN = f"{BUCKET_ARN}/reports/2026.csv"
API_ARN = f"arn:aws:iam::{PROD}:role/service/payments-api"


def event(
    *,
    event_id: str = "e-1",
    role_arn: str = API_ARN,
    session: str = "alice@example.com",
    source: str = "s3.amazonaws.com",
    name: str = "GetObject",
    error: str = "AccessDenied",
    resources: list[dict[str, str]] | None = None,
    parameters: dict[str, Any] | None = None,
    at: str = "2026-12-01T10:00:00Z",
    envelope: bool = True,
) -> str:
    """A CloudTrail record as EventBridge puts it on the queue."""
    account = role_arn.split(":")[4]
    role_name = role_arn.rsplit("/", 1)[-1]
    detail = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROAEXAMPLE:{session}",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role_name}/{session}",
            "accountId": account,
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "arn": role_arn, "accountId": account}
            },
        },
        "eventTime": at,
        "eventSource": source,
        "eventName": name,
        "errorCode": error,
        "errorMessage": "Access Denied",
        "requestParameters": parameters or {},
        "resources": resources
        if resources is not None
        else [
            {"type": "AWS::S3::Bucket", "ARN": BUCKET_ARN},
            {"type": "AWS::S3::Object", "ARN": OBJECT_ARN},
        ],
        "eventID": event_id,
    }
    if not envelope:
        return json.dumps(detail)
    return json.dumps(
        {
            "version": "0",
            "id": f"eb-{event_id}",
            "detail-type": "AWS API Call via CloudTrail",
            "source": source.split(".")[0],
            "account": account,
            "time": at,
            "region": "us-east-1",
            "detail": detail,
        }
    )


# --- reading one event ------------------------------------------------------------------


def test_an_event_names_the_role_session_action_and_most_specific_resource() -> None:
    parsed = denied.denied_event_parse(event())
    assert (parsed.role_arn, parsed.session_name, parsed.action, parsed.resource) == (
        API_ARN,
        "alice@example.com",
        "s3:GetObject",
        OBJECT_ARN,
    )
    assert parsed.account_id == PROD
    assert denied.denied_event_parse(event(envelope=False)) == parsed


def test_event_names_that_are_not_action_names_become_the_action_they_need() -> None:
    parsed = denied.denied_event_parse(
        event(name="ListObjectsV2", resources=[], parameters={"bucketName": BUCKET})
    )
    assert (parsed.action, parsed.resource) == ("s3:ListBucket", BUCKET_ARN)


def test_the_resource_is_rebuilt_from_the_request_or_is_every_resource() -> None:
    queue = denied.denied_event_parse(
        event(
            source="sqs.amazonaws.com",
            name="SendMessage",
            resources=[],
            parameters={"queueUrl": f"https://sqs.us-east-1.amazonaws.com/{PROD}/payments-events"},
        )
    )
    assert queue.resource == f"arn:aws:sqs:us-east-1:{PROD}:payments-events"
    nothing = denied.denied_event_parse(event(name="ListBuckets", resources=[]))
    assert (nothing.action, nothing.resource) == ("s3:ListAllMyBuckets", "*")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "malformed"),
        ("[1, 2]", "malformed"),
        (json.dumps({"detail": "text"}), "malformed"),
        (event(error="NoSuchKey"), "not denied"),
        (event(error=""), "not denied"),
        (event(role_arn="arn:aws:iam::111111111111:user/bob"), "malformed"),
        (event(name="Get Object"), "malformed"),
        (event(at="yesterday"), "malformed"),
    ],
)
def test_what_is_no_denied_call_of_a_role_is_ignored_with_its_reason(
    body: str, reason: str
) -> None:
    with pytest.raises(denied.Ignored) as raised:
        denied.denied_event_parse(body)
    assert raised.value.reason == reason


def test_a_call_by_a_user_rather_than_a_role_session_is_ignored() -> None:
    body = json.loads(event())
    body["detail"]["userIdentity"]["type"] = "IAMUser"
    with pytest.raises(denied.Ignored) as raised:
        denied.denied_event_parse(json.dumps(body))
    assert raised.value.reason == "not a role session"


# --- counting ----------------------------------------------------------------------------


def test_calls_are_grouped_per_session_action_and_resource(inv: Inventory) -> None:
    assert denied.denied_event_record(event(event_id="a", at="2026-12-01T10:00:00Z")) == "recorded"
    assert denied.denied_event_record(event(event_id="b", at="2026-12-01T09:00:00Z")) == "recorded"
    assert denied.denied_event_record(event(event_id="c", session="bob@example.com")) == "recorded"
    groups = {(c.session_name, c.count) for c in DeniedCall.objects.filter(role=inv.api)}
    assert groups == {("alice@example.com", 2), ("bob@example.com", 1)}
    alice = DeniedCall.objects.get(session_name="alice@example.com")
    assert alice.first_seen.hour == 9 and alice.last_seen.hour == 10


def test_an_event_delivered_twice_is_counted_once(inv: Inventory) -> None:
    assert denied.denied_event_record(event(event_id="same")) == "recorded"
    assert denied.denied_event_record(event(event_id="same")) == "duplicate"
    assert DeniedCall.objects.get().count == 1


def test_events_of_unknown_roles_and_other_accounts_are_ignored(inv: Inventory) -> None:
    unknown = f"arn:aws:iam::{PROD}:role/not-synced-yet"
    assert denied.denied_event_record(event(role_arn=unknown)) == "unknown role"
    other = "arn:aws:iam::999999999999:role/payments-api"
    assert denied.denied_event_record(event(role_arn=other)) == "other account"
    assert not DeniedCall.objects.exists()
    assert not DeniedEventSeen.objects.exists()


# --- the queue -----------------------------------------------------------------------------


@pytest.fixture
def queue(settings: Any) -> Any:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="iamportal-denied-events")["QueueUrl"]
    settings.IAMPORTAL_DENIED_EVENTS_QUEUE_URL = url
    return sqs


def _waiting(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_a_poll_records_good_events_counts_bad_ones_and_empties_the_queue(
    inv: Inventory, queue: Any, settings: Any
) -> None:
    url = settings.IAMPORTAL_DENIED_EVENTS_QUEUE_URL
    bodies = [event(event_id=f"ok-{n}") for n in range(12)]
    bodies += [
        event(event_id="ok-0"),  # delivered again
        "{broken",
        event(event_id="x", role_arn=f"arn:aws:iam::{PROD}:role/unknown"),
        event(event_id="y", role_arn="arn:aws:iam::999999999999:role/payments-api"),
        event(event_id="z", error="ThrottlingException"),
    ]
    for body in bodies:
        queue.send_message(QueueUrl=url, MessageBody=body)

    outcomes = denied.denied_events_poll()

    assert outcomes == {
        "recorded": 12,
        "duplicate": 1,
        "malformed": 1,
        "unknown role": 1,
        "other account": 1,
        "not denied": 1,
    }
    assert DeniedCall.objects.get().count == 12
    assert _waiting(queue, url) == 0
    assert denied.denied_events_poll() == {}


def test_no_queue_configured_reads_nothing(settings: Any) -> None:
    settings.IAMPORTAL_DENIED_EVENTS_QUEUE_URL = ""
    assert denied.denied_events_poll() == {}


def test_old_groups_and_remembered_event_ids_are_pruned(inv: Inventory, settings: Any) -> None:
    settings.IAMPORTAL_DENIED_CALLS_KEEP_DAYS = 30
    long_ago = (timezone.now() - timedelta(days=31)).isoformat()
    denied.denied_event_record(event(event_id="old", at=long_ago))
    denied.denied_event_record(event(event_id="new", session="bob@example.com"))
    DeniedEventSeen.objects.filter(event_id="old").update(
        seen_at=timezone.now() - timedelta(days=15)
    )
    denied.denied_calls_prune()
    assert list(DeniedCall.objects.values_list("session_name", flat=True)) == ["bob@example.com"]
    assert list(DeniedEventSeen.objects.values_list("event_id", flat=True)) == ["new"]


# --- suggestions -------------------------------------------------------------------------------


def test_the_suggestion_is_exactly_the_denied_action_on_the_denied_resource(
    inv: Inventory,
) -> None:
    denied.denied_event_record(event())
    suggestion = denied.denied_call_suggestion(DeniedCall.objects.get())
    assert suggestion.policy is not None
    assert suggestion.policy.document["Statement"] == [
        {
            "Sid": "S3ReadAcmeProdPaymentsDataReports2026Csv",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [OBJECT_ARN],
        }
    ]


def test_a_call_no_grant_can_be_generated_for_says_why(inv: Inventory) -> None:
    denied.denied_event_record(
        event(source="iam.amazonaws.com", name="PutRolePolicy", resources=[{"ARN": API_ARN}])
    )
    suggestion = denied.denied_call_suggestion(DeniedCall.objects.get())
    assert suggestion.policy is None
    assert "give itself more permissions" in suggestion.reason


# --- pages -----------------------------------------------------------------------------------


def _role_page(client: Client, inv: Inventory) -> Any:
    return client.get(
        reverse("role_detail", kwargs={"account_id": PROD, "role_name": inv.api.name})
    )


def test_the_role_page_shows_recently_denied_with_its_grant(
    inv: Inventory, requester: User
) -> None:
    denied.denied_event_record(event())
    page = _role_page(client_for(requester), inv).content.decode()
    assert "Recently denied" in page
    assert "s3:GetObject" in page and OBJECT_ARN in page
    assert "S3ReadAcmeProdPaymentsDataReports2026Csv" in page
    assert "Request this" in page


def test_only_reviewers_see_who_was_denied(
    inv: Inventory, requester: User, reviewer: User, outsider: User, admin_user: User
) -> None:
    denied.denied_event_record(event(session="bob@example.com"))
    assert "bob@example.com" in _role_page(client_for(reviewer), inv).content.decode()
    for user in (requester, outsider):
        page = _role_page(client_for(user), inv).content.decode()
        assert "s3:GetObject" in page
        assert "bob@example.com" not in page


def test_the_role_page_says_when_no_call_was_denied(inv: Inventory, requester: User) -> None:
    page = _role_page(client_for(requester), inv).content.decode()
    assert "No denied calls recorded for this role" in page


def _request_this(client: Client, inv: Inventory, call: DeniedCall) -> Any:
    return client.post(
        reverse("request_denied_call", kwargs={"role_id": inv.api.pk, "call_id": call.pk})
    )


@pytest.mark.parametrize("who", ["requester", "reviewer", "admin_user", "outsider"])
def test_request_this_puts_the_grant_in_the_draft_and_opens_the_review_step(
    inv: Inventory, who: str, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(who)
    denied.denied_event_record(event())
    client = client_for(user)
    response = _request_this(client, inv, DeniedCall.objects.get())
    assert response.status_code == 302
    assert response["Location"] == reverse("request_review", kwargs={"role_id": inv.api.pk})
    draft = draft_load(session=client.session, role=inv.api)
    policy = draft_policy(draft)
    assert policy.document is not None
    assert policy.document["Statement"][0]["Resource"] == [OBJECT_ARN]
    review = client.get(response["Location"]).content.decode()
    assert OBJECT_ARN in review
    # Twice is once.
    _request_this(client, inv, DeniedCall.objects.get())
    assert len(draft_load(session=client.session, role=inv.api).permissions) == 1


def test_request_this_needs_a_sign_in(inv: Inventory, anonymous: Client) -> None:
    denied.denied_event_record(event())
    response = _request_this(anonymous, inv, DeniedCall.objects.get())
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_request_this_for_a_call_of_another_role_is_not_found(
    inv: Inventory, requester: User
) -> None:
    denied.denied_event_record(event())
    call = DeniedCall.objects.get()
    response = client_for(requester).post(
        reverse("request_denied_call", kwargs={"role_id": inv.readonly.pk, "call_id": call.pk})
    )
    assert response.status_code == 404


def test_request_this_without_a_possible_grant_says_why(inv: Inventory, requester: User) -> None:
    denied.denied_event_record(
        event(source="iam.amazonaws.com", name="PutRolePolicy", resources=[{"ARN": API_ARN}])
    )
    client = client_for(requester)
    response = _request_this(client, inv, DeniedCall.objects.get())
    assert response.status_code == 302
    assert "give itself more permissions" in " ".join(flashed(response))
    assert draft_load(session=client.session, role=inv.api).permissions == []


# --- My roles ----------------------------------------------------------------------------------


def test_my_roles_shows_the_calls_refused_to_me_only(inv: Inventory, requester: User) -> None:
    denied.denied_event_record(event(event_id="mine", session="alice@example.com"))
    denied.denied_event_record(
        event(event_id="theirs", session="bob@example.com", name="PutObject")
    )
    page = client_for(requester).get(reverse("my_roles")).content.decode()
    assert "Calls AWS refused you" in page
    assert "s3:GetObject" in page
    assert "s3:PutObject" not in page


def test_my_roles_has_no_refused_calls_section_without_any(inv: Inventory, requester: User) -> None:
    page = client_for(requester).get(reverse("my_roles")).content.decode()
    assert "Calls AWS refused you" not in page
