"""Trust statements from presets: each kind of principal, with the condition it
needs, and what is refused."""

from __future__ import annotations

import pytest

from requests_app.policy.trust import PresetInvalid, trust_statement, trust_with


def test_an_aws_service() -> None:
    assert trust_statement("service", "lambda.amazonaws.com") == {
        "Sid": "TrustLambdaAmazonawsCom",
        "Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }


def test_another_role_by_its_exact_arn() -> None:
    arn = "arn:aws:iam::222222222222:role/ci/deployer"
    statement = trust_statement("role", arn)
    assert statement["Principal"] == {"AWS": arn}
    assert "Condition" not in statement


def test_another_account_needs_an_external_id() -> None:
    statement = trust_statement("account", "222222222222", "partner-7")
    assert statement["Principal"] == {"AWS": "arn:aws:iam::222222222222:root"}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": "partner-7"}}
    with pytest.raises(PresetInvalid) as raised:
        trust_statement("account", "222222222222")
    assert raised.value.field == "extra"


def test_a_saml_provider_is_limited_to_the_aws_sign_in_audience() -> None:
    arn = "arn:aws:iam::111111111111:saml-provider/Okta"
    statement = trust_statement("saml", arn)
    assert statement["Action"] == "sts:AssumeRoleWithSAML"
    assert statement["Condition"] == {
        "StringEquals": {"SAML:aud": "https://signin.aws.amazon.com/saml"}
    }


def test_an_oidc_provider_is_limited_to_its_audience() -> None:
    arn = "arn:aws:iam::111111111111:oidc-provider/token.actions.githubusercontent.com"
    statement = trust_statement("oidc", arn, "sts.amazonaws.com")
    assert statement["Principal"] == {"Federated": arn}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"}
    }
    with pytest.raises(PresetInvalid):
        trust_statement("oidc", arn, "")


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("service", "*"),
        ("service", "lambda"),
        ("role", "*"),
        ("role", "arn:aws:iam::222222222222:role/*"),
        ("role", "arn:aws:iam::222222222222:user/bob"),
        ("account", "2222"),
        ("saml", "arn:aws:iam::111111111111:oidc-provider/x"),
        ("oidc", "arn:aws:iam::111111111111:saml-provider/x"),
        ("everyone", "x"),
    ],
)
def test_wildcards_and_wrong_kinds_of_principal_are_refused(kind: str, value: str) -> None:
    with pytest.raises(PresetInvalid):
        trust_statement(kind, value, "audience-or-id")


def test_a_statement_is_added_or_replaces_the_one_with_its_sid() -> None:
    first = trust_statement("service", "lambda.amazonaws.com")
    document = trust_with(None, first)
    assert document == {"Version": "2012-10-17", "Statement": [first]}
    other = trust_statement("service", "ecs-tasks.amazonaws.com")
    both = trust_with(document, other)
    assert both["Statement"] == [first, other]
    assert trust_with(both, first)["Statement"] == [other, first]
