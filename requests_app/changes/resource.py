"""Resource policies of buckets, queues and topics: replaced whole or merged by
Sid. Requests add statements to them for access from another account, and
iamportal adds the other half of a cross-account grant to them."""

from __future__ import annotations

from typing import Any

import boto3

from accounts.models import CloudResource
from iamportal import aws
from requests_app.changes.base import ChangeRefused, ChangeType, Checked
from requests_app.changes.common import (
    account_managed,
    document_slots,
    dumps,
    invalid,
    payload_of,
    role_guard,
    tolerating,
)
from requests_app.changes.principal import (
    PolicySlot,
    as_document,
    policy_apply,
    policy_revert,
    policy_summary,
    principal_document,
    principal_policy_payload,
)
from requests_app.models import Change
from requests_app.policy.arns import BUCKET_ARN as _BUCKET_ARN
from requests_app.policy.arns import QUEUE_OR_TOPIC_ARN as _QUEUE_OR_TOPIC_ARN
from requests_app.policy.limits import RESOURCE_POLICY_MAX_SIZE

_POLICY_KIND_NAME = {"s3": "bucket policy", "sqs": "queue policy", "sns": "topic policy"}
_RESOURCE_NOUN = {"s3": "bucket", "sqs": "queue", "sns": "topic"}


def _resource_parse(arn: str) -> tuple[str, str, str, str] | None:
    """(service, name, account id, region) of a bucket, queue or topic ARN; a
    bucket's ARN has neither account nor region."""
    bucket = _BUCKET_ARN.fullmatch(arn)
    if bucket:
        return "s3", bucket.group(2), "", ""
    match = _QUEUE_OR_TOPIC_ARN.fullmatch(arn)
    if match:
        return match.group(2), match.group(5), match.group(4), match.group(3)
    return None


def _resource_validate(target_arn: str, payload: dict[str, Any]) -> Checked:
    parsed = _resource_parse(target_arn)
    if parsed is None:
        invalid(
            "target_arn",
            "Name a bucket, queue or topic by its ARN, such as arn:aws:s3:::acme-invoices, "
            "arn:aws:sqs:us-east-1:123456789012:jobs or arn:aws:sns:us-east-1:123456789012:events.",
        )
    service, name, account_id, _ = parsed
    resources = CloudResource.objects.select_related("account").filter(type=service)
    # A bucket's ARN names no account: the inventory knows whose it is.
    resource = (
        resources.filter(name=name).first()
        if service == "s3"
        else resources.filter(arn=target_arn).first()
    )
    if service != "s3":
        account_managed(account_id)
    noun = _RESOURCE_NOUN[service]
    if resource is None:
        invalid(
            "target_arn",
            f"The {noun} {name} is not in the inventory: check the ARN, or sync its account.",
        )
    if not resource.account.enabled:
        invalid(
            "target_arn",
            f"The {noun} {name} is in account {resource.account.account_id}, which iamportal "
            "does not manage any more.",
        )
    previous = resource.policy or None
    normalised = principal_policy_payload(
        payload,
        previous=previous,
        trust=False,
        max_size=RESOURCE_POLICY_MAX_SIZE[service],
        what=_POLICY_KIND_NAME[service],
    )
    return Checked(resource.account.account_id, normalised, previous)


def _sns_owner_policy(topic_arn: str, account_id: str) -> dict[str, Any]:
    """The policy SNS gives a new topic: only its own account may use it. A topic
    cannot be without a policy, so this stands in for "none"."""
    return {
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [
            {
                "Sid": "__default_statement_ID",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": [
                    "SNS:GetTopicAttributes",
                    "SNS:SetTopicAttributes",
                    "SNS:AddPermission",
                    "SNS:RemovePermission",
                    "SNS:DeleteTopic",
                    "SNS:Subscribe",
                    "SNS:ListSubscriptionsByTopic",
                    "SNS:Publish",
                ],
                "Resource": topic_arn,
                "Condition": {"StringEquals": {"AWS:SourceOwner": account_id}},
            }
        ],
    }


def _bucket_region(bucket: str) -> str:
    region = (
        CloudResource.objects.filter(type=CloudResource.Type.S3, name=bucket)
        .values_list("region", flat=True)
        .first()
    )
    return region or aws.default_region()


def _resource_slot(change: Change, session: boto3.Session) -> PolicySlot:
    parsed = _resource_parse(change.target_arn)
    if parsed is None:
        raise ChangeRefused(f"{change.target_arn} is not a bucket, queue or topic ARN.")
    service, name, _, region = parsed
    if service == "s3":
        s3 = aws.client("s3", session=session, region=_bucket_region(name))

        def s3_read() -> dict[str, Any] | None:
            found = tolerating(frozenset({"NoSuchBucketPolicy"}), s3.get_bucket_policy, Bucket=name)
            return as_document(found["Policy"]) if found else None

        return PolicySlot(
            s3_read,
            lambda document: s3.put_bucket_policy(Bucket=name, Policy=dumps(document)),
            lambda: s3.delete_bucket_policy(Bucket=name),
            deletable=True,
        )
    if service == "sqs":
        sqs = aws.client("sqs", session=session, region=region)
        url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=change.account_id)[
            "QueueUrl"
        ]

        def sqs_read() -> dict[str, Any] | None:
            found = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
            return as_document(found.get("Attributes", {}).get("Policy"))

        def sqs_write(policy: str) -> None:
            sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})

        return PolicySlot(
            sqs_read,
            lambda document: sqs_write(dumps(document)),
            # An empty policy is how SQS removes one.
            lambda: sqs_write(""),
            deletable=True,
        )
    sns = aws.client("sns", session=session, region=region)
    arn = change.target_arn

    def sns_read() -> dict[str, Any] | None:
        attributes = sns.get_topic_attributes(TopicArn=arn).get("Attributes", {})
        return as_document(attributes.get("Policy"))

    def sns_write(document: dict[str, Any]) -> None:
        sns.set_topic_attributes(
            TopicArn=arn, AttributeName="Policy", AttributeValue=dumps(document)
        )

    return PolicySlot(
        sns_read,
        sns_write,
        lambda: sns_write(_sns_owner_policy(arn, change.account_id)),
        deletable=False,
    )


def _apply(change: Change, session: boto3.Session) -> dict[str, Any]:
    return policy_apply(_resource_slot(change, session), change)


def _revert(change: Change, session: boto3.Session) -> None:
    policy_revert(_resource_slot(change, session), change)


def _summary(change: Change) -> str:
    parsed = _resource_parse(change.target_arn)
    if parsed is None:
        return f"Update the resource policy of {change.target_arn}"
    service, name = parsed[0], parsed[1]
    return policy_summary(payload_of(change), f"the {_POLICY_KIND_NAME[service]} of {name}")


RESOURCE_POLICY_PUT = ChangeType(
    type=Change.Type.RESOURCE_POLICY_PUT,
    validate=_resource_validate,
    apply=_apply,
    revert=_revert,
    guard=role_guard,
    document=principal_document,
    summary=_summary,
    slots=document_slots,
    noun="policy",
    targets_role=False,
    linted=False,
)
