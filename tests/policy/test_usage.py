"""Policy documents cut down to what a role uses."""

from __future__ import annotations

from typing import Any

from requests_app.policy.usage import (
    document_only,
    document_without,
    granted_actions,
    granted_namespaces,
)


def allow(actions: Any, resources: Any = "*") -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


def policy(*statements: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_it_lists_the_services_a_policy_allows() -> None:
    document = policy(
        allow(["s3:GetObject", "SQS:SendMessage"]),
        allow("dynamodb:*"),
        {"Effect": "Deny", "Action": "ec2:*", "Resource": "*"},
    )
    assert granted_namespaces(document) == {"s3", "sqs", "dynamodb"}


def test_not_action_and_star_count_as_every_service() -> None:
    assert granted_namespaces(policy(allow("*"))) == {"*"}
    assert granted_namespaces(policy({"Effect": "Allow", "NotAction": "iam:*"})) == {"*"}


def test_it_names_exact_actions_only() -> None:
    document = policy(allow(["s3:GetObject", "s3:Put*", "s3:ListBucket", "sqs:SendMessage"]))
    assert granted_actions(document, "s3") == {"s3:getobject", "s3:listbucket"}


def test_removing_a_service_keeps_the_other_actions_of_a_statement() -> None:
    document = policy(allow(["s3:GetObject", "sqs:SendMessage"], "*"))
    assert document_without(document, services={"sqs"}) == policy(allow("s3:GetObject", "*"))


def test_a_statement_left_without_actions_goes() -> None:
    document = policy(allow("s3:GetObject"), allow(["sqs:SendMessage", "sqs:ReceiveMessage"]))
    assert document_without(document, services={"SQS"}) == policy(allow("s3:GetObject"))


def test_removing_single_actions_any_case() -> None:
    document = policy(allow(["s3:GetObject", "s3:PutObject", "s3:Get*"]))
    assert document_without(document, services=(), actions={"S3:PUTOBJECT"}) == policy(
        allow(["s3:GetObject", "s3:Get*"])
    )


def test_nothing_left_means_no_document() -> None:
    assert document_without(policy(allow("sqs:SendMessage")), services={"sqs"}) is None


def test_deny_and_not_action_statements_stay() -> None:
    deny = {"Effect": "Deny", "Action": "sqs:*", "Resource": "*"}
    not_action = {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}
    document = policy(allow("sqs:SendMessage"), deny, not_action)
    assert document_without(document, services={"sqs"}) == policy(deny, not_action)


def test_the_input_is_left_alone() -> None:
    document = policy(allow(["s3:GetObject", "sqs:SendMessage"]))
    document_without(document, services={"sqs"})
    assert document == policy(allow(["s3:GetObject", "sqs:SendMessage"]))


def test_only_what_was_used_is_kept_for_a_replacement() -> None:
    document = policy(
        allow(["s3:GetObject", "sqs:SendMessage"], "arn:aws:s3:::b/*"),
        allow("ec2:Describe*"),
        {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": "*"},
    )
    assert document_only(document, services={"s3"}) == policy(
        allow("s3:GetObject", "arn:aws:s3:::b/*")
    )
    assert document_only(document, services={"lambda"}) is None
