"""Denied calls: the organisation's CloudTrail AccessDenied events, read from
the SQS queue an EventBridge rule feeds, grouped per role, session, action and
resource, and turned into the least-privilege grant that would allow them.

A message is deleted from the queue only once its event is recorded, and an
event is counted once however often the queue delivers it (its CloudTrail
event id is kept for two weeks, SQS's longest retention): a worker that dies
half way leaves the rest of its messages to the next poll.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import AwsAccount, DeniedCall, DeniedEventSeen, IamRole
from iamportal import aws
from requests_app.policy.generate import GeneratedPolicy, IntentError, policy_for_call

log = logging.getLogger(__name__)

# The error codes AWS services use for "not allowed" in CloudTrail.
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "Client.UnauthorizedOperation",
        "UnauthorizedOperation",
        "UnauthorizedAccess",
    }
)
# Event sources whose IAM prefix is not the first label of the host name.
_PREFIX_BY_SOURCE = {
    "monitoring": "cloudwatch",
    "email": "ses",
    "elasticfilesystem": "elasticfilesystem",
    "es": "es",
}
# CloudTrail event names that are not the name of the IAM action they need.
_ACTION_BY_EVENT = {
    "s3:ListObjects": "s3:ListBucket",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "s3:HeadBucket": "s3:ListBucket",
    "s3:ListBuckets": "s3:ListAllMyBuckets",
}
_QUEUE_HOST_RE = re.compile(r"^https?://(?:sqs\.)?([a-z]{2}(?:-[a-z]+)+-\d)\.")
_ROLE_ARN_RE = re.compile(r"^arn:aws[\w-]*:iam::(\d{12}):role/.{1,512}$")
MAX_MESSAGES = 10  # SQS's most per receive
POLL_BATCHES = 50  # at most 500 events per poll; the next poll takes the rest
SEEN_KEEP = timedelta(days=14)


@dataclass(frozen=True)
class DeniedEvent:
    event_id: str
    account_id: str
    role_arn: str
    session_name: str
    action: str
    resource: str
    error_code: str
    at: datetime


class Ignored(Exception):
    """An event that is no denied call of a known role; `reason` counts it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _text(value: object, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _action(detail: dict[str, Any]) -> str:
    source = _text(detail.get("eventSource"), 128)
    name = _text(detail.get("eventName"), 128)
    if not source or not name or not re.fullmatch(r"[A-Za-z0-9]+", name):
        raise Ignored("malformed")
    label = source.split(".", 1)[0].lower()
    prefix = _PREFIX_BY_SOURCE.get(label, label)
    action = f"{prefix}:{name}"
    return _ACTION_BY_EVENT.get(action, action)


def _queue_arn(url: str) -> str:
    parts = url.rstrip("/").split("/")
    host = parts[2] if len(parts) > 2 else ""
    match = re.match(r"(?:sqs\.)?([a-z]{2}(?:-[a-z]+)+-\d)\.", host)
    if len(parts) < 5 or match is None:
        return ""
    return f"arn:aws:sqs:{match[1]}:{parts[3]}:{parts[4]}"


def _resource(detail: dict[str, Any]) -> str:
    """The resource the call was about: the most specific ARN CloudTrail lists
    (an object rather than its bucket), else one rebuilt from the request, else "*"."""
    arns: list[str] = []
    for item in detail.get("resources") or []:
        arn = item.get("ARN") or item.get("arn") if isinstance(item, dict) else None
        if isinstance(arn, str) and arn.startswith("arn:"):
            arns.append(arn)
    if arns:
        return max(arns, key=len)[:2048]
    parameters = detail.get("requestParameters")
    if isinstance(parameters, dict):
        bucket = _text(parameters.get("bucketName"), 255)
        key = _text(parameters.get("key"), 1024)
        if bucket:
            return f"arn:aws:s3:::{bucket}/{key}" if key else f"arn:aws:s3:::{bucket}"
        for name in ("topicArn", "TopicArn", "functionName", "tableName", "roleArn"):
            value = _text(parameters.get(name), 2048)
            if value.startswith("arn:"):
                return value
        queue = _queue_arn(_text(parameters.get("queueUrl"), 2048))
        if queue:
            return queue
    return "*"


def denied_event_parse(body: str) -> DeniedEvent:
    """The denied call in a queue message: an EventBridge event whose `detail` is
    the CloudTrail record (or the bare record). Raises Ignored saying why not."""
    try:
        message = json.loads(body)
    except ValueError:
        raise Ignored("malformed") from None
    if not isinstance(message, dict):
        raise Ignored("malformed")
    detail = message.get("detail", message)
    if not isinstance(detail, dict):
        raise Ignored("malformed")
    error_code = _text(detail.get("errorCode"), 64)
    if error_code not in DENIED_CODES:
        raise Ignored("not denied")
    identity = detail.get("userIdentity")
    if not isinstance(identity, dict):
        raise Ignored("malformed")
    if identity.get("type") != "AssumedRole":
        raise Ignored("not a role session")
    issuer = (identity.get("sessionContext") or {}).get("sessionIssuer") or {}
    role_arn = _text(issuer.get("arn") if isinstance(issuer, dict) else None, 2048)
    match = _ROLE_ARN_RE.match(role_arn)
    session_arn = _text(identity.get("arn"), 2048)
    session_name = session_arn.rsplit("/", 1)[-1] if session_arn.count("/") >= 2 else ""
    event_id = _text(detail.get("eventID"), 128) or _text(message.get("id"), 128)
    at = parse_datetime(_text(detail.get("eventTime") or message.get("time"), 64))
    if match is None or not session_name or not event_id or at is None:
        raise Ignored("malformed")
    return DeniedEvent(
        event_id=event_id,
        account_id=match[1],
        role_arn=role_arn,
        session_name=session_name[:64],
        action=_action(detail),
        resource=_resource(detail),
        error_code=error_code,
        at=at,
    )


def _group_key(event: DeniedEvent) -> str:
    text = "\n".join((event.session_name, event.action, event.resource))
    return hashlib.sha256(text.encode()).hexdigest()


def _role_of(event: DeniedEvent) -> IamRole:
    # Role ARNs carry the path; CloudTrail's session issuer does too.
    role = IamRole.objects.filter(arn=event.role_arn).first()
    if role is not None:
        return role
    if AwsAccount.objects.filter(account_id=event.account_id).exists():
        raise Ignored("unknown role")
    raise Ignored("other account")


def denied_event_record(body: str) -> str:
    """Count one queue message's event into its group; returns what became of it:
    "recorded", "duplicate", or the reason it was ignored."""
    try:
        event = denied_event_parse(body)
        role = _role_of(event)
    except Ignored as ignored:
        return ignored.reason
    with transaction.atomic():
        try:
            with transaction.atomic():
                DeniedEventSeen.objects.create(event_id=event.event_id, seen_at=timezone.now())
        except IntegrityError:
            # The event id is there already: this message was delivered before.
            return "duplicate"
        group, created = DeniedCall.objects.select_for_update().get_or_create(
            role=role,
            key=_group_key(event),
            defaults={
                "session_name": event.session_name,
                "action": event.action,
                "resource": event.resource,
                "error_code": event.error_code,
                "count": 1,
                "first_seen": event.at,
                "last_seen": event.at,
            },
        )
        if not created:
            DeniedCall.objects.filter(pk=group.pk).update(
                count=F("count") + 1,
                error_code=event.error_code,
                first_seen=min(group.first_seen, event.at),
                last_seen=max(group.last_seen, event.at),
            )
    return "recorded"


def _queue_region(url: str) -> str | None:
    match = _QUEUE_HOST_RE.match(url)
    return match[1] if match else None


def denied_events_poll(*, batches: int = POLL_BATCHES) -> dict[str, int]:
    """Read what the queue holds (up to `batches` receives), record each event and
    delete its message. Returns the count of each outcome; ignored events are
    logged with their counts, never stored."""
    url = settings.IAMPORTAL_DENIED_EVENTS_QUEUE_URL
    outcomes: Counter[str] = Counter()
    if not url:
        return dict(outcomes)
    sqs = aws.client("sqs", region=_queue_region(url))
    for _ in range(batches):
        received = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=MAX_MESSAGES, WaitTimeSeconds=0
        ).get("Messages", [])
        if not received:
            break
        done = []
        for message in received:
            outcomes[denied_event_record(str(message.get("Body", "")))] += 1
            done.append({"Id": message["MessageId"], "ReceiptHandle": message["ReceiptHandle"]})
        try:
            sqs.delete_message_batch(QueueUrl=url, Entries=done)
        except (ClientError, BotoCoreError) as exc:
            # Delivered again later, and then counted as duplicates.
            log.warning("could not delete %d denied-event messages: %s", len(done), exc)
    denied_calls_prune()
    ignored = {k: v for k, v in outcomes.items() if k not in ("recorded", "duplicate")}
    if ignored:
        log.info("denied events ignored: %s", ", ".join(f"{k} {v}" for k, v in ignored.items()))
    return dict(outcomes)


def denied_calls_prune() -> None:
    now = timezone.now()
    DeniedEventSeen.objects.filter(seen_at__lt=now - SEEN_KEEP).delete()
    keep = timedelta(days=settings.IAMPORTAL_DENIED_CALLS_KEEP_DAYS)
    DeniedCall.objects.filter(last_seen__lt=now - keep).delete()


# What the pages show


@dataclass(frozen=True)
class Suggestion:
    call: DeniedCall
    policy: GeneratedPolicy | None
    reason: str  # why there is no policy, when there is none

    @property
    def statement_text(self) -> str:
        if self.policy is None:
            return ""
        return json.dumps(self.policy.document, indent=2)


def denied_call_suggestion(call: DeniedCall) -> Suggestion:
    """The least-privilege grant that allows `call`, from the wizard's generator."""
    try:
        return Suggestion(call=call, policy=policy_for_call(call.action, call.resource), reason="")
    except IntentError as exc:
        return Suggestion(call=call, policy=None, reason=exc.message)


def recently_denied(*, role: IamRole, limit: int = 20) -> list[Suggestion]:
    calls = DeniedCall.objects.filter(role=role).order_by("-last_seen", "-id")[:limit]
    return [denied_call_suggestion(call) for call in calls]


def denied_calls_of_session(*, session_name: str, role_ids: list[int]) -> QuerySet[DeniedCall]:
    """The calls refused to a user's sessions on roles they may use, newest first."""
    return (
        DeniedCall.objects.filter(session_name=session_name, role_id__in=role_ids)
        .select_related("role", "role__account")
        .order_by("-last_seen", "-id")
    )


def denied_call_of_role(*, role: IamRole, pk: int) -> DeniedCall:
    """One group of denied calls of `role` (whose gate the caller passed); 404 otherwise."""
    call = DeniedCall.objects.filter(role=role, pk=pk).first()
    if call is None:
        raise Http404("No such denied call on this role.")
    return call
