"""Policy evaluation: Allow and Deny, wildcards, NotAction and NotResource,
conditions it can and cannot decide, and the guardrail notes built on it."""

from __future__ import annotations

from typing import Any

import pytest

from requests_app.policy.evaluate import (
    Decision,
    NamedPolicy,
    ScpLevel,
    allowed_resources,
    glob_covers,
    glob_overlaps,
    guardrail_notes,
    policy_evaluate,
)

DB = "arn:aws:rds-db:us-east-1:111111111111:dbuser:db-ABC123/app_user"


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def decide(*statements: dict[str, Any], action: str = "rds-db:connect", resource: str = DB) -> str:
    return str(policy_evaluate([doc(*statements)], action=action, resource=resource).decision)


def test_nothing_is_allowed_without_an_allow() -> None:
    assert decide() == "not allowed"
    assert decide(allow("s3:GetObject")) == "not allowed"


@pytest.mark.parametrize(
    "statement",
    [
        allow("rds-db:connect", DB),
        allow("RDS-DB:Connect", DB),  # actions ignore case
        allow("rds-db:*", "arn:aws:rds-db:us-east-1:111111111111:dbuser:db-ABC123/*"),
        allow("*", "*"),
        allow("rds-db:conn?ct", "arn:aws:rds-db:*:*:dbuser:*/app_user"),
        allow(
            "rds-db:connect",
            "arn:aws:rds-db:us-east-1:111111111111:dbuser:db-ABC123/${aws:username}",
        ),
        {"Effect": "Allow", "NotAction": "s3:*", "Resource": DB},
        {"Effect": "Allow", "Action": "rds-db:connect", "NotResource": "arn:aws:s3:::*"},
    ],
)
def test_an_allow_that_matches_allows(statement: dict[str, Any]) -> None:
    assert decide(statement) == "allowed"


@pytest.mark.parametrize(
    "statement",
    [
        allow("rds-db:connect", DB.upper()),  # resources do not ignore case
        allow("rds-db:connect", "arn:aws:rds-db:us-east-1:111111111111:dbuser:db-ABC123/other"),
        {"Effect": "Allow", "NotAction": "rds-db:*", "Resource": "*"},
        {"Effect": "Allow", "Action": "*", "NotResource": "arn:aws:rds-db:*"},
    ],
)
def test_an_allow_that_does_not_match_allows_nothing(statement: dict[str, Any]) -> None:
    assert decide(statement) == "not allowed"


def test_an_explicit_deny_wins_over_any_allow() -> None:
    assert decide(allow("*"), deny("rds-db:*")) == "denied"
    assert decide(allow("*"), {"Effect": "Deny", "NotAction": "s3:*", "Resource": "*"}) == "denied"


def test_a_deny_on_another_resource_leaves_the_allow() -> None:
    other = "arn:aws:rds-db:us-east-1:111111111111:dbuser:db-OTHER/*"
    assert decide(allow("rds-db:connect", DB), deny("*", other)) == "allowed"


def test_conditions_are_decided_from_the_context_when_they_can_be() -> None:
    root_only = {"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:root"}}
    role = {"aws:PrincipalArn": "arn:aws:iam::111111111111:role/app"}
    documents = [doc(allow("*"), deny("*", Condition=root_only))]
    result = policy_evaluate(documents, action="s3:GetObject", resource="*", context=role)
    assert result.decision is Decision.ALLOWED and not result.maybe_denied_by
    root = {"aws:PrincipalArn": "arn:aws:iam::111111111111:root"}
    result = policy_evaluate(documents, action="s3:GetObject", resource="*", context=root)
    assert result.decision is Decision.DENIED


def test_a_condition_it_cannot_decide_makes_a_deny_a_maybe() -> None:
    region = {"StringNotEquals": {"aws:RequestedRegion": ["eu-west-1"]}}
    result = policy_evaluate(
        [doc(allow("*"), deny("*", Condition=region))], action="s3:GetObject", resource="*"
    )
    assert result.decision is Decision.ALLOWED
    assert result.maybe_denied_by and result.unknown_keys == ("aws:RequestedRegion",)


def test_a_conditional_allow_is_allowed_but_says_so() -> None:
    mfa = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    result = policy_evaluate([doc(allow("*", Condition=mfa))], action="s3:GetObject", resource="*")
    assert result.decision is Decision.ALLOWED and result.conditional


def test_patterns_asked_about_are_covered_or_overlapped() -> None:
    assert glob_covers("s3:*", "s3:Get*", ignore_case=True)
    assert not glob_covers("s3:GetObject", "s3:Get*", ignore_case=True)
    assert glob_overlaps("s3:GetObject", "s3:Get*", ignore_case=True)
    assert not glob_overlaps("s3:PutObject", "s3:Get*", ignore_case=True)
    result = policy_evaluate(
        [doc(allow("*"), deny("s3:GetObject"))], action="s3:Get*", resource="*"
    )
    assert result.decision is Decision.ALLOWED and result.maybe_denied_by


@pytest.mark.parametrize("document", [None, "text", {"Statement": "x"}, {"Statement": [1, {}]}])
def test_malformed_documents_allow_nothing_and_never_raise(document: Any) -> None:
    assert policy_evaluate([document], action="s3:GetObject", resource="*").decision is (
        Decision.NOT_ALLOWED
    )


def test_allowed_resources_lists_what_allows_name_for_the_action() -> None:
    document = doc(
        allow("rds-db:connect", [DB, "arn:aws:rds-db:*:*:dbuser:db-X/*"]),
        allow("s3:GetObject", "arn:aws:s3:::b/*"),
        deny("rds-db:connect", "arn:aws:rds-db:*:*:dbuser:*/admin"),
    )
    assert allowed_resources([document], action="rds-db:connect") == [
        DB,
        "arn:aws:rds-db:*:*:dbuser:db-X/*",
    ]


def _levels(*documents: tuple[str, str, dict[str, Any]]) -> list[ScpLevel]:
    by_label: dict[str, list[NamedPolicy]] = {}
    for label, name, document in documents:
        by_label.setdefault(label, []).append(NamedPolicy(name, document))
    return [ScpLevel(label, tuple(policies)) for label, policies in by_label.items()]


FULL = doc(allow("*"))


def test_an_scp_deny_is_noted_per_action_with_the_scp_and_where_it_is_attached() -> None:
    levels = _levels(
        ("Root", "FullAWSAccess", FULL),
        ("Root / Workloads", "FullAWSAccess", FULL),
        ("Root / Workloads", "no-leaving", doc(deny("organizations:LeaveOrganization"))),
    )
    requested = doc(allow(["s3:GetObject", "organizations:LeaveOrganization"]))
    [note] = guardrail_notes(requested, scp_levels=levels)
    assert note.action == "organizations:LeaveOrganization" and note.certain
    assert note.source == "scp" and note.name == "no-leaving"
    assert "denied by the SCP no-leaving (on Root / Workloads)" in note.message


def test_an_action_no_scp_at_a_level_allows_is_noted() -> None:
    levels = _levels(("Root", "FullAWSAccess", FULL), ("Prod", "only-s3", doc(allow("s3:*"))))
    notes = guardrail_notes(doc(allow(["s3:GetObject", "ec2:RunInstances"])), scp_levels=levels)
    assert [(n.action, n.certain) for n in notes] == [("ec2:RunInstances", True)]
    assert "not allowed by any SCP on Prod" in notes[0].message


def test_the_boundary_must_allow_and_must_not_deny() -> None:
    boundary = NamedPolicy(
        "arn:aws:iam::111111111111:policy/boundary",
        doc(allow(["s3:*", "sqs:*"]), deny("s3:DeleteBucket")),
    )
    requested = doc(allow(["s3:GetObject", "s3:DeleteBucket", "iam:CreateUser", "sqs:SendMessage"]))
    notes = guardrail_notes(requested, boundary=boundary)
    assert {n.action: n.message for n in notes} == {
        "s3:DeleteBucket": "s3:DeleteBucket on *: denied by the permissions boundary "
        "arn:aws:iam::111111111111:policy/boundary.",
        "iam:CreateUser": "iam:CreateUser on *: not allowed by the permissions boundary "
        "arn:aws:iam::111111111111:policy/boundary.",
    }
    assert {n.source for n in notes} == {"boundary"}


def test_nothing_to_note_when_the_guardrails_allow_everything_requested() -> None:
    levels = _levels(("Root", "FullAWSAccess", FULL))
    boundary = NamedPolicy("b", FULL)
    assert guardrail_notes(doc(allow("s3:GetObject")), scp_levels=levels, boundary=boundary) == []
