"""The policy linter: each rule on a policy that breaks it, silence on realistic
least-privilege policies, and no exception whatever the input."""

from __future__ import annotations

import fnmatch
import json
import random
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest
from policy_sentry.querying.actions import get_action_data

from requests_app.policy.limits import INLINE_POLICIES_MAX_SIZE
from requests_app.policy.lint import Finding, policy_lint
from requests_app.policy.lint_rules import (
    CREDENTIAL_ACTIONS,
    DATA_READ_ACTIONS,
    ESCALATION_PATHS,
    LINT_MAX_CHARS,
    RULES,
)
from requests_app.policy.reference import NameGlob

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
BUCKET = "arn:aws:s3:::acme-reports"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/deploy"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/Orders"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:orders"


def policy(*statements: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def lint(document: Any, **kwargs: Any) -> list[Finding]:
    findings = policy_lint(document, **kwargs)
    for finding in findings:
        assert isinstance(finding, Finding)
        assert finding.code in RULES, finding.code
        assert finding.title == RULES[finding.code][1]
        assert finding.severity in ("error", "warning", "info")
        assert finding.location == "" or finding.location.startswith("/")
        assert finding.detail
    return findings


def found(document: Any, **kwargs: Any) -> set[tuple[str, str, str]]:
    return {(f.code, f.severity, f.location) for f in lint(document, **kwargs)}


def the_one(document: Any, code: str) -> Finding:
    matching = [finding for finding in lint(document) if finding.code == code]
    assert len(matching) == 1, lint(document)
    return matching[0]


def not_info(document: Any) -> list[Finding]:
    return [finding for finding in lint(document) if finding.severity != "info"]


def in_reference(action: str) -> bool:
    service, name = action.split(":")
    return bool(get_action_data(service, name).get(service))


# The finding itself


def test_a_finding_is_frozen_and_serialises_for_json_apis() -> None:
    finding = Finding("error", "full-admin", "Full administrator access", "Why.", "/Statement/0")
    assert finding.as_dict() == {
        "severity": "error",
        "code": "full-admin",
        "title": "Full administrator access",
        "detail": "Why.",
        "location": "/Statement/0",
    }
    json.dumps(finding.as_dict())
    with pytest.raises(FrozenInstanceError):
        finding.code = "other"  # type: ignore[misc]


def test_importing_the_module_does_not_load_the_iam_database() -> None:
    code = (
        "import sys\n"
        "import requests_app.policy.lint\n"
        "assert 'policy_sentry' not in sys.modules, sorted(sys.modules)\n"
        "requests_app.policy.lint.policy_lint({'Statement': []})\n"
        "assert 'policy_sentry' not in sys.modules, 'no action to look up yet'\n"
        "requests_app.policy.lint.policy_lint({'Statement': [{'Effect': 'Allow', "
        "'Action': 's3:GetObject', 'Resource': '*'}]})\n"
        "assert 'policy_sentry' in sys.modules\n"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_documented_action_lists_name_real_actions() -> None:
    listed = set(CREDENTIAL_ACTIONS) | set(DATA_READ_ACTIONS)
    listed |= {action for actions, _ in ESCALATION_PATHS for action in actions}
    missing = sorted(action for action in listed if not in_reference(action))
    assert missing == []


# Silence on realistic least-privilege policies

GOOD_POLICIES = {
    "s3-read-prefix": policy(
        allow(
            "s3:ListBucket",
            BUCKET,
            Sid="List",
            Condition={"StringLike": {"s3:prefix": ["daily/*"]}},
        ),
        allow(["s3:GetObject", "s3:GetObjectVersion"], f"{BUCKET}/daily/*", Sid="Read"),
    ),
    "sqs-send": policy(
        allow(["sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"], QUEUE)
    ),
    "dynamodb-read-with-indexes": policy(
        allow(
            [
                "dynamodb:BatchGetItem",
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:Scan",
            ],
            [TABLE, f"{TABLE}/index/*"],
        )
    ),
    "kms-decrypt": policy(allow(["kms:Decrypt", "kms:DescribeKey"], KEY)),
    "logs-write": policy(
        allow(
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/app/orders:*",
        )
    ),
    "rds-iam-auth": policy(
        allow(
            "rds-db:connect",
            f"arn:aws:rds-db:us-east-1:{ACCOUNT}:dbuser:db-ABCDEFGHIJKLMNOPQRSTU1VWXY/app_user",
        )
    ),
    "ses-send-from": policy(
        allow(
            ["ses:SendEmail", "ses:SendRawEmail"],
            f"arn:aws:ses:us-east-1:{ACCOUNT}:identity/example.com",
            Condition={"StringEquals": {"ses:FromAddress": "noreply@example.com"}},
        )
    ),
    "sts-assume-role": policy(allow("sts:AssumeRole", ROLE)),
    "home-prefix-with-variables": policy(
        allow(
            ["s3:GetObject", "s3:PutObject"],
            f"{BUCKET}/home/${{aws:username}}/*",
            Condition={"Bool": {"aws:SecureTransport": "true"}},
        )
    ),
    "ssm-parameters-under-a-path": policy(
        allow(
            ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
            f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/app/orders/*",
        )
    ),
    "secret-read": policy(
        allow(
            "secretsmanager:GetSecretValue",
            f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:orders/db-AbCdEf",
        )
    ),
    "wildcard-read-of-one-bucket": policy(allow("s3:Get*", f"{BUCKET}/*")),
    "deny-outside-the-network": policy(
        allow("s3:GetObject", f"{BUCKET}/*"),
        {
            "Effect": "Deny",
            "NotAction": ["sts:GetCallerIdentity"],
            "Resource": "*",
            "Condition": {
                "NotIpAddress": {"aws:SourceIp": ["203.0.113.0/24"]},
                "Bool": {"aws:ViaAWSService": "false"},
            },
        },
    ),
}


@pytest.mark.parametrize("document", GOOD_POLICIES.values(), ids=GOOD_POLICIES.keys())
def test_it_is_silent_on_least_privilege_policies(document: dict[str, Any]) -> None:
    assert not_info(document) == []
    assert not_info(json.dumps(document, indent=2)) == []


def test_it_is_silent_on_all_of_them_together() -> None:
    statements = [s for document in GOOD_POLICIES.values() for s in document["Statement"]]
    assert not_info(policy(*statements)) == []


def test_it_names_credentials_a_scoped_grant_hands_out_only_as_information() -> None:
    finding = the_one(GOOD_POLICIES["sts-assume-role"], "credential-exposure")
    assert (finding.severity, finding.location) == ("info", "/Statement/0/Action")
    assert "sts:AssumeRole" in finding.detail


def test_an_action_newer_than_the_reference_is_only_a_warning() -> None:
    newer = "s3:PutBucketMetadataTableConfiguration"
    assert not in_reference(newer)
    findings = lint(policy(allow(["s3:GetObject", newer], f"{BUCKET}/*")))
    assert [(f.code, f.severity, f.location) for f in findings] == [
        ("unknown-action", "warning", "/Statement/0/Action/1")
    ]
    assert "not in the IAM reference bundled with iamportal" in findings[0].detail
    assert "check the spelling" in findings[0].detail


def test_a_wildcard_that_may_cover_only_newer_actions_is_only_a_warning() -> None:
    assert not any(in_reference(f"s3:PutBucketMetadataTable{s}") for s in ("", "Configuration"))
    document = policy(allow("s3:PutBucketMetadataTable*", BUCKET))
    assert found(document) == {
        ("action-wildcard-matches-nothing", "warning", "/Statement/0/Action")
    }


# Structure


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("{not json", ("invalid-json", "error", "")),
        (
            '{"Version": "2012-10-17", "Statement": [], "Statement": {}}',
            ("duplicate-key", "error", ""),
        ),
        ([], ("document-not-object", "error", "")),
        ({"Statement": [allow("s3:GetObject", f"{BUCKET}/*")]}, ("version-missing", "warning", "")),
        (
            {"Version": "2008-10-17", "Statement": [allow("s3:GetObject", f"{BUCKET}/*")]},
            ("version-outdated", "warning", "/Version"),
        ),
        (
            {"Version": "2012-10-18", "Statement": [allow("s3:GetObject", f"{BUCKET}/*")]},
            ("version-invalid", "error", "/Version"),
        ),
        ({"Version": 2012, "Statement": []}, ("version-invalid", "error", "/Version")),
        ({"Version": "2012-10-17"}, ("statement-missing", "error", "")),
        (
            {"Version": "2012-10-17", "Statement": "x"},
            ("statement-wrong-type", "error", "/Statement"),
        ),
        ({"Version": "2012-10-17", "Statement": []}, ("statement-empty", "error", "/Statement")),
        (policy("s3:GetObject"), ("statement-not-object", "error", "/Statement/0")),
        (
            {**policy(allow("s3:GetObject", f"{BUCKET}/*")), "Owner": "me"},
            ("unknown-document-key", "error", "/Owner"),
        ),
        ({**policy(), "Id": 7}, ("wrong-type", "error", "/Id")),
        (
            policy({"Action": "s3:GetObject", "Resource": f"{BUCKET}/*"}),
            ("effect-missing", "error", "/Statement/0"),
        ),
        (
            policy({**allow("s3:GetObject", f"{BUCKET}/*"), "Effect": "allow"}),
            ("effect-invalid", "error", "/Statement/0/Effect"),
        ),
        (
            policy({"Effect": "Allow", "Resource": f"{BUCKET}/*"}),
            ("action-missing", "error", "/Statement/0"),
        ),
        (policy(allow([], f"{BUCKET}/*")), ("action-missing", "error", "/Statement/0/Action")),
        (
            policy({**allow("s3:GetObject", f"{BUCKET}/*"), "NotAction": "s3:PutObject"}),
            ("action-and-notaction", "error", "/Statement/0/NotAction"),
        ),
        (
            policy({"Effect": "Allow", "Action": "s3:GetObject"}),
            ("resource-missing", "error", "/Statement/0"),
        ),
        (
            policy({**allow("s3:GetObject", f"{BUCKET}/*"), "NotResource": BUCKET}),
            ("resource-and-notresource", "error", "/Statement/0/NotResource"),
        ),
        (
            policy(allow("s3:GetObject", f"{BUCKET}/*", Principal={"AWS": ROLE})),
            ("principal-in-identity-policy", "error", "/Statement/0/Principal"),
        ),
        (
            policy(allow("s3:GetObject", f"{BUCKET}/*", NotPrincipal="*")),
            ("principal-in-identity-policy", "error", "/Statement/0/NotPrincipal"),
        ),
        (
            policy(allow("s3:GetObject", f"{BUCKET}/*", Actions=["s3:PutObject"])),
            ("unknown-statement-key", "error", "/Statement/0/Actions"),
        ),
        (policy(allow(5, f"{BUCKET}/*")), ("wrong-type", "error", "/Statement/0/Action")),
        (
            policy(allow(["s3:GetObject", 5], f"{BUCKET}/*")),
            ("wrong-type", "error", "/Statement/0/Action/1"),
        ),
        (
            policy(allow("s3:GetObject", {"arn": BUCKET})),
            ("wrong-type", "error", "/Statement/0/Resource"),
        ),
        (
            policy(allow("s3:GetObject", f"{BUCKET}/*", Sid="read objects")),
            ("sid-invalid", "error", "/Statement/0/Sid"),
        ),
        (
            policy(allow("s3:GetObject", f"{BUCKET}/*", Sid=1)),
            ("sid-invalid", "error", "/Statement/0/Sid"),
        ),
        (
            policy(
                allow("s3:GetObject", f"{BUCKET}/*", Sid="Read"),
                allow("s3:PutObject", f"{BUCKET}/*", Sid="Read"),
            ),
            ("duplicate-sid", "error", "/Statement/1/Sid"),
        ),
        (
            policy(allow("s3:GetObject", f"{BUCKET}/*", Condition=["aws:SecureTransport"])),
            ("condition-malformed", "error", "/Statement/0/Condition"),
        ),
        (
            policy(allow("s3:GetObject", f"{BUCKET}/*", Condition={"Bool": "true"})),
            ("condition-malformed", "error", "/Statement/0/Condition/Bool"),
        ),
        (
            policy(
                allow(
                    "s3:GetObject",
                    f"{BUCKET}/*",
                    Condition={"StringEquals": {"aws:PrincipalTag/team": {"is": "x"}}},
                )
            ),
            (
                "condition-malformed",
                "error",
                "/Statement/0/Condition/StringEquals/aws:PrincipalTag~1team",
            ),
        ),
        (
            policy(
                allow(
                    "s3:GetObject",
                    f"{BUCKET}/*",
                    Condition={"Bool": {"aws:MultiFactorAuthPresent": []}},
                )
            ),
            (
                "condition-malformed",
                "error",
                "/Statement/0/Condition/Bool/aws:MultiFactorAuthPresent",
            ),
        ),
        (
            policy(
                allow(
                    "s3:GetObject",
                    f"{BUCKET}/*",
                    Condition={"StringEqual": {"aws:PrincipalTag/team": "payments"}},
                )
            ),
            ("unknown-condition-operator", "error", "/Statement/0/Condition/StringEqual"),
        ),
        (
            policy(
                allow(
                    "s3:ListBucket",
                    BUCKET,
                    Condition={"StringLike": {"s3:prefixes": "daily/*"}},
                )
            ),
            ("unknown-condition-key", "warning", "/Statement/0/Condition/StringLike/s3:prefixes"),
        ),
    ],
)
def test_it_reports_malformed_structure(document: Any, expected: tuple[str, str, str]) -> None:
    assert expected in found(document)


def test_it_accepts_condition_operator_variants() -> None:
    condition = {
        "ForAnyValue:StringLike": {"aws:TagKeys": ["team", "env"]},
        "StringEqualsIfExists": {"aws:RequestTag/team": "payments"},
        "ArnLike": {"aws:SourceArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:*"},
        "NumericLessThan": {"s3:max-keys": 10},
        "Null": {"aws:ResourceTag/team": False},
        "DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"},
    }
    document = policy(allow("s3:ListBucket", BUCKET, Condition=condition))
    assert not_info(document) == []


def test_a_json_string_gets_the_same_findings_as_the_parsed_document() -> None:
    document = policy(
        allow(["s3:GetObject", "s3:Gte*"], BUCKET, Sid="Read"),
        allow("iam:PassRole", ROLE, Sid="Read"),
        allow("ec2:RunInstances", "*"),
    )
    assert lint(document) == lint(json.dumps(document, indent=4))
    assert len(lint(document)) >= 5


def test_a_single_statement_object_is_located_under_statement() -> None:
    document = {"Version": "2012-10-17", "Statement": allow("s3:GetObject", BUCKET)}
    assert ("resource-mismatch", "error", "/Statement/Action") in found(document)


@pytest.mark.parametrize(
    "junk",
    [
        None,
        42,
        4.2,
        True,
        [],
        "",
        "not json",
        "null",
        "[1, 2]",
        "[" * 100_000,
        '{"Statement": ' + "[" * 50_000 + "]" * 50_000 + "}",
        {"Statement": "x"},
        {"Statement": None},
        {"Statement": [None, 1, "x", [], {}]},
        {"Statement": [[[[[[[[[[{"Effect": "Allow"}]]]]]]]]]]},
        {"Version": [], "Id": {}, "Statement": {"Effect": {}, "Action": {}, "Resource": {}}},
        {1: 2, (3, 4): 5, "Statement": [{7: 8, "Condition": {9: {10: 11}}}]},
        {"Statement": [{"Effect": "Allow", "Action": [None, 3, ["s3:*"]], "Resource": [{}]}]},
        {"Statement": [allow(":", ":"), allow("s3:", "arn:"), allow("*:*", "arn:aws:*:*:*:*")]},
        {"Statement": [allow("s3:Get*", "arn:aws:s3:::" + "*?" * 2_000)]},
        {"Statement": [allow("s3:GetObject", "arn:aws:s3:::${" * 500)]},
        {"Statement": [allow("s3:GetObject", "arn:aws:s3:::b/\x00\n")]},
        {"Statement": [allow("s3:GetObject", f"{BUCKET}/*", Condition={"Bool": {"k": [{}]}})]},
        {"Statement": [{"Effect": "Allow", "NotAction": 5, "NotResource": [None]}]},
        {"Statement": [{"Sid": {"a": "b"}, "Effect": "Deny", "Action": "*", "Resource": "*"}]},
        {"Statement": [allow("s3:GetObject", "arn:aws:s3:::b/*", Condition={"": {"": ""}})]},
        {"Statement": [allow("\u00e9:\u00e9", "arn:aws:\u00e9:::\u00b2")]},
        {"Version": float("nan"), "Statement": [allow("s3:GetObject", set())]},
        {"Statement": object()},
        b'{"Statement": []}',
    ],
)
def test_it_never_raises_on_garbage(junk: Any) -> None:
    findings = lint(junk)
    assert any(finding.severity == "error" for finding in findings)


def test_it_never_raises_on_a_document_that_contains_itself() -> None:
    document: dict[str, Any] = policy(allow("s3:GetObject", f"{BUCKET}/*"))
    document["Statement"][0]["Condition"] = {"Bool": {"aws:SecureTransport": document}}
    assert ("invalid-json", "error", "") in found(document)


def test_it_never_raises_on_random_policy_shaped_input() -> None:
    rng = random.Random(20260301)
    atoms: list[Any] = [
        None,
        True,
        0,
        -1.5,
        "",
        "*",
        "Allow",
        "Deny",
        "s3:GetObject",
        "s3:Get*",
        "iam:PassRole",
        "ec2:RunInstances",
        "s4:x",
        "arn:aws:s3:::b",
        "arn:aws:s3:::b/*",
        "arn:aws:iam::1:role/r",
        "arn:",
        "${aws:username}",
        "StringEquals",
        "aws:SourceIp",
    ]
    keys = ["Version", "Id", "Statement", "Sid", "Effect", "Action", "NotAction", "Resource"]
    keys += ["Condition", "x"]

    def value(depth: int) -> Any:
        roll = rng.random()
        if depth > 4 or roll < 0.5:
            return rng.choice(atoms)
        if roll < 0.75:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {rng.choice(keys): value(depth + 1) for _ in range(rng.randrange(5))}

    for _ in range(400):
        document = {rng.choice(keys): value(0) for _ in range(rng.randrange(4))}
        document["Statement"] = [value(1) for _ in range(rng.randrange(4))]
        lint(document)
        lint(json.dumps(document))


# Actions


def test_it_reports_unknown_services_and_mistyped_wildcards_as_errors() -> None:
    document = policy(
        allow(["s3:Get*", "s3:Gte*", "s4:GetObject", "S3:getobject", "s3GetObject"], f"{BUCKET}/*")
    )
    assert found(document) == {
        ("action-wildcard-matches-nothing", "error", "/Statement/0/Action/1"),
        ("unknown-service", "error", "/Statement/0/Action/2"),
        ("malformed-action", "error", "/Statement/0/Action/4"),
    }


def test_it_checks_not_action_entries_too() -> None:
    document = policy({"Effect": "Deny", "NotAction": ["s3:Gte*"], "Resource": "*"})
    assert found(document) == {
        ("action-wildcard-matches-nothing", "error", "/Statement/0/NotAction/0")
    }


# Resources


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("s3:GetObject", BUCKET),
        ("s3:ListBucket", f"{BUCKET}/*"),
        ("dynamodb:GetItem", f"{TABLE}/index/ByCustomer"),
        ("dynamodb:GetItem", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/*/index/*"),
        ("s3:ListBucket", "arn:aws:s3:::acme-report?/daily"),
        ("sqs:SendMessage", f"arn:aws:sns:us-east-1:{ACCOUNT}:orders"),
        ("kms:Decrypt", f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/orders"),
    ],
)
def test_it_reports_resources_the_action_does_not_act_on(action: str, resource: str) -> None:
    finding = the_one(policy(allow(action, resource)), "resource-mismatch")
    assert (finding.severity, finding.location) == ("error", "/Statement/0/Action")
    assert "grants nothing" in finding.detail


def test_a_resource_mismatch_names_the_resource_types_the_action_takes() -> None:
    finding = the_one(policy(allow("s3:GetObject", BUCKET)), "resource-mismatch")
    assert "object: arn:aws:s3:::${BucketName}/${ObjectName}" in finding.detail


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("logs:PutLogEvents", f"arn:aws:logs:us-east-1:{ACCOUNT}:/aws-glue/*"),
        ("s3:GetObject", f"arn:aws:s3:us-east-1:{ACCOUNT}:acme-reports/*"),
        ("cloudwatch:TagResource", f"arn:aws:cloudwatch:us-east-1:{ACCOUNT}:integration/x"),
    ],
)
def test_a_resource_of_a_type_the_reference_does_not_know_is_only_a_warning(
    action: str, resource: str
) -> None:
    # Either the ARN is wrong or its type is newer than the reference.
    assert found(policy(allow(action, resource))) == {
        ("resource-mismatch", "warning", "/Statement/0/Action")
    }


def test_an_action_matches_when_any_resource_of_the_statement_fits() -> None:
    document = policy(allow(["s3:ListBucket", "s3:GetObject"], [BUCKET, f"{BUCKET}/*"]))
    assert lint(document) == []


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("s3:GetObject", "arn:aws:s3:::acme-report?/daily/*"),
        ("s3:GetObject", "arn:aws:s3:::acme-*/daily/*.csv"),
        ("s3:ListBucket", "arn:aws:s3:::acme-*"),
        ("dynamodb:Query", f"arn:aws:dynamodb:*:{ACCOUNT}:table/Orders/index/*"),
        ("sqs:SendMessage", f"arn:aws:sqs:*:{ACCOUNT}:orders-*"),
        ("iam:GetRole", f"arn:aws:iam::{ACCOUNT}:role/service-role/*"),
        ("lambda:InvokeFunction", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:orders-*"),
        ("s3:GetObject", "arn:aws:s3:::acme-${aws:PrincipalTag/team}/*"),
    ],
)
def test_wildcards_and_variables_match_the_resource_types_they_can_name(
    action: str, resource: str
) -> None:
    assert lint(policy(allow(action, resource))) == []


@pytest.mark.parametrize(
    "resource",
    [
        "acme-reports",
        "arn:aws:s3",
        "arn:aws:s3:::",
        "arn:amazon:s3:::acme-reports",
        "arn:aws::::acme-reports",
        f"{BUCKET} ",
        "arn:aws:s3:::" + "a" * 2100,
    ],
)
def test_it_reports_malformed_arns(resource: str) -> None:
    document = policy(allow("s3:GetObject", [f"{BUCKET}/*", resource]))
    assert found(document) == {("malformed-arn", "error", "/Statement/0/Resource/1")}


def test_an_action_that_only_takes_a_wildcard_is_not_granted_on_an_arn() -> None:
    assert found(policy(allow("s3:ListAllMyBuckets", BUCKET))) == {
        ("action-needs-wildcard-resource", "warning", "/Statement/0/Action")
    }
    assert not_info(policy(allow("s3:ListAllMyBuckets", "arn:aws:s3:::*"))) == []


# Resource "*"


def test_resource_wildcard_on_actions_that_can_be_scoped_is_a_warning() -> None:
    finding = the_one(policy(allow(["sqs:SendMessage"], ["*"])), "resource-wildcard")
    assert (finding.severity, finding.location) == ("warning", "/Statement/0/Resource/0")
    assert "arn:aws:sqs:${Region}:${Account}:${QueueName}" in finding.detail


def test_resource_wildcard_on_actions_that_only_take_it_is_information() -> None:
    document = policy(allow(["ec2:DescribeInstances", "s3:ListAllMyBuckets"], "*"))
    assert found(document) == {("resource-wildcard-only-action", "info", "/Statement/0/Resource")}


@pytest.mark.parametrize("action", ["*", "*:*", ["s3:GetObject", "*"]])
def test_allow_everything_on_everything_is_full_admin(action: Any) -> None:
    findings = found(policy(allow(action, "*")))
    location = "/Statement/0/Action/1" if isinstance(action, list) else "/Statement/0/Action"
    assert ("full-admin", "error", location) in findings
    assert ("privilege-escalation", "error", location) in findings


def test_deny_everything_is_not_full_admin() -> None:
    document = policy(
        allow("s3:GetObject", f"{BUCKET}/*"), {"Effect": "Deny", "Action": "*", "Resource": "*"}
    )
    assert lint(document) == []


# Privilege escalation


SINGLE_ACTION_PATHS = [actions[0] for actions, _ in ESCALATION_PATHS if len(actions) == 1]


@pytest.mark.parametrize("action", SINGLE_ACTION_PATHS)
def test_each_single_action_escalation_is_an_error(action: str) -> None:
    finding = the_one(policy(allow(action, "*")), "privilege-escalation")
    assert (finding.severity, finding.location) == ("error", "/Statement/0/Action")
    assert action in finding.detail


def test_pass_role_with_compute_across_statements_is_an_error() -> None:
    document = policy(
        allow("ec2:RunInstances", "*", Sid="Launch"),
        allow("iam:PassRole", ROLE, Sid="Pass"),
    )
    finding = the_one(document, "privilege-escalation")
    assert (finding.severity, finding.location) == ("error", "/Statement/1/Action")
    assert "iam:PassRole with ec2:RunInstances" in finding.detail


@pytest.mark.parametrize(
    "actions",
    [
        ["lambda:CreateFunction"],
        ["lambda:UpdateFunctionConfiguration"],
        ["ecs:RunTask"],
        ["ecs:RegisterTaskDefinition", "ecs:CreateService"],
        ["glue:CreateDevEndpoint"],
        ["cloudformation:CreateStack"],
        ["datapipeline:CreatePipeline", "datapipeline:PutPipelineDefinition"],
        ["sagemaker:CreateNotebookInstance"],
        ["codebuild:CreateProject", "codebuild:StartBuild"],
    ],
)
def test_pass_role_with_each_compute_service_is_an_error(actions: list[str]) -> None:
    document = policy(allow(["iam:PassRole", *actions], "*"))
    finding = the_one(document, "privilege-escalation")
    assert finding.location == "/Statement/0/Action/0"
    assert all(action in finding.detail for action in actions)


def test_an_incomplete_combination_is_not_an_escalation() -> None:
    assert "privilege-escalation" not in {
        f.code for f in lint(policy(allow(["iam:PassRole", "ecs:RegisterTaskDefinition"], "*")))
    }
    assert "privilege-escalation" not in {f.code for f in lint(policy(allow("iam:PassRole", ROLE)))}


def test_service_wildcards_expand_into_escalations() -> None:
    document = policy(allow("iam:*", "*"), allow("ec2:Run*", "*"))
    finding = the_one(document, "privilege-escalation")
    assert finding.location == "/Statement/0/Action"
    assert "iam:PutRolePolicy" in finding.detail


def test_an_escalation_needs_resources_the_action_acts_on() -> None:
    # iam:CreateAccessKey acts on users, not roles.
    document = policy(
        allow(["iam:CreateAccessKey", "iam:GetRole"], f"arn:aws:iam::{ACCOUNT}:role/*")
    )
    assert "privilege-escalation" not in {f.code for f in lint(document)}


def test_an_unconditional_deny_takes_an_escalation_away() -> None:
    grants = allow(["iam:PassRole", "ec2:RunInstances"], "*")
    assert "privilege-escalation" in {f.code for f in lint(policy(grants))}
    denied = policy(grants, {"Effect": "Deny", "Action": "iam:Pass*", "Resource": "*"})
    assert "privilege-escalation" not in {f.code for f in lint(denied)}
    conditional = policy(
        grants,
        {
            "Effect": "Deny",
            "Action": "iam:PassRole",
            "Resource": "*",
            "Condition": {"StringNotEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        },
    )
    assert "privilege-escalation" in {f.code for f in lint(conditional)}


def test_allow_with_not_action_grants_escalations_too() -> None:
    document = policy({"Effect": "Allow", "NotAction": ["s3:*"], "Resource": "*"})
    assert found(document) >= {
        ("allow-with-notaction", "error", "/Statement/0/NotAction"),
        ("privilege-escalation", "error", "/Statement/0/NotAction"),
    }


# Sensitive actions


def test_credentials_on_every_resource_are_a_warning() -> None:
    document = policy(allow("iam:CreateAccessKey", f"arn:aws:iam::{ACCOUNT}:user/*"))
    finding = the_one(document, "credential-exposure")
    assert (finding.severity, finding.location) == ("warning", "/Statement/0/Action")
    finding = the_one(policy(allow("sts:AssumeRole", "*")), "credential-exposure")
    assert finding.severity == "warning"


def test_credentials_that_cannot_be_scoped_are_information() -> None:
    document = policy(allow("ecr:GetAuthorizationToken", "*"))
    finding = the_one(document, "credential-exposure")
    assert (finding.severity, finding.location) == ("info", "/Statement/0/Action")


def test_permissions_management_is_a_warning() -> None:
    document = policy(allow(["s3:GetBucketPolicy", "s3:PutBucketPolicy"], BUCKET))
    assert found(document) == {("permissions-management", "warning", "/Statement/0/Action/1")}
    assert "s3:PutBucketPolicy" in the_one(document, "permissions-management").detail


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        ("s3:GetObject", "*"),
        ("s3:GetObject", "arn:aws:s3:::*/*"),
        ("secretsmanager:GetSecretValue", f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:*"),
        ("ssm:GetParameters", f"arn:aws:ssm:*:{ACCOUNT}:parameter/*"),
        ("kms:Decrypt", f"arn:aws:kms:us-east-1:{ACCOUNT}:key/*"),
        ("dynamodb:Scan", f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/*"),
    ],
)
def test_data_reads_on_every_resource_are_a_warning(action: str, resource: str) -> None:
    finding = the_one(policy(allow(action, resource)), "data-read-everywhere")
    assert (finding.severity, finding.location) == ("warning", "/Statement/0/Action")


def test_sensitive_actions_are_only_reported_when_allowed() -> None:
    document = policy(
        allow("s3:GetObject", f"{BUCKET}/*"),
        {"Effect": "Deny", "Action": ["iam:*", "s3:GetObject", "sts:*"], "Resource": "*"},
    )
    assert lint(document) == []


# NotAction and NotResource


def test_not_resource_with_allow_is_an_error_and_with_deny_is_fine() -> None:
    allowed = policy({"Effect": "Allow", "Action": "s3:GetObject", "NotResource": f"{BUCKET}/*"})
    assert ("allow-with-notresource", "error", "/Statement/0/NotResource") in found(allowed)
    denied = policy(
        allow("s3:GetObject", f"{BUCKET}/*"),
        {"Effect": "Deny", "Action": "s3:*", "NotResource": [BUCKET, f"{BUCKET}/*"]},
    )
    assert lint(denied) == []


# Size


def padded(size: int) -> dict[str, Any]:
    """A valid policy of exactly `size` characters once white space is removed."""
    document = policy(allow("s3:GetObject", f"{BUCKET}/*", Sid=""))
    base = len(json.dumps(document, separators=(",", ":")))
    document["Statement"][0]["Sid"] = "Read" * ((size - base) // 4) + "R" * ((size - base) % 4)
    assert len(json.dumps(document, separators=(",", ":"))) == size
    return document


def test_a_policy_within_the_limit_has_no_size_finding() -> None:
    assert lint(padded(9_000)) == []


def test_a_policy_close_to_the_limit_is_a_warning() -> None:
    finding = the_one(padded(9_300), "policy-size-near-limit")
    assert (finding.severity, finding.location) == ("warning", "")


def test_a_policy_over_the_limit_is_an_error_with_the_numbers() -> None:
    finding = the_one(padded(INLINE_POLICIES_MAX_SIZE + 1), "policy-too-large")
    assert finding.severity == "error"
    assert "10,241" in finding.detail
    assert "10,240" in finding.detail


def test_the_role_s_other_inline_policies_count_against_the_limit() -> None:
    document = padded(6_000)
    assert lint(document, other_inline_policies_size=3_000) == []
    findings = lint(document, other_inline_policies_size=4_000)
    assert [(f.code, f.severity) for f in findings] == [("policy-size-near-limit", "warning")]
    [finding] = lint(document, other_inline_policies_size=4_241)
    assert (finding.code, finding.severity, finding.location) == ("policy-too-large", "error", "")
    assert "6,000" in finding.detail
    assert "4,241" in finding.detail
    assert "10,241" in finding.detail


def test_white_space_does_not_count() -> None:
    document = padded(INLINE_POLICIES_MAX_SIZE)
    indented = json.dumps(document, indent=8)
    assert len(indented) > INLINE_POLICIES_MAX_SIZE + 100
    expected = {("policy-size-near-limit", "warning", "")}
    assert found(indented) == found(document) == expected


# Order


def test_findings_come_most_severe_first_then_in_document_order() -> None:
    statements = [allow("s3:GetObject", f"{BUCKET}/*", Sid=f"S{index}") for index in range(12)]
    statements[2] = allow("s3:GetObject", BUCKET)
    statements[10] = allow("s3:GetObject", BUCKET)
    statements[11] = allow("s3:ListAllMyBuckets", BUCKET)
    statements[3] = allow("ec2:DescribeInstances", "*")
    document = {"Statement": statements}
    assert [(f.severity, f.location) for f in lint(document)] == [
        ("error", "/Statement/2/Action"),
        ("error", "/Statement/10/Action"),
        ("warning", ""),
        ("warning", "/Statement/11/Action"),
        ("info", "/Statement/3/Resource"),
    ]


# Bounded cost: wildcards are matched without backtracking (timings: bench/lint.py)


def codes(findings: list[Finding]) -> list[str]:
    return [finding.code for finding in findings]


def test_a_wildcard_that_makes_a_regex_backtrack_is_linted() -> None:
    # As a regex, ".*..*..*." tries every way of splitting each action name
    # between the forty stars: this never finished before.
    findings = policy_lint(policy(allow("s3:" + "*?" * 40 + "*Z")))

    assert codes(findings) == ["action-wildcard-matches-nothing"]


def test_an_80_kb_starred_pattern_is_linted_everywhere_patterns_are_matched() -> None:
    starred = "*" + "*".join("abcdefghijklmnopqrstuvwxyz" * 1600)[:80_000]

    assert codes(policy_lint(policy(allow("s3:" + starred)))) == [
        "policy-too-large",
        "action-wildcard-matches-nothing",
    ]
    findings = policy_lint(
        policy(
            allow("*:" + starred[:20_000]),
            {"Effect": "Allow", "NotAction": "iam:" + starred[:20_000], "Resource": "*"},
            allow(starred[:20_000] + ":Get*"),
        )
    )
    assert {"policy-too-large", "action-wildcard-matches-nothing", "allow-with-notaction"} <= set(
        codes(findings)
    )


def test_wildcards_match_as_iam_matches_them() -> None:
    generator = random.Random(7)
    for _ in range(3000):
        name = "".join(generator.choice("abAB") for _ in range(generator.randint(0, 8)))
        pattern = "".join(generator.choice("aAb*?") for _ in range(generator.randint(0, 7)))
        expected = fnmatch.fnmatchcase(name.lower(), pattern.lower())
        assert NameGlob(pattern).fullmatch(name) is expected, (pattern, name)


def test_wildcards_in_actions_still_expand_to_the_actions_they_name() -> None:
    findings = policy_lint(policy(allow("iam:Pass*"), allow("ec2:Run*nces")))

    assert "privilege-escalation" in codes(findings)


def test_a_document_beyond_the_lint_bound_is_reported_as_too_large_and_not_read() -> None:
    text = json.dumps(policy(allow("s3:GetObject", "x" * LINT_MAX_CHARS)))

    assert codes(policy_lint(text)) == ["policy-too-large"]
    assert "policy-too-large" in codes(policy_lint(json.loads(text)))
